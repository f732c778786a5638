/**
 * The config Schema of one OpenAI-compatible endpoint. Kept apart from the service (`src/services/endpoint.ts`) so
 * that decoding the run config does not load the `openai` client.
 */
import { Schema } from "effect"
import { dflt } from "./fields.ts"


const PositiveInt = Schema.Number.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1)))
const NonNegative = Schema.Number.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))
const NonNegativeInt = Schema.Number.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)))

/** Configuration of one endpoint. Every field but `baseUrl` has a default; `baseUrl` falls back to `OPENAI_BASE_URL`. */
export const EndpointConfig = Schema.Struct({
  /** e.g. `http://127.0.0.1:8000/v1` (vLLM), `http://localhost:11434/v1` (Ollama). Empty: env `OPENAI_BASE_URL`. */
  baseUrl: dflt(Schema.String, ""),
  model: dflt(Schema.String, "meta-llama/Meta-Llama-3-70B-Instruct"),
  /** Name of the environment variable that holds the API key (the key itself never goes in a config). */
  apiKeyEnv: dflt(Schema.String, "OPENAI_API_KEY"),
  temperature: dflt(NonNegative, 0),
  topP: dflt(NonNegative, 1),
  maxTokens: dflt(PositiveInt, 512),
  /** Sent as `seed` when set (vLLM, SGLang, llama.cpp and OpenAI honour it). */
  seed: Schema.optionalKey(Schema.Number.pipe(Schema.check(Schema.isInt()))),
  /** `max_tokens` for local servers; some hosted models only accept `max_completion_tokens`. */
  maxTokensField: dflt(Schema.Literals(["max_tokens", "max_completion_tokens"]), "max_tokens"),
  /** Requests on the wire at once. */
  concurrency: dflt(PositiveInt, 8),
  /** Token-bucket rate limit (requests started per minute, retries included); 0 = unlimited. */
  requestsPerMinute: dflt(NonNegative, 0),
  /** Per attempt: headers and body must arrive within this time. */
  timeoutMs: dflt(PositiveInt, 120_000),
  /** Retries after the first attempt (so at most maxRetries + 1 sends per request). */
  maxRetries: dflt(NonNegativeInt, 6),
  backoffBaseMs: dflt(NonNegative, 500),
  backoffMaxMs: dflt(NonNegative, 30_000),
  /** Treat an answer with empty content as a fault and retry it. */
  retryEmptyContent: dflt(Schema.Boolean, true),
  /** On interruption let attempts already sent finish and cache their answers (see module doc). */
  finishInFlightOnInterrupt: dflt(Schema.Boolean, true)
})
export type EndpointConfig = typeof EndpointConfig.Type
export type EndpointConfigInput = typeof EndpointConfig.Encoded

/** Decodes (and defaults) an endpoint config; throws a SchemaError naming the bad field. */
export const makeEndpointConfig = (input: EndpointConfigInput): EndpointConfig =>
  Schema.decodeUnknownSync(EndpointConfig)(input)

/** Who writes Stage B data / judges generations: "auto" = the endpoint when a base URL is configured (the section's
 *  `endpoint.baseUrl` or env `OPENAI_BASE_URL`), else the offline reference (template synthesizer / chrF judge). */
export const LlmMode = Schema.Literals(["auto", "offline", "endpoint"])
export type LlmMode = typeof LlmMode.Type

/** The base URL as it may be shown or hashed: no user:password, no query, no fragment, no trailing slash. */
export const redactUrl = (raw: string): string => {
  const url = new URL(raw)
  url.username = ""
  url.password = ""
  url.search = ""
  url.hash = ""
  return url.toString().replace(/\/+$/, "")
}

export type ResolvedLlmMode = "offline" | "endpoint"

type Env = Readonly<Record<string, string | undefined>>

/** The base URL the endpoint would use: the config's, else env `OPENAI_BASE_URL`, else "". */
export const configuredBaseUrl = (config: Pick<EndpointConfig, "baseUrl">, env: Env = process.env): string =>
  config.baseUrl !== "" ? config.baseUrl : (env["OPENAI_BASE_URL"] ?? "")

/** "auto" → "endpoint" when a base URL is configured, else "offline". */
export const resolveLlmMode = (mode: LlmMode, config: Pick<EndpointConfig, "baseUrl">, env: Env = process.env): ResolvedLlmMode =>
  mode === "auto" ? (configuredBaseUrl(config, env) === "" ? "offline" : "endpoint") : mode

/** The configured base URL as it may enter a cache key or a report (no credentials, no query); "" when unset. */
export const publicBaseUrl = (config: Pick<EndpointConfig, "baseUrl">, env: Env = process.env): string => {
  const raw = configuredBaseUrl(config, env)
  if (raw === "") return ""
  try {
    return redactUrl(raw)
  } catch (cause) {
    // Not a URL: the endpoint layer will fail with a config error naming it; key on a marker, not the raw text.
    return `(invalid URL: ${cause instanceof Error ? cause.name : "error"})`
  }
}

