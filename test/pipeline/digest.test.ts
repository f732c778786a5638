import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { ArtifactStore } from "../../src/pipeline/cache.ts"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { canonicalJson, digestPath, openDigestCache, sha256, stageKey } from "../../src/pipeline/digest.ts"
import { prepareStage } from "../../src/pipeline/plan.ts"
import { defineStage } from "../../src/pipeline/stage.ts"
import { makeToyStages, tmpDir, toyRunConfig } from "../support/toy.ts"

describe("canonicalJson", () => {
  it("sorts keys at every level and drops undefined fields", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: null }], c: "x" }, u: undefined })).toBe(
      `{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}`
    )
  })
  it("rejects values JSON cannot represent faithfully", () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/non-finite/)
    expect(() => canonicalJson({ a: new Map() })).toThrow(/plain object/)
    expect(() => canonicalJson({ a: 1n })).toThrow(/bigint/)
  })
})

describe("digests", () => {
  it("a file's digest is the sha256 of its content; a folder's covers relative paths and contents", async () => {
    const dir = tmpDir("digest")
    fs.mkdirSync(path.join(dir, "m", "sub"), { recursive: true })
    fs.writeFileSync(path.join(dir, "m", "a.txt"), "A")
    fs.writeFileSync(path.join(dir, "m", "sub", "b.txt"), "B")
    expect(await Effect.runPromise(digestPath(path.join(dir, "m", "a.txt")))).toBe(sha256("A"))
    const before = await Effect.runPromise(digestPath(path.join(dir, "m")))
    expect(before).toBe(sha256(`a.txt\t${sha256("A")}\nsub/b.txt\t${sha256("B")}\n`))
    fs.renameSync(path.join(dir, "m", "sub", "b.txt"), path.join(dir, "m", "sub", "c.txt"))
    expect(await Effect.runPromise(digestPath(path.join(dir, "m")))).not.toBe(before)
  })

  it("the digest cache reuses digests by (path, size, mtime) and notices changes", async () => {
    const dir = tmpDir("dcache")
    const file = path.join(dir, "big.txt")
    fs.writeFileSync(file, "one")
    const cacheFile = path.join(dir, "digests.json")
    const first = await Effect.runPromise(openDigestCache(cacheFile))
    expect(await Effect.runPromise(first.digest(file))).toBe(sha256("one"))
    await Effect.runPromise(first.save)
    const second = await Effect.runPromise(openDigestCache(cacheFile))
    expect(await Effect.runPromise(second.digest(file))).toBe(sha256("one"))
    expect(second.misses()).toBe(0)
    // A stale entry (same size and mtime) proves the cache is used instead of rehashing.
    const entries = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as { entries: Record<string, { digest: string }> }
    entries.entries[file].digest = "remembered"
    fs.writeFileSync(cacheFile, JSON.stringify(entries))
    const third = await Effect.runPromise(openDigestCache(cacheFile))
    expect(await Effect.runPromise(third.digest(file))).toBe("remembered")
    fs.writeFileSync(file, "two!")
    expect(await Effect.runPromise(third.digest(file))).toBe(sha256("two!"))
    expect(third.misses()).toBe(1)
  })

  it("a corrupt digest cache is ignored with a warning", async () => {
    const dir = tmpDir("dcorrupt")
    const cacheFile = path.join(dir, "digests.json")
    fs.writeFileSync(cacheFile, "{not json")
    const warnings: Array<string> = []
    const cache = await Effect.runPromise(openDigestCache(cacheFile, (m) => warnings.push(m)))
    fs.writeFileSync(path.join(dir, "f"), "x")
    expect(await Effect.runPromise(cache.digest(path.join(dir, "f")))).toBe(sha256("x"))
    expect(warnings[0]).toContain("unreadable digest cache")
  })
})

const keyOf = (stage: AnyStage, value: unknown, cacheDir: string, upstream: Record<string, string> = {}) =>
  Effect.runPromise(
    prepareStage(stage, toyRunConfig(value), (artifact) =>
      upstream[artifact] === undefined ? undefined : { path: `/x/${artifact}`, digest: upstream[artifact] }).pipe(
        Effect.map((p) => p.key),
        Effect.provide(ArtifactStore.layer(cacheDir))
      )
  )

describe("stage keys", () => {
  const [gen, double] = makeToyStages({ calls: {} })

  it("same config → same key; key order is irrelevant; undeclared params do not enter the key", async () => {
    const cache = tmpDir("keys")
    const a = await keyOf(gen, { gen: { n: 3, source: "" } }, cache)
    expect(a).toMatch(/^[0-9a-f]{64}$/)
    expect(await keyOf(gen, { gen: { n: 3, source: "" } }, cache)).toBe(a)
    expect(await keyOf(gen, { gen: { source: "", n: 3 } }, cache)).toBe(a)
    expect(await keyOf(gen, { gen: { n: 3, source: "", extra: "ignored" }, other: 1 }, cache)).toBe(a)
    expect(await keyOf(gen, { gen: { n: 4, source: "" } }, cache)).not.toBe(a)
  })

  it("input digests and the stage version enter the key", async () => {
    const cache = tmpDir("keys2")
    const value = { double: { factor: 2 } }
    const a = await keyOf(double, value, cache, { numbers: "d1" })
    expect(await keyOf(double, value, cache, { numbers: "d1" })).toBe(a)
    expect(await keyOf(double, value, cache, { numbers: "d2" })).not.toBe(a)
    expect(await keyOf({ ...double, version: "2" }, value, cache, { numbers: "d1" })).not.toBe(a)
  })

  it("external inputs enter by content, not by location", async () => {
    const dir = tmpDir("ext")
    const cache = path.join(dir, "cache")
    const one = path.join(dir, "one", "corpus.txt")
    const two = path.join(dir, "two", "corpus.txt")
    fs.mkdirSync(path.dirname(one))
    fs.mkdirSync(path.dirname(two))
    fs.writeFileSync(one, "same")
    fs.writeFileSync(two, "same")
    const a = await keyOf(gen, { gen: { n: 1, source: one } }, cache)
    expect(await keyOf(gen, { gen: { n: 1, source: two } }, cache)).toBe(a)
    fs.writeFileSync(two, "different")
    expect(await keyOf(gen, { gen: { n: 1, source: two } }, cache)).not.toBe(a)
    // The digest cache was written.
    expect(Object.keys(JSON.parse(fs.readFileSync(path.join(cache, "digests.json"), "utf8")).entries)).toContain(one)
  })

  it("stageKey is the sha256 of the canonical key material", () => {
    const material = { stage: "s", version: "1", params: { b: 1, a: 2 }, inputs: { x: "d" }, externalInputs: [] }
    expect(stageKey(material)).toBe(
      sha256(`{"externalInputs":[],"inputs":{"x":"d"},"params":{"a":2,"b":1},"stage":"s","version":"1"}`)
    )
  })

  it("invalid params are ConfigErrors naming the stage and field", async () => {
    const cache = tmpDir("badparams")
    const strict = defineStage({ ...gen, params: Schema.Struct({ n: Schema.Number, source: Schema.String }) })
    const error = await Effect.runPromise(
      Effect.flip(
        prepareStage(strict, toyRunConfig({ gen: { n: "three", source: "" } }), () => undefined).pipe(
          Effect.provide(ArtifactStore.layer(cache))
        )
      )
    )
    expect(error._tag).toBe("ConfigError")
    expect(error.message).toContain("gen: invalid parameters: n: Expected number")
  })
})
