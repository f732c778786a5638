/**
 * The cluster layers over PostgreSQL: `@effect/sql-pg` as the `SqlClient`, effect's `SqlRunnerStorage` (runner
 * registration, shard leases) and `SqlMessageStorage` (persisted shard messages and their replies), and sockets
 * between runners (`NodeClusterSocket`). `llink run --cluster` is a client only (it sends shards and polls their
 * replies); `llink runner --cluster` also listens and owns cluster shards.
 */
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as PgClient from "@effect/sql-pg/PgClient"
import { type Duration, Layer, Option, Redacted } from "effect"
import { RunnerAddress } from "effect/cluster"
import { clusterTuning } from "./placement.ts"

export interface ClusterOptions {
  /** `postgres://user@host:port/db` (a password in it is kept Redacted). */
  readonly url: string
  /**
   * How long a runner that stopped answering keeps its cluster shards (its lease): after that its unfinished shard
   * messages go to another runner. Also the advisory-lock session timeout on PostgreSQL.
   */
  readonly lease?: Duration.Input | undefined
}

export const pgLayer = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })

/** The coordinator's cluster: sends shard messages, never owns shards (its SqlClient stays available). */
export const clientLayer = (o: ClusterOptions) =>
  NodeClusterSocket.layer({ clientOnly: true, storage: "sql", shardingConfig: clusterTuning(o.lease) }).pipe(Layer.provideMerge(pgLayer(o.url)))

/**
 * A runner: registers at `host:port`, takes cluster shards, heartbeats through its lease. Its weight is its `slots`
 * (shards at once), which the coordinator reads to keep that many shards running there, plus one queued. Its
 * SqlClient stays available (the storage probe of `health.ts` uses it).
 */
export const runnerLayer = (o: ClusterOptions & { readonly host: string; readonly port: number; readonly slots: number }) =>
  NodeClusterSocket.layer({
    storage: "sql",
    shardingConfig: {
      ...clusterTuning(o.lease),
      runnerShardWeight: Math.max(1, o.slots),
      runnerAddress: Option.some(RunnerAddress.make(o.host, o.port)),
      runnerListenAddress: Option.some(RunnerAddress.make(o.host, o.port))
    }
  }).pipe(Layer.provideMerge(pgLayer(o.url)))
