/**
 * What the CLI loads on demand for `--cluster` (kept out of the static import graph of `llink`, so a run without
 * it never loads the cluster, the socket or the PostgreSQL client): running a pipeline with the cluster executor,
 * a runner process, and the status query.
 */
import { Cause, Duration, Effect, Layer, Logger, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { AnyStage } from "../pipeline/dag.ts"
import { ShardExecutor } from "../pipeline/shards.ts"
import { makeClusterExecutor } from "./executor.ts"
import { clusterLogger, makeStorageWatch, probeStorage, redactUrl, type StorageWatch } from "./health.ts"
import { SALT } from "./protocol.ts"
import { clientLayer, pgLayer, runnerLayer, type ClusterOptions } from "./layers.ts"
import { drainRunner, ShardGate } from "./drain.ts"
import { shardWorkerLayer } from "./worker.ts"

/** The cluster could not be reached or set up (the database URL, its tables, a runner's listen address). */
export class ClusterError extends Schema.TaggedError<ClusterError>()("ClusterError", {
  url: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}

export { redactUrl }

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

/**
 * A cluster layer that says one line on a lost database, not hundreds (see `health.ts`): the logger goes under it
 * (the cluster's fibers are forked while it is built, and keep the loggers they were forked with), the storage
 * probe over it (it needs its SqlClient).
 */
const quietStorage = <A, E, R>(cluster: Layer.Layer<A, E, R>, watch: StorageWatch, verbose: boolean) =>
  Layer.effectDiscard(Effect.forkScoped(probeStorage(watch))).pipe(
    Layer.provideMerge(cluster.pipe(Layer.provide(Logger.layer([clusterLogger(watch, verbose), Logger.tracerLogger]))))
  )

/** Runs `effect` (a pipeline run) with its sharded stages' shards sent to the cluster at `options.url`. */
export const withCluster = <A, E, R, S>(
  stages: ReadonlyArray<AnyStage<S>>,
  options: ClusterOptions & { readonly log: (line: string) => void; readonly verbose?: boolean },
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | ClusterError, Exclude<R, ShardExecutor>> => {
  const watch = makeStorageWatch({ url: options.url, log: options.log })
  return Effect.gen(function*() {
    const executor = yield* makeClusterExecutor(stages, options)
    return yield* Effect.provideService(effect, ShardExecutor, executor)
  }).pipe(
    Effect.provide(quietStorage(orClusterError(options.url, clientLayer(options)), watch, options.verbose === true)),
    Effect.scoped
  ) as Effect.Effect<A, E | ClusterError, Exclude<R, ShardExecutor>>
}

export interface RunnerOptions extends ClusterOptions {
  readonly host: string
  readonly port: number
  readonly slots: number
  readonly childScript: string
  readonly log: (line: string) => void
  /** How long a stopping runner lets its running shards finish before it exits anyway (default 10 s). */
  readonly grace?: Duration.Duration
  /** Log every storage failure in full (stacks included). */
  readonly verbose?: boolean
  /** Ends the process (default `process.exit`); tests replace it. */
  readonly exit?: (code: number) => void
}

/**
 * A runner: registers at `host:port`, takes shards of `stages` until it is interrupted (SIGTERM, SIGINT). Then it
 * stops (see the module doc of `src/cli/cluster.ts`): no new shard starts, running ones get the grace period, the
 * lease is released when the database is there, and the process exits within the grace period in any case; a
 * second signal exits at once.
 */
export const launchRunner = <S>(stages: ReadonlyArray<AnyStage<S>>, options: RunnerOptions) => {
  const gate = new ShardGate()
  const watch = makeStorageWatch({ url: options.url, log: options.log })
  const graceMs = Duration.toMillis(options.grace ?? Duration.seconds(10))
  const exit = options.exit ?? ((code: number) => process.exit(code))
  const leave = (code: number, line: string) => {
    options.log(line)
    gate.killChildren()
    exit(code)
  }
  // Runs first when the runner is interrupted (it is built on top of the worker and the cluster, so it is released
  // before them): stop taking shards, let the running ones finish within the grace period, then either leave the
  // cluster's own shutdown to release the lease or, without a database, exit.
  const stopping = Layer.effectDiscard(
    Effect.addFinalizer(() =>
      Effect.promise(() =>
        drainRunner({
          gate,
          graceMs,
          lost: watch.lost,
          log: options.log,
          leave,
          onSignal: (handler) => {
            process.once("SIGTERM", handler)
            process.once("SIGINT", handler)
          }
        })
      )
    )
  )
  return Layer.launch(
    stopping.pipe(
      Layer.provideMerge(shardWorkerLayer(stages, { ...options, gate })),
      Layer.provideMerge(quietStorage(orClusterError(options.url, runnerLayer(options)), watch, options.verbose === true))
    )
  )
}

export interface ClusterStatus {
  readonly runners: ReadonlyArray<{
    readonly address: string
    readonly healthy: boolean
    readonly lastHeartbeat: string
    /** Seconds since the last heartbeat, by the database's clock (no skew with this machine's). */
    readonly heartbeatAgeSeconds: number
  }>
  /** Stage → shards by state, over the shard messages in the database (latest message per shard). */
  readonly stages: Readonly<Record<string, { readonly done: number; readonly running: number; readonly pending: number }>>
}

const RunnerRow = Schema.Struct({ address: Schema.String, healthy: Schema.Boolean, last_heartbeat: Schema.Unknown, age: Schema.Unknown })
const MessageRow = Schema.Struct({ entity_id: Schema.String, processed: Schema.Boolean, last_read: Schema.Unknown })

/** Runners and per-stage shard counts, read from the cluster's tables. */
export const clusterStatus = (url: string): Effect.Effect<ClusterStatus, ClusterError> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tables = yield* sql`SELECT table_name FROM information_schema.tables WHERE table_name IN ('cluster_runners', 'cluster_messages')`
    if (tables.length < 2) return { runners: [], stages: {} }
    const runners = yield* Effect.flatMap(
      sql`SELECT address, healthy, last_heartbeat, EXTRACT(EPOCH FROM (NOW() - last_heartbeat)) AS age FROM cluster_runners ORDER BY address`,
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
      runners: runners.map((r) => ({
        address: r.address,
        healthy: r.healthy,
        lastHeartbeat: String(r.last_heartbeat instanceof Date ? r.last_heartbeat.toISOString() : r.last_heartbeat),
        heartbeatAgeSeconds: Number(r.age)
      })),
      stages
    }
  }).pipe(Effect.mapError(clusterError(url)), Effect.provide(orClusterError(url, pgLayer(url))))
