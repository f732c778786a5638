/**
 * The LLM endpoint: the one way this project talks to a language model over HTTP (Stage B synthesis with a 70B
 * instruct model, the pairwise judge). Built on the official `openai` client against any OpenAI-compatible chat
 * completions server: vLLM, SGLang, llama.cpp server, Ollama (`/v1`), or a hosted API.
 *
 * What the service guarantees:
 * - Retries are ours alone (the client's are disabled) so each one is counted: exponential backoff with jitter on
 *   429 (honouring `retry-after`, capped at `backoffMaxMs`), 5xx, 408, timeouts, connection errors, malformed bodies
 *   and empty content. Other 4xx fail at once.
 * - Concurrency is bounded (`concurrency`) and requests are paced by a token bucket (`requestsPerMinute`, 0 = off).
 * - Every answer is written to the on-disk request cache (`./requestCache.ts`) before the call returns; a lookup
 *   precedes every send, and identical requests in flight at the same time share one send. So a rerun, or a resume
 *   after a crash or an interrupt, never pays for an answer twice.
 * - Interrupting a call does not abandon a request already on the wire: by default (`finishInFlightOnInterrupt`)
 *   the attempt finishes (bounded by `timeoutMs`) and its answer is cached, then the interruption takes effect.
 *   Waiting for a rate-limit slot, a concurrency permit or a backoff sleep is interrupted immediately.
 * - The API key is read from the env var named by `apiKeyEnv` and handed to the client only; it never appears in
 *   the cache, the stats, a log line or an error (messages are redacted, URLs lose user:password and query).
 *   An unset variable sends the placeholder `EMPTY` (local servers ignore the key), but `llink run`'s pre-flight
 *   (`probeEndpoint`) reports it, so a forgotten key is caught before the run; set it to `EMPTY` for a keyless server
 *   or pass `--skip-preflight`.
 */
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError
} from "openai"
import { Clock, Context, Deferred, Effect, Exit, Fiber, Layer, Random, Schema, Semaphore } from "effect"
import type { Scope } from "effect"
import * as RequestCache from "./requestCache.ts"

import { EndpointConfig, makeEndpointConfig } from "../schemas/endpoint.ts"

export { EndpointConfig, makeEndpointConfig }
export { redactUrl } from "../schemas/endpoint.ts"
import { redactUrl } from "../schemas/endpoint.ts"
export type { EndpointConfigInput } from "../schemas/endpoint.ts"

export const ChatMessage = RequestCache.ChatMessage
export type ChatMessage = RequestCache.ChatMessage

/** One chat request. Unset sampling fields take the endpoint config's values; all of them enter the cache key. */
export const ChatRequest = Schema.Struct({
  messages: Schema.Array(ChatMessage),
  temperature: Schema.optionalKey(Schema.Number),
  topP: Schema.optionalKey(Schema.Number),
  maxTokens: Schema.optionalKey(Schema.Number),
  seed: Schema.optionalKey(Schema.Number),
  stop: Schema.optionalKey(Schema.Array(Schema.String)),
  /** `json_object` asks the server for JSON mode (vLLM, SGLang, llama.cpp, Ollama and OpenAI support it). */
  responseFormat: Schema.optionalKey(Schema.Literals(["text", "json_object"])),
  /** Ask for another independent sample of the same prompt (a different cache key); default 0. */
  variant: Schema.optionalKey(Schema.Number)
})
export type ChatRequest = typeof ChatRequest.Type

export const ChatResult = Schema.Struct({
  content: Schema.String,
  finishReason: Schema.NullOr(Schema.String),
  model: Schema.String,
  promptTokens: Schema.Number,
  completionTokens: Schema.Number,
  /** The answer came from the on-disk cache (nothing was sent). */
  cached: Schema.Boolean,
  /** The request's cache key (sha256 hex). */
  key: Schema.String,
  /** HTTP attempts this call made (0 for a cache hit or a scripted answer). */
  attempts: Schema.Number
})
export type ChatResult = typeof ChatResult.Type

/** Faults that are retried. */
export const RetryCause = Schema.Literals(["rate_limit", "server", "timeout", "connection", "malformed", "empty"])
export type RetryCause = typeof RetryCause.Type
const retryCauses: ReadonlyArray<RetryCause> = ["rate_limit", "server", "timeout", "connection", "malformed", "empty"]

/** Why a call failed: a retried fault that ran out of retries, or a non-retryable one. */
export const EndpointErrorKind = Schema.Literals([
  ...retryCauses,
  "client",
  "config",
  "cache",
  "unexpected"
])
export type EndpointErrorKind = typeof EndpointErrorKind.Type

/** An LLM call failed. `url` never carries credentials; `reason` is redacted of the API key. */
export class EndpointError extends Schema.TaggedError<EndpointError>()("EndpointError", {
  kind: EndpointErrorKind,
  /** HTTP status of the last attempt, when there was one. */
  status: Schema.optional(Schema.Number),
  /** HTTP attempts made (0: failed before sending). */
  attempts: Schema.Number,
  url: Schema.String,
  model: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    const status = this.status === undefined ? "" : ` status ${this.status}`
    return `LLM endpoint ${this.url} (${this.model}): ${this.kind}${status} after ${this.attempts} attempt(s): ${this.reason}`
  }
}

/** Counters for the manifest. */
export const EndpointStats = Schema.Struct({
  /** HTTP attempts sent (first tries and retries). */
  requestsSent: Schema.Number,
  /** Answers received and cached. */
  answered: Schema.Number,
  cacheHits: Schema.Number,
  /** Calls that joined an identical request already in flight. */
  dedupedInFlight: Schema.Number,
  /** Calls that ended in an EndpointError. */
  failures: Schema.Number,
  retries: Schema.Struct({
    rate_limit: Schema.Number,
    server: Schema.Number,
    timeout: Schema.Number,
    connection: Schema.Number,
    malformed: Schema.Number,
    empty: Schema.Number
  }),
  retriesTotal: Schema.Number,
  /** Cache files that could not be trusted (moved aside and re-requested). */
  cacheCorrupt: Schema.Number,
  promptTokens: Schema.Number,
  completionTokens: Schema.Number
})
export type EndpointStats = typeof EndpointStats.Type

export interface LlmEndpointShape {
  readonly chat: (request: ChatRequest) => Effect.Effect<ChatResult, EndpointError>
  readonly stats: Effect.Effect<EndpointStats>
}

/** Options of the live layer that are not part of the (hashed) config. */
export interface EndpointLayerOptions {
  /** Folder of the request cache. Without it answers are not persisted (only in-flight dedup applies). */
  readonly cacheDir?: string | undefined
  /** Where `baseUrl` and the API key are read from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Concurrency permits and rate gate shared with other endpoints of this process (`EndpointLimits`); own ones if absent. */
  readonly limits?: SharedLimits | undefined
}

/** An endpoint's concurrency permits and request-rate gate, which several endpoint instances may share. */
export interface SharedLimits {
  readonly permits: Semaphore.Semaphore
  readonly rateGate: Effect.Effect<void>
}

/** Fresh limits for `config`: `concurrency` permits, `requestsPerMinute` paced by a token bucket. */
export const makeLimits = (config: Pick<EndpointConfig, "concurrency" | "requestsPerMinute">): SharedLimits => ({
  permits: Semaphore.makeUnsafe(config.concurrency),
  rateGate: makeTokenBucket(config.requestsPerMinute, Math.min(config.concurrency, Math.ceil(config.requestsPerMinute / 60)))
})

/**
 * Limits shared by every endpoint this process builds for the same server, model and limits (a cluster runner
 * provides it): two shards that overlap on one runner then keep `concurrency` requests in flight between them, not
 * each. Absent (one process, one stage at a time): each endpoint has its own.
 */
export class EndpointLimits extends Context.Service<EndpointLimits, { readonly forConfig: (config: EndpointConfig) => SharedLimits }>()(
  "llink/EndpointLimits"
) {
  /** A memo of limits keyed by base URL, model, concurrency and rate. */
  static readonly shared = (): { readonly forConfig: (config: EndpointConfig) => SharedLimits } => {
    const byKey = new Map<string, SharedLimits>()
    return {
      forConfig: (config) => {
        const key = JSON.stringify([config.baseUrl, config.model, config.concurrency, config.requestsPerMinute])
        let limits = byKey.get(key)
        if (limits === undefined) byKey.set(key, (limits = makeLimits(config)))
        return limits
      }
    }
  }
}

/** A scripted answer: a string, or an Effect of one (to fail with an EndpointError or to wait). */
export type ScriptedAnswer = string | Effect.Effect<string, EndpointError>

export class LlmEndpoint extends Context.Service<LlmEndpoint, LlmEndpointShape>()("llink/LlmEndpoint") {
  /** The live endpoint over HTTP. Fails to build with EndpointError(kind "config" | "cache"). */
  static readonly layer = (config: EndpointConfig, options: EndpointLayerOptions = {}): Layer.Layer<LlmEndpoint, EndpointError> =>
    Layer.effect(LlmEndpoint, makeLiveEndpoint(config, options))

  /** A test endpoint answering with `fn(request, index)` (index counts calls from 0). No HTTP, no cache. */
  static readonly scripted = (fn: (request: ChatRequest, index: number) => ScriptedAnswer): Layer.Layer<LlmEndpoint> =>
    Layer.sync(LlmEndpoint, () => makeScriptedEndpoint(fn))
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers shared by both implementations

const emptyStats = () => ({
  requestsSent: 0,
  answered: 0,
  cacheHits: 0,
  dedupedInFlight: 0,
  failures: 0,
  retries: { rate_limit: 0, server: 0, timeout: 0, connection: 0, malformed: 0, empty: 0 },
  cacheCorrupt: 0,
  promptTokens: 0,
  completionTokens: 0
})
type MutableStats = ReturnType<typeof emptyStats>

const snapshot = (s: MutableStats): EndpointStats => ({
  ...s,
  retries: { ...s.retries },
  retriesTotal: retryCauses.reduce((acc, c) => acc + s.retries[c], 0)
})


/** Removes a secret (and bearer tokens / `sk-…` keys that a server may echo) from a text. */
export const redactSecret = (text: string, secret: string | undefined): string => {
  let out = text
  if (secret !== undefined && secret.length >= 4) out = out.split(secret).join("[redacted]")
  return out
    .replace(/Bearer\s+[^\s"',]+/gi, "Bearer [redacted]")
    .replace(/\bsk-[A-Za-z0-9_\-*.]{4,}/g, "sk-[redacted]")
}

const errorText = (cause: unknown): string => {
  if (cause instanceof Error) {
    const inner = cause.cause instanceof Error ? ` (${cause.cause.message})` : ""
    return `${cause.message}${inner}`
  }
  return String(cause)
}

/** The sampling part of the key, with the config's defaults filled in. */
const samplingOf = (config: EndpointConfig, request: ChatRequest): RequestCache.Sampling => ({
  temperature: request.temperature ?? config.temperature,
  topP: request.topP ?? config.topP,
  maxTokens: request.maxTokens ?? config.maxTokens,
  seed: request.seed ?? config.seed ?? null,
  stop: request.stop === undefined || request.stop.length === 0 ? null : [...request.stop],
  responseFormat: request.responseFormat ?? "text",
  variant: request.variant ?? 0
})

// ---------------------------------------------------------------------------------------------------------------
// Scripted endpoint

const makeScriptedEndpoint = (fn: (request: ChatRequest, index: number) => ScriptedAnswer): LlmEndpointShape => {
  const stats = emptyStats()
  let index = 0
  const config = makeEndpointConfig({ baseUrl: "http://scripted.invalid/v1", model: "scripted" })
  const chat = Effect.fn("LlmEndpoint.scripted.chat")(function*(request: ChatRequest) {
    const i = index++
    stats.requestsSent++
    const key = RequestCache.keyOf({
      baseUrl: config.baseUrl,
      model: config.model,
      messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
      sampling: samplingOf(config, request)
    })
    const answer = fn(request, i)
    const content = typeof answer === "string"
      ? answer
      : yield* answer.pipe(Effect.tapError(() => Effect.sync(() => void stats.failures++)))
    stats.answered++
    const result: ChatResult = {
      content,
      finishReason: "stop",
      model: "scripted",
      promptTokens: 0,
      completionTokens: 0,
      cached: false,
      key,
      attempts: 0
    }
    return result
  })
  return { chat, stats: Effect.sync(() => snapshot(stats)) }
}

// ---------------------------------------------------------------------------------------------------------------
// Live endpoint

/** One failed attempt, before it becomes an EndpointError or a retry. */
interface AttemptFailure {
  readonly kind: EndpointErrorKind
  readonly status?: number | undefined
  readonly reason: string
  readonly retryAfterMs?: number | undefined
}

const isRetryCause = (kind: EndpointErrorKind): kind is RetryCause => (retryCauses as ReadonlyArray<string>).includes(kind)

/** `retry-after-ms` or `retry-after` (seconds or an HTTP date) in milliseconds. */
const retryAfterOf = (headers: Headers | undefined): number | undefined => {
  if (headers === undefined) return undefined
  const ms = headers.get("retry-after-ms")
  if (ms !== null && Number.isFinite(Number(ms))) return Math.max(0, Number(ms))
  const value = headers.get("retry-after")
  if (value === null) return undefined
  const seconds = Number(value)
  if (value.trim() !== "" && Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(value)
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined
}

const classify = (cause: unknown, timedOut: boolean, timeoutMs: number): AttemptFailure => {
  if (timedOut || cause instanceof APIConnectionTimeoutError) {
    return { kind: "timeout", reason: `no complete answer within ${timeoutMs} ms` }
  }
  if (cause instanceof APIUserAbortError) return { kind: "connection", reason: "request aborted" }
  if (cause instanceof APIConnectionError) return { kind: "connection", reason: errorText(cause) }
  if (cause instanceof APIError) {
    const status = cause.status
    const reason = errorText(cause)
    if (status === 429) return { kind: "rate_limit", status, reason, retryAfterMs: retryAfterOf(cause.headers) }
    if (status === 408) return { kind: "timeout", status, reason }
    if (status !== undefined && status >= 500) return { kind: "server", status, reason, retryAfterMs: retryAfterOf(cause.headers) }
    return { kind: "client", status, reason }
  }
  if (cause instanceof SyntaxError) return { kind: "malformed", reason: `response body is not JSON: ${cause.message}` }
  return { kind: "unexpected", reason: errorText(cause) }
}

/** The part of a chat.completion body we rely on (extra fields are ignored). */
const CompletionBody = Schema.Struct({
  model: Schema.optionalKey(Schema.NullOr(Schema.String)),
  choices: Schema.Array(
    Schema.Struct({
      message: Schema.Struct({ content: Schema.optionalKey(Schema.NullOr(Schema.String)) }),
      finish_reason: Schema.optionalKey(Schema.NullOr(Schema.String))
    })
  ),
  usage: Schema.optionalKey(
    Schema.NullOr(
      Schema.Struct({
        prompt_tokens: Schema.optionalKey(Schema.NullOr(Schema.Number)),
        completion_tokens: Schema.optionalKey(Schema.NullOr(Schema.Number))
      })
    )
  )
})
const decodeCompletion = Schema.decodeUnknownExit(CompletionBody)

const toAnswer = (raw: unknown, fallbackModel: string, retryEmpty: boolean): RequestCache.CachedAnswer | AttemptFailure => {
  if (typeof raw !== "object" || raw === null) {
    return { kind: "malformed", reason: `response body is not a JSON object (${typeof raw})` }
  }
  const decoded = decodeCompletion(raw)
  if (Exit.isFailure(decoded)) return { kind: "malformed", reason: "response is not a chat.completion object" }
  const body = decoded.value
  const choice = body.choices[0]
  if (choice === undefined) return { kind: "malformed", reason: "response has no choices" }
  const content = choice.message.content ?? ""
  if (retryEmpty && content.trim() === "") return { kind: "empty", reason: "answer content is empty" }
  return {
    content,
    finishReason: choice.finish_reason ?? null,
    model: body.model ?? fallbackModel,
    promptTokens: body.usage?.prompt_tokens ?? 0,
    completionTokens: body.usage?.completion_tokens ?? 0
  }
}

const isFailure = (x: RequestCache.CachedAnswer | AttemptFailure): x is AttemptFailure => "kind" in x

/** Marks a thrown attempt failure so `tryPromise`'s catch can tell it from anything else. */
class AttemptFailed extends Error {
  readonly failure: AttemptFailure
  constructor(failure: AttemptFailure) {
    super(failure.reason)
    this.failure = failure
  }
}

/** A token bucket: `perMinute` tokens a minute, holding at most `burst`; starts full. FIFO via a one-permit lock. */
const makeTokenBucket = (perMinute: number, burst: number): Effect.Effect<void> => {
  if (perMinute <= 0) return Effect.void
  const perMs = perMinute / 60_000
  const capacity = Math.max(1, burst)
  let tokens = capacity
  let last: number | undefined
  const lock = Semaphore.makeUnsafe(1)
  const take: Effect.Effect<void> = Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      tokens = Math.min(capacity, tokens + (last === undefined ? 0 : (now - last) * perMs))
      last = now
      if (tokens >= 1) {
        tokens -= 1
        return
      }
      yield* Effect.sleep(Math.ceil((1 - tokens) / perMs))
    }
  })
  return lock.withPermits(1)(take)
}

interface Prepared {
  readonly key: string
  readonly keyInput: RequestCache.KeyInput
  readonly body: OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming
}

interface InFlight {
  readonly deferred: Deferred.Deferred<ChatResult, EndpointError>
  waiters: number
  interrupt: Effect.Effect<void>
}

const makeLiveEndpoint = Effect.fn("LlmEndpoint.make")(function*(config: EndpointConfig, options: EndpointLayerOptions) {
  const env = options.env ?? process.env
  const apiKey = env[config.apiKeyEnv]
  const redact = (text: string) => redactSecret(text, apiKey)
  const rawBase = config.baseUrl !== "" ? config.baseUrl : (env["OPENAI_BASE_URL"] ?? "")

  const configError = (reason: string) =>
    new EndpointError({ kind: "config", attempts: 0, url: "(unset)", model: config.model, reason: redact(reason) })
  if (rawBase === "") {
    return yield* configError("no base URL: set `baseUrl` in the endpoint config or the OPENAI_BASE_URL env var")
  }
  const safeBase = yield* Effect.try({
    try: () => redactUrl(rawBase),
    catch: (cause) => configError(`base URL is not a URL: ${errorText(cause)}`)
  })
  /** The base URL as it may appear in keys, files and errors. */
  const publicBase = redact(safeBase)
  const url = `${publicBase}/chat/completions`
  const failWith = (f: AttemptFailure, attempts: number) =>
    new EndpointError({ kind: f.kind, status: f.status, attempts, url, model: config.model, reason: redact(f.reason) })

  const cache = options.cacheDir === undefined
    ? undefined
    : yield* RequestCache.open(options.cacheDir).pipe(
      Effect.mapError((e) => failWith({ kind: "cache", reason: `${e.operation} ${e.path}: ${e.message}` }, 0))
    )

  const client = new OpenAI({
    apiKey: apiKey !== undefined && apiKey !== "" ? apiKey : "EMPTY",
    baseURL: rawBase,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: config.timeoutMs + 1_000,
    logLevel: "off"
  })

  const stats = emptyStats()
  const { permits, rateGate } = options.limits ?? makeLimits(config)
  const inflight = new Map<string, InFlight>()
  const scope: Scope.Scope = yield* Effect.scope

  const prepare = (request: ChatRequest): Prepared => {
    const sampling = samplingOf(config, request)
    // Only role and content enter the key (extra properties on a caller's objects must not change it).
    const messages = request.messages.map((m) => ({ role: m.role, content: m.content }))
    const keyInput: RequestCache.KeyInput = { baseUrl: publicBase, model: config.model, messages, sampling }
    const body: OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming = {
      model: config.model,
      messages,
      temperature: sampling.temperature,
      top_p: sampling.topP,
      stream: false,
      ...(config.maxTokensField === "max_tokens" ? { max_tokens: sampling.maxTokens } : { max_completion_tokens: sampling.maxTokens }),
      ...(sampling.seed === null ? {} : { seed: sampling.seed }),
      ...(sampling.stop === null ? {} : { stop: [...sampling.stop] }),
      ...(sampling.responseFormat === "json_object" ? { response_format: { type: "json_object" as const } } : {})
    }
    return { key: RequestCache.keyOf(keyInput), keyInput, body }
  }

  /** One HTTP attempt with its own timeout covering headers and body. */
  const sendOnce = (body: Prepared["body"]): Effect.Effect<unknown, AttemptFailure> =>
    Effect.tryPromise({
      try: async (signal) => {
        const controller = new AbortController()
        let timedOut = false
        const timer = setTimeout(() => {
          timedOut = true
          controller.abort()
        }, config.timeoutMs)
        const onInterrupt = () => controller.abort()
        signal.addEventListener("abort", onInterrupt)
        try {
          const raw: unknown = await client.chat.completions.create(body, { signal: controller.signal, maxRetries: 0 })
          return raw
        } catch (cause) {
          throw new AttemptFailed(classify(cause, timedOut, config.timeoutMs))
        } finally {
          clearTimeout(timer)
          signal.removeEventListener("abort", onInterrupt)
        }
      },
      catch: (cause) => (cause instanceof AttemptFailed ? cause.failure : classify(cause, false, config.timeoutMs))
    })

  /** Send, validate, persist: the unit that is allowed to finish after an interrupt. */
  const attempt = (p: Prepared): Effect.Effect<RequestCache.CachedAnswer, AttemptFailure> => {
    const work = Effect.gen(function*() {
      stats.requestsSent++
      const raw = yield* sendOnce(p.body)
      const answer = toAnswer(raw, config.model, config.retryEmptyContent)
      if (isFailure(answer)) return yield* Effect.fail(answer)
      if (cache !== undefined) {
        yield* cache.put(p.key, p.keyInput, answer).pipe(
          Effect.mapError((e): AttemptFailure => ({ kind: "cache", reason: `${e.operation} ${e.path}: ${e.message}` }))
        )
      }
      stats.answered++
      stats.promptTokens += answer.promptTokens
      stats.completionTokens += answer.completionTokens
      return answer
    })
    const guarded = config.finishInFlightOnInterrupt ? Effect.uninterruptible(work) : work
    // Permit first, then the rate token, so tokens are spent only when a request can actually go out.
    return permits.withPermits(1)(rateGate.pipe(Effect.andThen(guarded)))
  }

  const backoff = (attemptNo: number, retryAfterMs: number | undefined): Effect.Effect<number> =>
    Effect.map(Random.next, (u) => {
      const exp = Math.min(config.backoffMaxMs, config.backoffBaseMs * 2 ** (attemptNo - 1))
      const jittered = exp / 2 + (u * exp) / 2
      return retryAfterMs === undefined ? jittered : Math.max(jittered, Math.min(retryAfterMs, config.backoffMaxMs))
    })

  /** Cache lookup, then attempts with retries. Runs once per distinct in-flight key. */
  const resolve = (p: Prepared): Effect.Effect<ChatResult, EndpointError> =>
    Effect.gen(function*() {
      if (cache !== undefined) {
        const found = yield* cache.get(p.key, p.keyInput).pipe(
          Effect.mapError((e) => failWith({ kind: "cache", reason: `${e.operation} ${e.path}: ${e.message}` }, 0))
        )
        if (found._tag === "hit") {
          stats.cacheHits++
          return { ...found.answer, cached: true, key: p.key, attempts: 0 }
        }
        if (found._tag === "corrupt") {
          stats.cacheCorrupt++
          const moved = yield* cache.quarantine(p.key).pipe(
            Effect.mapError((e) => failWith({ kind: "cache", reason: `${e.operation} ${e.path}: ${e.message}` }, 0))
          )
          yield* Effect.logWarning(`request cache: entry ${p.key} untrusted (${found.reason}); moved to ${moved}`)
        }
      }
      let attempts = 0
      while (true) {
        attempts++
        const outcome = yield* Effect.result(attempt(p))
        if (outcome._tag === "Success") {
          return { ...outcome.success, cached: false, key: p.key, attempts }
        }
        const f = outcome.failure
        if (!isRetryCause(f.kind) || attempts > config.maxRetries) {
          stats.failures++
          return yield* failWith(f, attempts)
        }
        stats.retries[f.kind]++
        const delay = yield* backoff(attempts, f.retryAfterMs)
        yield* Effect.logDebug(
          `LLM endpoint: ${f.kind}${f.status === undefined ? "" : ` ${f.status}`} on attempt ${attempts}; retrying in ${Math.round(delay)} ms`
        )
        yield* Effect.sleep(delay)
      }
    })

  /** Joins the in-flight call for the key, or starts one; the last waiter to leave interrupts it. */
  const chat = Effect.fn("LlmEndpoint.chat")(function*(request: ChatRequest) {
    const p = yield* Effect.try({
      try: () => prepare(request),
      catch: (cause) => failWith({ kind: "client", reason: `request cannot be encoded: ${errorText(cause)}` }, 0)
    })
    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        let entry = inflight.get(p.key)
        if (entry !== undefined) {
          entry.waiters++
          stats.dedupedInFlight++
        } else {
          const created: InFlight = { deferred: Deferred.makeUnsafe<ChatResult, EndpointError>(), waiters: 1, interrupt: Effect.void }
          inflight.set(p.key, created)
          entry = created
          const worker = resolve(p).pipe(
            Effect.onExit((exit) =>
              Effect.suspend(() => {
                if (inflight.get(p.key) === created) inflight.delete(p.key)
                return Deferred.done(created.deferred, exit)
              })
            )
          )
          const fiber = yield* Effect.forkIn(worker, scope)
          created.interrupt = Fiber.interrupt(fiber)
        }
        const joined = entry
        return yield* restore(Deferred.await(joined.deferred)).pipe(
          Effect.onInterrupt(() =>
            Effect.suspend(() => {
              joined.waiters--
              if (joined.waiters > 0) return Effect.void
              if (inflight.get(p.key) === joined) inflight.delete(p.key)
              return joined.interrupt
            })
          )
        )
      })
    )
  })

  return LlmEndpoint.of({ chat, stats: Effect.sync(() => snapshot(stats)) })
})

// ---------------------------------------------------------------------------------------------------------------
// Pre-flight

/**
 * Whether the endpoint of `config` can be used, asked cheaply before a run: the key's env var is set (its value is
 * never shown), the base URL parses, and the server answers a models list within `timeoutMs` (or, when it has no
 * `/models`, a one-token chat request). Each problem is one line naming the URL (credentials removed); none: fine.
 */
export const probeEndpoint = Effect.fn("LlmEndpoint.probe")(function*(
  config: EndpointConfig,
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs = 5_000
) {
  const problems: Array<string> = []
  const apiKey = env[config.apiKeyEnv]
  if (apiKey === undefined || apiKey === "") {
    problems.push(`$${config.apiKeyEnv} is not set (the endpoint's key; a server that takes none still needs it set, e.g. to EMPTY)`)
  }
  const rawBase = config.baseUrl !== "" ? config.baseUrl : (env["OPENAI_BASE_URL"] ?? "")
  if (rawBase === "") return [...problems, "no base URL: set baseUrl in the endpoint config or the OPENAI_BASE_URL env var"]
  let shown: string
  try {
    shown = redactSecret(redactUrl(rawBase), apiKey)
  } catch (cause) {
    return [...problems, `the base URL is not a URL: ${redactSecret(errorText(cause), apiKey)}`]
  }
  const client = new OpenAI({
    apiKey: apiKey !== undefined && apiKey !== "" ? apiKey : "EMPTY",
    baseURL: rawBase,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: timeoutMs,
    logLevel: "off"
  })
  const statusOf = (e: unknown): number | undefined => (e instanceof APIError && typeof e.status === "number" ? e.status : undefined)
  const describe = (e: unknown): string => {
    const status = statusOf(e)
    if (status === 401 || status === 403) return `${shown} rejects the key in $${config.apiKeyEnv} (HTTP ${status})`
    if (e instanceof APIConnectionTimeoutError) return `${shown} did not answer within ${timeoutMs} ms`
    if (e instanceof APIConnectionError) return `cannot reach ${shown} (${redactSecret(errorText(e.cause ?? e), apiKey)})`
    return `${shown} answered with an error: ${redactSecret(errorText(e), apiKey)}`
  }
  const listed = yield* Effect.tryPromise({ try: () => client.models.list(), catch: (e) => e }).pipe(Effect.result)
  if (listed._tag === "Success") return problems
  const status = statusOf(listed.failure)
  if (status !== 404 && status !== 405) return [...problems, describe(listed.failure)]
  // no /models here: one token of a chat answer
  const chat = yield* Effect.tryPromise({
    try: () => client.chat.completions.create({ model: config.model, messages: [{ role: "user", content: "ping" }], max_tokens: 1 }),
    catch: (e) => e
  }).pipe(Effect.result)
  return chat._tag === "Success" ? problems : [...problems, describe(chat.failure)]
})
