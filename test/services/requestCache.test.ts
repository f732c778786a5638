/** The request cache: canonical JSON, keys, atomic sharded files, corrupt entries; URL and secret redaction. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { redactSecret, redactUrl } from "../../src/services/endpoint.ts"
import * as RequestCache from "../../src/services/requestCache.ts"

const input = (over: Partial<RequestCache.KeyInput> = {}): RequestCache.KeyInput => ({
  baseUrl: "http://127.0.0.1:8000/v1",
  model: "m",
  messages: [{ role: "user", content: "hi" }],
  sampling: { temperature: 0, topP: 1, maxTokens: 16, seed: null, stop: null, responseFormat: "text", variant: 0 },
  ...over
})
const answer: RequestCache.CachedAnswer = { content: "hello", finishReason: "stop", model: "m", promptTokens: 1, completionTokens: 1 }

describe("canonical JSON and keys", () => {
  it("sorts keys recursively, drops undefined members and keeps array order", () => {
    expect(RequestCache.canonicalJson({ b: 1, a: { d: [3, 1], c: "x" }, u: undefined })).toBe('{"a":{"c":"x","d":[3,1]},"b":1}')
    expect(RequestCache.canonicalJson([undefined, null, true])).toBe("[null,null,true]")
    expect(RequestCache.canonicalJson("ក\n")).toBe('"ក\\n"')
    expect(() => RequestCache.canonicalJson({ x: Number.NaN })).toThrow(TypeError)
    expect(() => RequestCache.canonicalJson({ x: Number.POSITIVE_INFINITY })).toThrow(TypeError)
    expect(() => RequestCache.canonicalJson({ x: 1n })).toThrow(TypeError)
  })

  it("gives the same key whatever the property order, and a new key for any change", () => {
    const a = RequestCache.keyOf(input())
    const reordered = RequestCache.keyOf({
      sampling: { variant: 0, responseFormat: "text", stop: null, seed: null, maxTokens: 16, topP: 1, temperature: 0 },
      messages: [{ content: "hi", role: "user" }],
      model: "m",
      baseUrl: "http://127.0.0.1:8000/v1"
    })
    expect(reordered).toBe(a)
    expect(a).toMatch(/^[0-9a-f]{64}$/)
    const variants = [
      input({ model: "m2" }),
      input({ baseUrl: "http://127.0.0.1:8001/v1" }),
      input({ messages: [{ role: "system", content: "hi" }] }),
      input({ sampling: { ...input().sampling, temperature: 0.1 } }),
      input({ sampling: { ...input().sampling, seed: 1 } }),
      input({ sampling: { ...input().sampling, variant: 1 } })
    ]
    for (const v of variants) expect(RequestCache.keyOf(v)).not.toBe(a)
  })
})

describe("on-disk cache", () => {
  it("stores one sharded file per key atomically and reads it back", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-reqcache-"))
    const key = RequestCache.keyOf(input())
    const program = Effect.gen(function*() {
      const cache = yield* RequestCache.open(path.join(dir, "nested", "cache"))
      const before = yield* cache.get(key, input())
      yield* cache.put(key, input(), answer)
      const after = yield* cache.get(key, input())
      const mismatch = yield* cache.get(key, input({ model: "other" }))
      return { cache, before, after, mismatch, size: yield* cache.size }
    })
    const { cache, before, after, mismatch, size } = await Effect.runPromise(program)
    expect(before).toEqual({ _tag: "miss" })
    expect(after).toEqual({ _tag: "hit", answer })
    expect(mismatch._tag).toBe("corrupt")
    expect(size).toBe(1)
    const file = RequestCache.entryPath(cache.dir, key)
    expect(path.basename(path.dirname(file))).toBe(key.slice(0, 2))
    expect(fs.readdirSync(path.dirname(file))).toEqual([`${key}.json`]) // no temp file left behind
    const entry = JSON.parse(fs.readFileSync(file, "utf8"))
    expect(entry).toMatchObject({ version: 1, key, answer })
  })

  it("reports untrusted files as corrupt and moves them aside", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-reqcache-"))
    const key = RequestCache.keyOf(input())
    const file = RequestCache.entryPath(dir, key)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    const program = (text: string) =>
      Effect.gen(function*() {
        fs.writeFileSync(file, text)
        const cache = yield* RequestCache.open(dir)
        return yield* cache.get(key, input())
      })
    const notJson = await Effect.runPromise(program("{"))
    expect(notJson._tag === "corrupt" && notJson.reason.startsWith("not JSON")).toBe(true)
    const wrongShape = await Effect.runPromise(program('{"version":1}'))
    expect(wrongShape).toEqual({ _tag: "corrupt", reason: "entry does not match the CacheEntry schema" })
    const wrongKey = await Effect.runPromise(
      program(RequestCache.canonicalJson({ version: 1, key: "0".repeat(64), request: input(), answer, createdAt: "t" }))
    )
    expect(wrongKey._tag === "corrupt" && wrongKey.reason.includes("stored key")).toBe(true)
    const moved = await Effect.runPromise(Effect.flatMap(RequestCache.open(dir), (c) => c.quarantine(key)))
    expect(fs.existsSync(moved)).toBe(true)
    expect(fs.existsSync(file)).toBe(false)
  })

  it("fails with a tagged error when the folder cannot be created", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-reqcache-"))
    const blocker = path.join(dir, "file")
    fs.writeFileSync(blocker, "x")
    const error = await Effect.runPromise(Effect.flip(RequestCache.open(path.join(blocker, "cache"))))
    expect(error._tag).toBe("RequestCacheError")
    expect(error.operation).toBe("mkdir")
  })
})

describe("redaction", () => {
  it("strips credentials, query and fragment from URLs", () => {
    expect(redactUrl("http://user:pw@127.0.0.1:8000/v1/?api-key=abc#x")).toBe("http://127.0.0.1:8000/v1")
    expect(redactUrl("https://api.example.com/v1")).toBe("https://api.example.com/v1")
    expect(() => redactUrl("not a url")).toThrow()
  })

  it("removes the secret, bearer tokens and sk- keys from text", () => {
    expect(redactSecret("key=abcd1234 used", "abcd1234")).toBe("key=[redacted] used")
    expect(redactSecret("Authorization: Bearer xyz.123", undefined)).toBe("Authorization: Bearer [redacted]")
    expect(redactSecret("Incorrect API key provided: sk-proj-abc***xyz.", undefined)).toBe("Incorrect API key provided: sk-[redacted]")
  })
})
