/**
 * The shard contract of the engine (`src/pipeline/shards.ts`) on a toy stage: shards run in any order (here: an
 * executor that runs them shuffled and concurrently) merge to the bytes of the in-process run; a crash after k shards
 * resumes with only the others; a torn shard file is recomputed; a shard that fails names its range; the `.shards`
 * folder is gone once the stage is published.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { shardDir, shardsRoot } from "../../src/pipeline/shards.ts"
import { shuffle, testExecutor } from "../support/shardExecutor.ts"
import type { ShardRange } from "../../src/pipeline/stage.ts"
import { makeShardToy, type ShardToyHooks } from "../support/shardToy.ts"
import { makeWorkspace, runToy, type Workspace } from "../support/toy.ts"

const config = (n: number, size: number) => ({ nums: { n }, sq: { size } })
const hooks = (): ShardToyHooks => ({ runs: {}, order: [] })
const digestOf = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

const squaresFile = (ws: Workspace, report: { readonly manifest: { readonly stages: Record<string, { readonly outputs: Record<string, { readonly path: string }> }> } }) => {
  const file = report.manifest.stages["sq"].outputs["squares"].path
  expect(file.startsWith(ws.cacheDir)).toBe(true)
  return file
}

/** Runs pending shards in a seeded shuffled order, two at a time, through `runShard` (as a cluster runner would). */
const shuffledExecutor = (stages: ReadonlyArray<AnyStage>, seed: number, ran: Array<ShardRange>) =>
  testExecutor(stages, { reorder: shuffle(seed), ran, concurrency: 2, provide: (effect) => effect })

describe("sharded stages", () => {
  it("merge to the same bytes whatever order the shards ran in, and the shard folder is removed after publishing", async () => {
    const a = makeWorkspace("shards-a")
    const h1 = hooks()
    const straight = await Effect.runPromise(runToy(a, makeShardToy(h1), { value: config(23, 5) }))
    expect(straight.report.failed).toBe(false)
    expect(h1.order).toEqual([0, 5, 10, 15, 20]) // in-process: plan order
    const single = squaresFile(a, straight.report)
    expect(JSON.parse(fs.readFileSync(single, "utf8")).all).toEqual(Array.from({ length: 23 }, (_, i) => i * i))

    for (const seed of [1, 2]) {
      const b = makeWorkspace(`shards-b${seed}`)
      const h2 = hooks()
      const stages = makeShardToy(h2)
      const seen: Array<ShardRange> = []
      const shuffled = await Effect.runPromise(
        runToy(b, stages, { value: config(23, 5) }).pipe(Effect.provide(shuffledExecutor(stages, seed, seen)))
      )
      expect(shuffled.report.failed).toBe(false)
      expect(seen).toHaveLength(5)
      expect(h2.order).not.toEqual([0, 5, 10, 15, 20])
      expect(digestOf(squaresFile(b, shuffled.report))).toBe(digestOf(single))
      expect(shuffled.report.manifest.stages["sq"].outputs["squares"]).toMatchObject({
        digest: straight.report.manifest.stages["sq"].outputs["squares"].digest
      })
      const key = shuffled.report.manifest.stages["sq"].key!
      expect(fs.existsSync(shardsRoot(b.cacheDir, "sq", key))).toBe(false)
      expect(shuffled.lines.join("\n")).toMatch(/5 shard\(s\): 0 already published, 5 to run in a test executor/)
    }
  })

  it("resumes after a crash after k shards: only the others run, and the bytes are those of an uninterrupted run", async () => {
    const a = makeWorkspace("shards-ref")
    const ref = await Effect.runPromise(runToy(a, makeShardToy(hooks()), { value: config(40, 7) }))
    const ws = makeWorkspace("shards-crash")
    const h = hooks()
    h.failAt = new Set([21])
    const crashed = await Effect.runPromise(runToy(ws, makeShardToy(h), { value: config(40, 7) }))
    expect(crashed.report.failed).toBe(true)
    const failure = crashed.report.stages.find((s) => s.stage === "sq")!
    expect(failure.status).toBe("failed")
    expect(failure.error).toMatch(/shard nums\[21, 28\) failed: bad row 21/)
    expect(h.order).toEqual([0, 7, 14, 21])
    const key = failure.key!
    for (const start of [0, 7, 14]) {
      expect(fs.existsSync(path.join(shardDir(ws.cacheDir, "sq", key, { table: "nums", start, end: start + 7 }), "_shard.json"))).toBe(true)
    }
    // a torn copy of a finished shard is not trusted
    fs.writeFileSync(path.join(shardDir(ws.cacheDir, "sq", key, { table: "nums", start: 7, end: 14 }), "part.json"), "[1,2")
    h.failAt = undefined
    h.order.length = 0
    const resumed = await Effect.runPromise(runToy(ws, makeShardToy(h), { value: config(40, 7) }))
    expect(resumed.report.failed).toBe(false)
    expect(h.order).toEqual([7, 21, 28, 35])
    expect(resumed.lines.join("\n")).toMatch(/6 shard\(s\): 2 already published, 4 to run in this process/)
    expect(digestOf(squaresFile(ws, resumed.report))).toBe(digestOf(squaresFile(a, ref.report)))
    // and a third run is a cache hit: no shard runs
    h.order.length = 0
    const again = await Effect.runPromise(runToy(ws, makeShardToy(h), { value: config(40, 7) }))
    expect(again.report.stages.find((s) => s.stage === "sq")!.status).toBe("cached")
    expect(h.order).toEqual([])
  })

  it("a shard that fails on the executor fails the stage with its range and error", async () => {
    const ws = makeWorkspace("shards-fail")
    const h = hooks()
    h.failAt = new Set([10])
    const stages = makeShardToy(h)
    const r = await Effect.runPromise(
      runToy(ws, stages, { value: config(20, 5) }).pipe(Effect.provide(shuffledExecutor(stages, 3, [])))
    )
    expect(r.report.stages.find((s) => s.stage === "sq")!.error).toMatch(/shard nums\[10, 15\) failed: bad row 10/)
  })
})
