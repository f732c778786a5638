/**
 * `encode` and `teacher` sharded (`sharding` in their declarations): shards of one window of rows each, run in a
 * shuffled order through the shard activity a cluster runner executes, merge to exactly the bytes of the
 * single-process `run` — the batches are the same, so the vectors are too.
 */
import { Effect, Fiber, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TensorBackend } from "../../../src/backend/tensorBackend.ts"
import { encode } from "../../../src/nodes/encode/stage.ts"
import { EncodeConfig } from "../../../src/nodes/encode/params.ts"
import { ModelsConfig } from "../../../src/nodes/models/params.ts"
import { teacher } from "../../../src/nodes/teacher/stage.ts"
import { TeacherConfig } from "../../../src/nodes/teacher/params.ts"
import type { AnyStage } from "../../../src/pipeline/dag.ts"
import { runShard, runShardedStage, shardScratchDir } from "../../../src/pipeline/shards.ts"
import { shuffle, testExecutor } from "../../support/shardExecutor.ts"
import type { Progress, ShardRange, Stage } from "../../../src/pipeline/stage.ts"
import { runModels, runStage, sha256File, syntheticPairs, tempDir, writePairs } from "../../support/stageA.ts"

const dir = tempDir("shards")
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const N_TRAIN = 300
const N_HOLD = 70
const quiet: Progress = { advance: () => {}, setTotal: () => {}, done: () => {} }
let inputs: Record<string, string> = {}

beforeAll(async () => {
  const pairs = syntheticPairs(N_TRAIN + N_HOLD, 11)
  const train = await writePairs(path.join(dir, "train.parquet"), pairs.slice(0, N_TRAIN))
  const holdout = await writePairs(path.join(dir, "holdout.parquet"), pairs.slice(N_TRAIN))
  const m = await runModels(Schema.decodeUnknownSync(ModelsConfig)({ seed: 5 }), train, dir)
  inputs = { models: m.outputs["models"], train, holdout }
})

const runSharded = async <P>(stage: Stage<P, TensorBackend>, params: P, label: string, seed: number) => {
  const out = path.join(dir, `${label}.out`)
  fs.mkdirSync(out, { recursive: true })
  const outputs = Object.fromEntries(stage.outputs.map((o) => [o.name, path.join(out, o.file)]))
  const done: Array<ShardRange> = []
  const logs: Array<string> = []
  const ctx = { params, inputs, outputs, scratchDir: path.join(dir, `${label}.scratch`), runDir: dir, progress: () => quiet, log: (m: string) => logs.push(m) }
  const outcome = await Effect.runPromise(
    runShardedStage(stage as unknown as AnyStage<TensorBackend>, ctx, { root: path.join(dir, `${label}.cache`), key: "k" }).pipe(
      Effect.provide(testExecutor([stage as unknown as AnyStage<TensorBackend>], {
        reorder: shuffle(seed),
        ran: done,
        provide: (effect) => Effect.provide(effect, TensorBackend.layer)
      })),
      Effect.provide(TensorBackend.layer)
    )
  )
  return { outcome, outputs, ran: done.map((r) => `${r.table}:${r.start}`), logs }
}

describe("sharded encode and teacher", () => {
  it("encode: shuffled shards give the bytes of the single-process run", async () => {
    const params = Schema.decodeUnknownSync(EncodeConfig)({ batchSize: 2 })
    const single = await runStage(encode, params, inputs, dir, { outDir: path.join(dir, "e.single") })
    const sharded = await runSharded(encode, params, "e.sharded", 7)
    // windows of 2 × 64 = 128 rows: train 0, 128, 256 and holdout 0
    expect([...sharded.ran].sort()).toEqual(["holdout:0", "train:0", "train:128", "train:256"])
    expect(sharded.ran).not.toEqual(["train:0", "train:128", "train:256", "holdout:0"])
    expect(sharded.outcome.rows).toEqual({ "zF.train": N_TRAIN, "zF.holdout": N_HOLD })
    for (const name of ["zF.train", "zF.holdout"]) expect(sha256File(sharded.outputs[name])).toBe(sha256File(single.outputs[name]))
  })

  it("teacher: shuffled shards give the bytes of the single-process run", async () => {
    const params = Schema.decodeUnknownSync(TeacherConfig)({ batchSize: 2 })
    const single = await runStage(teacher, params, inputs, dir, { outDir: path.join(dir, "t.single") })
    const sharded = await runSharded(teacher, params, "t.sharded", 9)
    expect(sharded.ran).toHaveLength(4)
    for (const name of ["hE.train", "hE.holdout"]) expect(sha256File(sharded.outputs[name])).toBe(sha256File(single.outputs[name]))
  })

  it("encode: a shard interrupted mid-way resumes from its scratch batches on the next attempt, same bytes", async () => {
    const params = Schema.decodeUnknownSync(EncodeConfig)({ batchSize: 2 })
    const root = path.join(dir, "e.resume.cache")
    const range = { table: "train", start: 0, end: 128 }
    const job = { stage: "encode", key: "k", root, params, inputs }
    const scratch = shardScratchDir(root, "encode", "k", range)
    const attempt = (progress: () => Progress = () => quiet) =>
      runShard(encode as unknown as AnyStage<TensorBackend>, job, range, { log: () => {}, progress }).pipe(Effect.provide(TensorBackend.layer))
    const markers = () => (fs.existsSync(scratch) ? fs.readdirSync(scratch).filter((f) => f.endsWith(".done")).length : 0)
    // first attempt: interrupted by its own progress once 5 batches (10 rows) are done, not after a sleep, so a
    // loaded machine cannot let it run to the end first
    let rows = 0
    let fiber: Fiber.Fiber<unknown, unknown> | undefined
    let stop = false
    const stopping: Progress = {
      ...quiet,
      advance: (n = 1) => {
        rows += n
        if (rows >= 10 && !stop) {
          stop = true
          fiber?.interruptUnsafe()
        }
      }
    }
    fiber = Effect.runFork(attempt(() => stopping))
    if (stop) fiber.interruptUnsafe()
    await Effect.runPromise(Fiber.await(fiber))
    expect(stop).toBe(true)
    const left = markers()
    expect(left).toBeGreaterThanOrEqual(5)
    expect(left).toBeLessThan(64)
    // second attempt: computes only the rest; the published shard equals an uninterrupted one's
    const second = await Effect.runPromise(attempt())
    expect(second.reused).toBe(false)
    expect(second.shard.metrics["computed"]).toBe(64 - left)
    expect(fs.existsSync(scratch)).toBe(false)
    const fresh = await Effect.runPromise(
      runShard(encode as unknown as AnyStage<TensorBackend>, { ...job, root: path.join(dir, "e.fresh.cache") }, range, { log: () => {}, progress: () => quiet })
        .pipe(Effect.provide(TensorBackend.layer))
    )
    expect(sha256File(path.join(second.shard.dir, "matrix.f32"))).toBe(sha256File(path.join(fresh.shard.dir, "matrix.f32")))
  })
})
