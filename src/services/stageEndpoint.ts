/**
 * How a pipeline stage (synthesize, judge) reaches its LLM endpoint, and how "auto" mode is decided.
 *
 * - `resolveLlmMode`: "auto" becomes "endpoint" when a base URL is configured (the section's `endpoint.baseUrl`, or
 *   env `OPENAI_BASE_URL`), else "offline". Stages resolve it in `selectParams`, so the *resolved* mode and the
 *   (redacted) URL enter the stage's cache key: setting `OPENAI_BASE_URL` later does not reuse an offline result.
 * - `withStageEndpoint`: runs `use` with an endpoint. An `LlmEndpoint` already in the context wins (tests provide
 *   `LlmEndpoint.scripted(...)` or `LlmEndpoint.layer(...)` pointed at a fake server; a caller may provide one
 *   globally). Otherwise the stage builds its own `LlmEndpoint.layer(config)` for the duration of `use`, with the
 *   on-disk request cache at `<cacheDir>/requests` (the cache root comes from the `ArtifactStore` in the context, or
 *   from the scratch folder's location `<cacheDir>/<stage>/<key>.partial`). So each stage talks to the model of its
 *   own config section, an offline run never needs a URL, and a rerun after a crash pays for no answer twice.
 * - The endpoint counters of the stage's own calls (a delta, so a shared endpoint is not double-counted) come back
 *   for the manifest's metrics.
 */
import * as path from "node:path"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { ArtifactStore } from "../pipeline/cache.ts"
import { StageError } from "../pipeline/errors.ts"
import { type EndpointConfig, type EndpointError, EndpointLimits, EndpointStats, LlmEndpoint, type LlmEndpointShape } from "./endpoint.ts"

export { configuredBaseUrl, publicBaseUrl, resolveLlmMode, type ResolvedLlmMode } from "../schemas/endpoint.ts"

/** `<cacheDir>/requests`. */
export const requestsDirFor = (scratchDir: string): Effect.Effect<string> =>
  Effect.map(Effect.serviceOption(ArtifactStore), (store) =>
    Option.isSome(store)
      ? path.join(store.value.root, "requests")
      : path.join(path.dirname(path.dirname(path.resolve(scratchDir))), "requests"))

/** The stats a stage records: its own calls only. */
export const statsDelta = (before: EndpointStats, after: EndpointStats): EndpointStats => ({
  requestsSent: after.requestsSent - before.requestsSent,
  answered: after.answered - before.answered,
  cacheHits: after.cacheHits - before.cacheHits,
  dedupedInFlight: after.dedupedInFlight - before.dedupedInFlight,
  failures: after.failures - before.failures,
  retries: {
    rate_limit: after.retries.rate_limit - before.retries.rate_limit,
    server: after.retries.server - before.retries.server,
    timeout: after.retries.timeout - before.retries.timeout,
    connection: after.retries.connection - before.retries.connection,
    malformed: after.retries.malformed - before.retries.malformed,
    empty: after.retries.empty - before.retries.empty
  },
  retriesTotal: after.retriesTotal - before.retriesTotal,
  cacheCorrupt: after.cacheCorrupt - before.cacheCorrupt,
  promptTokens: after.promptTokens - before.promptTokens,
  completionTokens: after.completionTokens - before.completionTokens
})

const addStats = (a: EndpointStats, b: EndpointStats): EndpointStats => ({
  requestsSent: a.requestsSent + b.requestsSent,
  answered: a.answered + b.answered,
  cacheHits: a.cacheHits + b.cacheHits,
  dedupedInFlight: a.dedupedInFlight + b.dedupedInFlight,
  failures: a.failures + b.failures,
  retries: {
    rate_limit: a.retries.rate_limit + b.retries.rate_limit,
    server: a.retries.server + b.retries.server,
    timeout: a.retries.timeout + b.retries.timeout,
    connection: a.retries.connection + b.retries.connection,
    malformed: a.retries.malformed + b.retries.malformed,
    empty: a.retries.empty + b.retries.empty
  },
  retriesTotal: a.retriesTotal + b.retriesTotal,
  cacheCorrupt: a.cacheCorrupt + b.cacheCorrupt,
  promptTokens: a.promptTokens + b.promptTokens,
  completionTokens: a.completionTokens + b.completionTokens
})

/**
 * The stats of a sharded endpoint stage whose merge re-reads the shards' answers from the request cache: every
 * shard's calls plus the merge's own, where the merge's cache hits on answers a shard received or found are not
 * counted again. (A shard's metrics keep its stats under `endpoint`; a shard without them counts as none.)
 */
export const shardedStats = (shards: ReadonlyArray<{ readonly metrics: Readonly<Record<string, unknown>> }>, merge: EndpointStats): EndpointStats => {
  const decode = Schema.decodeUnknownOption(EndpointStats)
  const own = shards.flatMap((s) => Option.toArray(decode(s.metrics["endpoint"])))
  const fromShards = own.reduce((sum, s) => sum + s.answered + s.cacheHits, 0)
  const total = own.reduce(addStats, merge)
  return { ...total, cacheHits: own.reduce((sum, s) => sum + s.cacheHits, 0) + Math.max(0, merge.cacheHits - fromShards) }
}

/** A failed endpoint call as the stage's error (the message is already redacted by the endpoint). */
export const endpointStageError = (stage: string) => (e: EndpointError): StageError =>
  new StageError({ stage, message: e.message, cause: e })

/**
 * Runs `use` with the context's `LlmEndpoint`, or with one built from `config` (request cache under
 * `<cacheDir>/requests`) that lives as long as `use`. Returns `use`'s result and the stats of the calls made in it.
 */
export const withStageEndpoint = <A, E, R>(
  stage: string,
  config: EndpointConfig,
  scratchDir: string,
  use: (endpoint: LlmEndpointShape) => Effect.Effect<A, E, R>
): Effect.Effect<{ readonly result: A; readonly stats: EndpointStats; readonly requestsDir: string | null }, E | StageError, R> =>
  Effect.gen(function*() {
    const measured = (endpoint: LlmEndpointShape, requestsDir: string | null) =>
      Effect.gen(function*() {
        const before = yield* endpoint.stats
        const result = yield* use(endpoint)
        const after = yield* endpoint.stats
        return { result, stats: statsDelta(before, after), requestsDir }
      })
    const provided = yield* Effect.serviceOption(LlmEndpoint)
    if (Option.isSome(provided)) return yield* measured(provided.value, null)
    const requestsDir = yield* requestsDirFor(scratchDir)
    return yield* Effect.scoped(
      Effect.gen(function*() {
        const limits = yield* Effect.serviceOption(EndpointLimits)
        const shared = Option.isSome(limits) ? limits.value.forConfig(config) : undefined
        const context = yield* Layer.build(LlmEndpoint.layer(config, { cacheDir: requestsDir, limits: shared })).pipe(
          Effect.mapError(endpointStageError(stage))
        )
        return yield* measured(Context.get(context, LlmEndpoint), requestsDir)
      })
    )
  })
