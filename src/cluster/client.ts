/**
 * What the CLI loads on demand for `--cluster` (kept out of the static import graph of `llink`, so a run without
 * it never loads the cluster, the socket or the PostgreSQL client): running a pipeline with the cluster executor,
 * a runner process, and the status query.
 */
import { Cause, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { AnyStage } from "../pipeline/dag.ts"
import { ShardExecutor } from "../pipeline/shards.ts"
import { makeClusterExecutor } from "./executor.ts"
import { SALT } from "./protocol.ts"
import { clientLayer, pgLayer, runnerLayer, type ClusterOptions } from "./layers.ts"
import { shardWorkerLayer } from "./worker.ts"

/** The cluster could not be reached or set up (the database URL, its tables, a runner's listen address). */
export class ClusterError extends Schema.TaggedError<ClusterError>()("ClusterError", {
  url: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}

/** `postgres://user:***@host/db`: the URL without its password, for messages. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@")

/** A layer whose failures (and defects) become `ClusterError`s for `url`. */
const orClusterError = <A, E, R>(url: string, layer: Layer.Layer<A, E, R>): Layer.Layer<A, ClusterError, R> =>
  layer.pipe(
    Layer.catchCause((cause) => Layer.effectContext<A, ClusterError, never>(Effect.fail(clusterError(url)(Cause.squash(cause)))))
  )

/**
 * The messages along an error's cause chain (`cause`, or a socket error's `reason.cause`), distinct, joined: a
 * taken `--listen` port is "Open" alone at the top and "listen EADDRINUSE …" two levels down.
 */
const describeChain = (error: unknown): string => {
  const parts: Array<string> = []
  let code: unknown
  let current: unknown = error
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    const text = current instanceof Error ? current.message : typeof current === "object" ? "" : String(current)
    if (text !== "" && !parts.includes(text)) parts.push(text)
    if (typeof current !== "object") break
    const node = current as { readonly cause?: unknown; readonly reason?: { readonly cause?: unknown }; readonly code?: unknown }
    code ??= node.code
    current = node.cause ?? node.reason?.cause
  }
  const hint = code === "EADDRINUSE" ? " (another process holds that address: pick another port with --listen)" : ""
  return (parts.length === 0 ? String(error) : parts.join(": ")) + hint
}

const clusterError = (url: string) => (cause: unknown) =>
  new ClusterError({
    url: redactUrl(url),
    message: `cluster at ${redactUrl(url)}: ${describeChain(cause)}`,
    cause
  })

/** Runs `effect` (a pipeline run) with its sharded stages' shards sent to the cluster at `options.url`. */
export const withCluster = <A, E, R, S>(
  stages: ReadonlyArray<AnyStage<S>>,
  options: ClusterOptions & { readonly log: (line: string) => void },
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | ClusterError, Exclude<R, ShardExecutor>> =>
  Effect.gen(function*() {
    const executor = yield* makeClusterExecutor(stages, options)
    return yield* Effect.provideService(effect, ShardExecutor, executor)
  }).pipe(
    Effect.provide(orClusterError(options.url, clientLayer(options))),
    Effect.scoped
  ) as Effect.Effect<A, E | ClusterError, Exclude<R, ShardExecutor>>

/** A runner: registers at `host:port`, takes shards of `stages` until the process is stopped. */
export const launchRunner = <S>(
  stages: ReadonlyArray<AnyStage<S>>,
  options: ClusterOptions & {
    readonly host: string
    readonly port: number
    readonly slots: number
    readonly childScript: string
    readonly log: (line: string) => void
  }
) =>
  Layer.launch(
    shardWorkerLayer(stages, options).pipe(
      Layer.provide(orClusterError(options.url, runnerLayer(options)))
    )
  )

export interface ClusterStatus {
  readonly runners: ReadonlyArray<{ readonly address: string; readonly healthy: boolean; readonly lastHeartbeat: string }>
  /** Stage → shards by state, over the shard messages in the database (latest message per shard). */
  readonly stages: Readonly<Record<string, { readonly done: number; readonly running: number; readonly pending: number }>>
}

const RunnerRow = Schema.Struct({ address: Schema.String, healthy: Schema.Boolean, last_heartbeat: Schema.Unknown })
const MessageRow = Schema.Struct({ entity_id: Schema.String, processed: Schema.Boolean, last_read: Schema.Unknown })

/** Runners and per-stage shard counts, read from the cluster's tables. */
export const clusterStatus = (url: string): Effect.Effect<ClusterStatus, ClusterError> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tables = yield* sql`SELECT table_name FROM information_schema.tables WHERE table_name IN ('cluster_runners', 'cluster_messages')`
    if (tables.length < 2) return { runners: [], stages: {} }
    const runners = yield* Effect.flatMap(
      sql`SELECT address, healthy, last_heartbeat FROM cluster_runners ORDER BY address`,
      Schema.decodeUnknownEffect(Schema.Array(RunnerRow))
    )
    const messages = yield* Effect.flatMap(
      sql`SELECT entity_id, processed, last_read FROM cluster_messages WHERE entity_type = 'LlinkShard' AND tag = 'RunShard' ORDER BY rowid`,
      Schema.decodeUnknownEffect(Schema.Array(MessageRow))
    )
    const latest = new Map<string, typeof MessageRow.Type>()
    // one shard per entity id without its placement salt (a rerun may place it elsewhere)
    for (const m of messages) latest.set(m.entity_id.split(SALT)[0], m)
    const stages: Record<string, { done: number; running: number; pending: number }> = {}
    for (const [id, m] of latest) {
      const stage = id.split("/")[0]
      const s = (stages[stage] ??= { done: 0, running: 0, pending: 0 })
      if (m.processed) s.done++
      else if (m.last_read !== null) s.running++
      else s.pending++
    }
    return {
      runners: runners.map((r) => ({ address: r.address, healthy: r.healthy, lastHeartbeat: String(r.last_heartbeat instanceof Date ? r.last_heartbeat.toISOString() : r.last_heartbeat) })),
      stages
    }
  }).pipe(Effect.mapError(clusterError(url)), Effect.provide(orClusterError(url, pgLayer(url))))
