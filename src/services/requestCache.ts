/**
 * The on-disk cache of LLM answers. Every request the endpoint sends has a key: the sha256 of the canonical JSON of
 * `{ baseUrl, model, messages, sampling }` (see {@link keyOf}). An answer is stored as one JSON file per key in a
 * folder sharded by the first two hex digits (`<dir>/ab/abcdef….json`), written atomically: a temporary file in the
 * same folder, fsync'd, renamed over the final name, then the folder fsync'd. A reader therefore sees either no file
 * or a whole one, so a rerun or a resume after a crash never sends a request that already has an answer.
 *
 * Gotchas:
 * - The base URL in the key is the redacted one (no user:password, no query string), so a credential carried in the
 *   URL never reaches a file. The API key is never part of the key or of an entry.
 * - A file that does not decode, or whose stored key/request does not match, is reported as `corrupt` (never silently
 *   treated as a hit); the caller moves it aside with {@link quarantine} and counts it.
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { describeError } from "../errors/describe.ts"

/** Reading or writing the request cache failed (permissions, disk full, ...). */
export class RequestCacheError extends Schema.TaggedError<RequestCacheError>()("RequestCacheError", {
  path: Schema.String,
  operation: Schema.Literals(["mkdir", "read", "write", "quarantine"]),
  message: Schema.String
}) {}

/** One chat message (the OpenAI chat-completions shape, text content only). */
export const ChatMessage = Schema.Struct({
  role: Schema.Literals(["system", "user", "assistant"]),
  content: Schema.String
})
export type ChatMessage = typeof ChatMessage.Type

/** The sampling settings that change an answer; all of them enter the key. `null` = not sent. */
export const Sampling = Schema.Struct({
  temperature: Schema.Number,
  topP: Schema.Number,
  maxTokens: Schema.Number,
  seed: Schema.NullOr(Schema.Number),
  stop: Schema.NullOr(Schema.Array(Schema.String)),
  responseFormat: Schema.Literals(["text", "json_object"]),
  /** Distinguishes several samples of the same prompt (0 for the ordinary, single answer). */
  variant: Schema.Number
})
export type Sampling = typeof Sampling.Type

/** Everything that identifies a request. */
export const KeyInput = Schema.Struct({
  baseUrl: Schema.String,
  model: Schema.String,
  messages: Schema.Array(ChatMessage),
  sampling: Sampling
})
export type KeyInput = typeof KeyInput.Type

/** What is kept of an answer. */
export const CachedAnswer = Schema.Struct({
  content: Schema.String,
  finishReason: Schema.NullOr(Schema.String),
  /** The model name the server reported. */
  model: Schema.String,
  promptTokens: Schema.Number,
  completionTokens: Schema.Number
})
export type CachedAnswer = typeof CachedAnswer.Type

/** One cache file. */
export const CacheEntry = Schema.Struct({
  version: Schema.Literal(1),
  key: Schema.String,
  request: KeyInput,
  answer: CachedAnswer,
  /** ISO time the answer arrived. */
  createdAt: Schema.String
})
export type CacheEntry = typeof CacheEntry.Type

/** Result of a lookup: a hit, a miss, or a file that exists but cannot be trusted (with the reason). */
export type Lookup =
  | { readonly _tag: "hit"; readonly answer: CachedAnswer }
  | { readonly _tag: "miss" }
  | { readonly _tag: "corrupt"; readonly reason: string }

/**
 * Canonical JSON: object keys sorted (by UTF-16 code units), no whitespace, `undefined` members dropped, arrays kept
 * in order. Throws on values JSON cannot represent faithfully (non-finite numbers, bigint, functions), because two
 * different requests must never share a key.
 */
export const canonicalJson = (value: unknown): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value)
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`)
      return JSON.stringify(value)
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort()
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`)
  }
}

/** sha256 (hex) of a string. */
export const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex")

/** The cache key of a request: sha256 of the canonical JSON of the key input. */
export const keyOf = (input: KeyInput): string => sha256Hex(canonicalJson(input))

/** Where the entry of `key` lives under `dir`. */
export const entryPath = (dir: string, key: string): string => path.join(dir, key.slice(0, 2), `${key}.json`)

const errorText = (cause: unknown): string => describeError(cause)

const isNotFound = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && (cause as { code: unknown }).code === "ENOENT"

const decodeEntry = Schema.decodeUnknownExit(CacheEntry)

/** A handle on one cache folder. */
export interface RequestCache {
  readonly dir: string
  /** Looks `key` up; `request` is compared with the stored one (a mismatch is reported as corrupt). */
  readonly get: (key: string, request: KeyInput) => Effect.Effect<Lookup, RequestCacheError>
  /** Stores an answer atomically (temp file + fsync + rename + folder fsync). Overwrites an existing entry. */
  readonly put: (key: string, request: KeyInput, answer: CachedAnswer) => Effect.Effect<void, RequestCacheError>
  /** Moves an untrustworthy entry aside (`<key>.json.corrupt-<time>`); returns the new path. */
  readonly quarantine: (key: string) => Effect.Effect<string, RequestCacheError>
  /** Number of entries on disk (walks the shard folders; for tests and reports). */
  readonly size: Effect.Effect<number, RequestCacheError>
}

/** Opens (creating when absent) a cache folder. */
export const open = Effect.fn("RequestCache.open")(function*(dir: string) {
  const root = path.resolve(dir)
  yield* Effect.tryPromise({
    try: () => fs.mkdir(root, { recursive: true }),
    catch: (cause) => new RequestCacheError({ path: root, operation: "mkdir", message: errorText(cause) })
  })

  const get = (key: string, request: KeyInput): Effect.Effect<Lookup, RequestCacheError> => {
    const file = entryPath(root, key)
    return Effect.tryPromise({
      try: async (): Promise<Lookup> => {
        let text: string
        try {
          text = await fs.readFile(file, "utf8")
        } catch (cause) {
          if (isNotFound(cause)) return { _tag: "miss" }
          throw cause
        }
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch (cause) {
          return { _tag: "corrupt", reason: `not JSON: ${errorText(cause)}` }
        }
        const decoded = decodeEntry(json)
        if (decoded._tag === "Failure") return { _tag: "corrupt", reason: "entry does not match the CacheEntry schema" }
        const entry = decoded.value
        if (entry.key !== key) return { _tag: "corrupt", reason: `stored key ${entry.key} differs from ${key}` }
        if (canonicalJson(entry.request) !== canonicalJson(request)) {
          return { _tag: "corrupt", reason: "stored request differs from the request (hash collision or tampering)" }
        }
        return { _tag: "hit", answer: entry.answer }
      },
      catch: (cause) => new RequestCacheError({ path: file, operation: "read", message: errorText(cause) })
    })
  }

  const put = (key: string, request: KeyInput, answer: CachedAnswer): Effect.Effect<void, RequestCacheError> => {
    const file = entryPath(root, key)
    const shard = path.dirname(file)
    const entry: CacheEntry = { version: 1, key, request, answer, createdAt: new Date().toISOString() }
    const text = `${canonicalJson(entry)}\n`
    return Effect.tryPromise({
      try: async () => {
        await fs.mkdir(shard, { recursive: true })
        const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`
        try {
          const handle = await fs.open(tmp, "wx")
          try {
            await handle.writeFile(text, "utf8")
            await handle.sync()
          } finally {
            await handle.close()
          }
          await fs.rename(tmp, file)
        } catch (cause) {
          // Remove the partial temp file, then report the original failure.
          await fs.rm(tmp, { force: true })
          throw cause
        }
        const dirHandle = await fs.open(shard, "r")
        try {
          await dirHandle.sync()
        } finally {
          await dirHandle.close()
        }
      },
      catch: (cause) => new RequestCacheError({ path: file, operation: "write", message: errorText(cause) })
    })
  }

  const quarantine = (key: string): Effect.Effect<string, RequestCacheError> => {
    const file = entryPath(root, key)
    const target = `${file}.corrupt-${Date.now()}`
    return Effect.tryPromise({
      try: async () => {
        await fs.rename(file, target)
        return target
      },
      catch: (cause) => new RequestCacheError({ path: file, operation: "quarantine", message: errorText(cause) })
    })
  }

  const size = Effect.tryPromise({
    try: async () => {
      let n = 0
      for (const shard of await fs.readdir(root, { withFileTypes: true })) {
        if (!shard.isDirectory()) continue
        for (const name of await fs.readdir(path.join(root, shard.name))) {
          if (/^[0-9a-f]{64}\.json$/.test(name)) n++
        }
      }
      return n
    },
    catch: (cause) => new RequestCacheError({ path: root, operation: "read", message: errorText(cause) })
  })

  const cache: RequestCache = { dir: root, get, put, quarantine, size }
  return cache
})
