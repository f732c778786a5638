/**
 * What a runner or a coordinator says while PostgreSQL is away. Effect Cluster retries its storage calls on its own
 * schedule and logs a WARN with the whole cause chain for each failed one (about 1.5 KB each; 300 of them when a
 * runner stops without the database, one per shard it tries to release). Here:
 *
 * - `storageFailure` recognises those entries (a `PersistenceError` or `SqlError` in the cause);
 * - `clusterLogger` swallows them (all of them pass through with `--verbose`) and tells a `StorageWatch`;
 * - the `StorageWatch` writes one line on the loss, at most one a minute while it lasts (with the count of failed
 *   storage calls), and one when the database is back;
 * - `probeStorage` is how "back" is known: while the watch says lost, `SELECT 1` with exponential back-off (1 s
 *   doubling to a 30 s cap).
 *
 * The watch takes its clock as a function, so its lines are tested without waiting (test/cluster/health.test.ts).
 */
import { Cause, Duration, Effect, Logger } from "effect"
import { SqlClient } from "effect/sql"

/** `postgres://user:***@host/db`: the URL without its password, for messages. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@")

const STORAGE_TAGS = new Set(["PersistenceError", "SqlError"])

const tagOf = (x: unknown): string | undefined =>
  typeof x === "object" && x !== null && "_tag" in x && typeof x._tag === "string" ? x._tag : undefined

/**
 * When `cause` holds a storage failure (a `PersistenceError` or `SqlError` anywhere along an error's `cause` chain),
 * the innermost message along that chain (`connect ECONNREFUSED 127.0.0.1:5432`); else undefined.
 */
export const storageFailure = (cause: Cause.Cause<unknown>): string | undefined => {
  for (const reason of cause.reasons) {
    if (!Cause.isFailReason(reason)) continue
    let current: unknown = reason.error
    let storage = false
    let innermost = ""
    for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
      const tag = tagOf(current)
      if (tag !== undefined && STORAGE_TAGS.has(tag)) storage = true
      const message = current instanceof Error ? current.message : ""
      if (message !== "") innermost = message
      current = typeof current === "object" && "cause" in current ? current.cause : undefined
    }
    if (storage) return innermost === "" ? "storage call failed" : innermost
  }
  return undefined
}

export interface StorageWatchOptions {
  /** The database URL (shown without its password). */
  readonly url: string
  readonly log: (line: string) => void
  /** Milliseconds since the epoch (default `Date.now`). */
  readonly now?: () => number
  /** At most one "still unreachable" line per this many ms (default 60 s). */
  readonly reportEveryMs?: number
}

export interface StorageWatch {
  /** A storage call failed with `detail`. */
  readonly failure: (detail: string) => void
  /** A probe reached the database. */
  readonly recovered: () => void
  /** Whether the database is taken to be away (a failure seen, no probe through since). */
  readonly lost: () => boolean
}

export const makeStorageWatch = (options: StorageWatchOptions): StorageWatch => {
  const now = options.now ?? Date.now
  const every = options.reportEveryMs ?? 60_000
  const where = redactUrl(options.url)
  let state: { since: number; failures: number; lastLine: number } | undefined
  const seconds = (ms: number) => `${Math.round(ms / 1000)} s`
  return {
    failure: (detail) => {
      const t = now()
      if (state === undefined) {
        state = { since: t, failures: 1, lastLine: t }
        options.log(`lost PostgreSQL at ${where} (${detail}): retrying with back-off`)
        return
      }
      state.failures++
      if (t - state.lastLine >= every) {
        state.lastLine = t
        options.log(`PostgreSQL at ${where} still unreachable after ${seconds(t - state.since)} (${state.failures} failed storage calls; last: ${detail}); retrying`)
      }
    },
    recovered: () => {
      if (state === undefined) return
      options.log(`PostgreSQL at ${where} is back after ${seconds(now() - state.since)} (${state.failures} failed storage calls)`)
      state = undefined
    },
    lost: () => state !== undefined
  }
}

/**
 * The logger of a cluster process: storage failures go to `watch` (and, with `verbose`, also to `next`, the default
 * logger, stacks included); every other entry goes to `next` as before.
 */
export const clusterLogger = (
  watch: StorageWatch,
  verbose: boolean,
  next: Logger.Logger<unknown, unknown> = Logger.defaultLogger
) =>
  Logger.make((options) => {
    const text = (Array.isArray(options.message) ? options.message : [options.message]).map(String).join(" ")
    // The shard-lock health check says it too, as an ERROR with a timeout's stack, then "has recovered".
    const failure = storageFailure(options.cause) ?? (/storage is unhealthy/i.test(text) ? text : undefined)
    if (failure !== undefined) watch.failure(failure)
    if (!verbose && (failure !== undefined || /storage has recovered/i.test(text))) return
    next.log(options)
  })

/** The back-off of `probeStorage`: 1 s, 2 s, 4 s, … capped at 30 s. */
export const probeDelay = (attempt: number): number => Math.min(30_000, 1000 * 2 ** Math.min(attempt, 10))

/** While `watch` says lost, `SELECT 1` with back-off until it goes through (forever; fork it in the process's scope). */
export const probeStorage = (watch: StorageWatch) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let attempt = 0
    while (true) {
      if (!watch.lost()) {
        attempt = 0
        yield* Effect.sleep(Duration.millis(500))
        continue
      }
      yield* Effect.sleep(Duration.millis(probeDelay(attempt)))
      const ok = yield* sql`SELECT 1`.pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.as(true),
        Effect.catchCause(() => Effect.succeed(false))
      )
      if (ok) {
        watch.recovered()
        attempt = 0
      } else attempt++
    }
  })
