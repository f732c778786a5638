/**
 * The split stage: sizes, disjointness, the eval slice, determinism, independence of input order, seed
 * sensitivity, agreement with an independent recomputation of the sha1 ranking, and clear errors.
 */
import * as crypto from "node:crypto"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { split } from "../../../src/nodes/split/stage.ts"
import { type Row, writeTable } from "../../../src/formats/parquet/table.ts"
import { PairColumns } from "../../../src/schemas/rows.ts"
import { rows, runStage, runStageFailure, splitParams, tempDir } from "../../support/dataStages.ts"

const N = 300
const PAIRS: ReadonlyArray<readonly [string, string]> = Array.from({ length: N }, (_, i) => [`Sentence ${i}.`, `ប្រយោគទី ${i}។`])

/** A seeded Fisher–Yates shuffle (mulberry32). */
const shuffled = <T>(xs: ReadonlyArray<T>, seed: number): Array<T> => {
  let s = seed
  const rand = () => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), s | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

const writeClean = async (dir: string, pairs: ReadonlyArray<readonly [string, string]>, rowGroupSize = 64): Promise<string> => {
  const file = path.join(dir, "clean.parquet")
  const data: Array<Row> = pairs.map(([english, foreign], id) => ({ id, english, foreign, origin: `c:${id + 1}`, score: null }))
  await Effect.runPromise(writeTable(file, PairColumns, Stream.fromIterable(data), { rowGroupSize }))
  return file
}

const runSplit = async (pairs: ReadonlyArray<readonly [string, string]>, fields: Record<string, unknown>) => {
  const dir = tempDir("split")
  const input = await writeClean(dir, pairs)
  const ran = await runStage(split, splitParams(fields), { clean: input }, dir)
  const content = async (name: string) => (await rows(ran.outputs[name])).map((r) => `${r.english}\t${r.foreign}`)
  return { ran, train: await content("train"), holdout: await content("holdout"), evalSet: await content("eval"), trainRows: await rows(ran.outputs["train"]) }
}

const FIELDS = { train: 100, holdout: 50, evalN: 20, seed: 17 }

describe("split stage", () => {
  it("makes disjoint train/holdout tables of the requested sizes, and eval = the head of holdout", async () => {
    const { ran, train, holdout, evalSet, trainRows } = await runSplit(PAIRS, FIELDS)
    expect(train).toHaveLength(100)
    expect(holdout).toHaveLength(50)
    expect(evalSet).toEqual(holdout.slice(0, 20))
    expect(new Set([...train, ...holdout]).size).toBe(150)
    expect(ran.outcome.rows).toEqual({ train: 100, holdout: 50, eval: 20 })
    expect(ran.outcome.metrics).toMatchObject({ available: 300, seed: 17 })
    // rows keep their columns (id, origin) unchanged
    const first = trainRows[0]
    expect(first.origin).toBe(`c:${Number(first.id) + 1}`)
  })

  it("ranks by sha1(seed \\0 english \\0 foreign), lowest first", async () => {
    const { train, holdout } = await runSplit(PAIRS, FIELDS)
    const key = ([en, km]: readonly [string, string]) => crypto.createHash("sha1").update(`17\u0000${en}\u0000${km}`).digest().subarray(0, 8).toString("hex")
    const expected = [...PAIRS].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)).map(([en, km]) => `${en}\t${km}`)
    expect(train).toEqual(expected.slice(0, 100))
    expect(holdout).toEqual(expected.slice(100, 150))
  })

  it("is deterministic and independent of input order; a different seed gives a different split", async () => {
    const a = await runSplit(PAIRS, FIELDS)
    const b = await runSplit(PAIRS, FIELDS)
    const c = await runSplit(shuffled(PAIRS, 99), FIELDS)
    expect(b.train).toEqual(a.train)
    expect(c.train).toEqual(a.train)
    expect(c.holdout).toEqual(a.holdout)
    expect(c.evalSet).toEqual(a.evalSet)
    const d = await runSplit(PAIRS, { ...FIELDS, seed: 18 })
    const overlap = d.train.filter((x) => new Set(a.train).has(x)).length
    expect(overlap).toBeLessThan(80) // ~100·(100/300) ≈ 33 expected by chance
    expect(d.train).not.toEqual(a.train)
  })

  it("holdoutFrom \"end\": the holdout is the last rows in key order, train the smallest keys before them", async () => {
    const { train, holdout, evalSet } = await runSplit(PAIRS, { ...FIELDS, holdoutFrom: "end" })
    const key = ([en, km]: readonly [string, string]) => crypto.createHash("sha1").update(`17\u0000${en}\u0000${km}`).digest().subarray(0, 8).toString("hex")
    const ranked = (xs: ReadonlyArray<readonly [string, string]>) =>
      [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)).map(([en, km]) => `${en}\t${km}`)
    expect(holdout).toEqual(ranked(PAIRS.slice(N - 50)))
    expect(evalSet).toEqual(holdout.slice(0, 20))
    expect(train).toEqual(ranked(PAIRS.slice(0, N - 50)).slice(0, 100))
    // the same rows from a different row-group layout give the same split
    const dir = tempDir("split-end")
    const regrouped = await runStage(split, splitParams({ ...FIELDS, holdoutFrom: "end" }), { clean: await writeClean(dir, PAIRS, 7) }, dir)
    expect((await rows(regrouped.outputs["holdout"])).map((r) => `${r.english}\t${r.foreign}`)).toEqual(holdout)
  })

  it("fails clearly with too few rows, or an eval slice larger than the holdout", async () => {
    const dir = tempDir("splitfail")
    const input = await writeClean(dir, PAIRS)
    const e = await runStageFailure(split, splitParams({ train: 250, holdout: 100, evalN: 20 }), { clean: input }, dir)
    expect(e.message).toContain("split.train + split.holdout = 250 + 100 = 350")
    expect(e.message).toContain("only 300 pairs")
    // an eval slice larger than the holdout is a config error now, caught when the config is decoded
    expect(() => splitParams({ train: 10, holdout: 5, evalN: 6 })).toThrow(/must be ≤ split\.holdout \(5\): the eval slice is taken from the holdout pairs, got 6/)
  })
})
