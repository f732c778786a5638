/**
 * The `stageA` and `retrieval` stages on z_F / h_E produced by the real `encode` and `teacher` stages from tiny
 * checkpoints and a synthetic Khmer–English set (200 train / 64 holdout pairs):
 * - training must LEARN: holdout R@1 far above chance and the loss falling, while the same run on shuffled teacher
 *   targets (a broken pairing) stays at chance — a loss with a flipped sign or wrong labels fails these margins;
 * - a run killed mid-way and rerun from its checkpoint ends bit-identical to an uninterrupted run;
 * - the retrieval artifact's shape and its agreement with the training-time dev numbers.
 */
import { loadConfig } from "../../../src/nodes/config.ts"
import { Effect, Schema } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encode } from "../../../src/nodes/encode/stage.ts"
import { stages } from "../../../src/nodes/index.ts"
import { retrieval } from "../../../src/nodes/retrieval/stage.ts"
import { RetrievalParams } from "../../../src/nodes/retrieval/params.ts"
import type { BitextSuiteDoc } from "../../../src/schemas/retrieval.ts"
import { stageA } from "../../../src/nodes/stageA/stage.ts"
import { StageAParams } from "../../../src/nodes/stageA/params.ts"
import { teacher } from "../../../src/nodes/teacher/stage.ts"
import { buildDag } from "../../../src/pipeline/dag.ts"
import { openMatrixWriter, readMatrix } from "../../../src/formats/arrow/matrix.ts"
import { readTableAll } from "../../../src/formats/parquet/table.ts"
import { EncodeConfig } from "../../../src/nodes/encode/params.ts"
import { ModelsConfig } from "../../../src/nodes/models/params.ts"
import { TeacherConfig } from "../../../src/nodes/teacher/params.ts"
import { PAPER_RETRIEVAL } from "../../../src/schemas/paper.ts"
import { loadProjectorDir } from "../../../src/artifacts/projector.ts"
import { failingProgress, repoRoot, runModels, runStage, runStageExpectingFailure, sha256File, syntheticPairs, tempDir, writePairs } from "../../support/stageA.ts"

const dir = tempDir("train")
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const N_TRAIN = 200
const N_HOLD = 64
let inputs: Record<string, string> = {}

const trainParams = (fields: Record<string, unknown>) =>
  Schema.decodeUnknownSync(StageAParams)({
    steps: 200,
    microBatch: 32,
    accumulation: 1,
    queueSize: 256,
    hardNegatives: 32,
    warmupSteps: 20,
    evalEvery: 50,
    checkpointEvery: 0,
    evalN: N_HOLD,
    ...fields
  })

const metricsOf = (file: string) => Effect.runPromise(readTableAll(file))
const num = (v: unknown): number => {
  if (typeof v !== "number") throw new Error(`expected a number, got ${String(v)}`)
  return v
}
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length

let holdoutTable = ""
beforeAll(async () => {
  const pairs = syntheticPairs(N_TRAIN + N_HOLD, 5)
  const train = await writePairs(path.join(dir, "train.parquet"), pairs.slice(0, N_TRAIN))
  const holdout = await writePairs(path.join(dir, "holdout.parquet"), pairs.slice(N_TRAIN))
  const m = await runModels(Schema.decodeUnknownSync(ModelsConfig)({ seed: 3 }), train, dir)
  const up = { models: m.outputs["models"], train, holdout }
  holdoutTable = holdout
  const e = await runStage(encode, Schema.decodeUnknownSync(EncodeConfig)({ batchSize: 32 }), up, dir)
  const t = await runStage(teacher, Schema.decodeUnknownSync(TeacherConfig)({ batchSize: 32 }), up, dir)
  inputs = {
    "zF.train": e.outputs["zF.train"],
    "hE.train": t.outputs["hE.train"],
    "zF.holdout": e.outputs["zF.holdout"],
    "hE.holdout": t.outputs["hE.holdout"]
  }
})

describe("stageA", () => {
  it("learns the pairing: holdout R@1 far above chance and the loss falls; shuffled targets stay at chance", async () => {
    const r = await runStage(stageA, trainParams({}), inputs, dir, { outDir: path.join(dir, "learn.out"), scratchDir: path.join(dir, "learn.s") })
    const rows = await metricsOf(r.outputs["stageA.metrics"])
    expect(rows).toHaveLength(200)
    expect(Object.keys(rows[0])).toEqual(["step", "loss", "nce", "ncePH", "nceHP", "dir", "norm", "tau", "lr", "gradNorm", "devR1", "devMrr"])
    expect(rows.map((x) => x.step)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    expect(rows.filter((x) => x.devR1 !== null).map((x) => x.step)).toEqual([50, 100, 150, 200])
    expect(num(rows[0].tau)).toBeCloseTo(0.17, 6)
    expect(num(rows[199].lr)).toBeLessThan(2e-5)
    const firstLoss = mean(rows.slice(0, 10).map((x) => num(x.loss)))
    const lastLoss = mean(rows.slice(-10).map((x) => num(x.loss)))
    const r1 = num(rows[199].devR1)
    const chance = 1 / N_HOLD
    // measured: loss 3.5 → 0.7, R@1 0.84 (chance 0.016)
    expect(lastLoss).toBeLessThan(firstLoss - 1.5)
    expect(r1).toBeGreaterThan(0.5)
    expect(num(rows[199].devMrr)).toBeGreaterThan(0.6)

    // every selection after the first step (empty queue) was answered by the step's block product
    expect(r.outcome.metrics?.["hardNegativeScores"]).toEqual({ hits: 199, fallbacks: 0 })
    const proj = await Effect.runPromise(loadProjectorDir(r.outputs["projector"]))
    expect(proj.file).toMatchObject({ dIn: 32, dHidden: 128, dOut: 64, dropout: 0.1, steps: 200 })

    // negative control: the same run with the training teachers shuffled (pairs broken)
    const h = await Effect.runPromise(readMatrix(inputs["hE.train"]))
    const shuffled = new Float32Array(h.data.length)
    for (let i = 0; i < h.rows; i++) {
      const j = (i * 37 + 11) % h.rows // a permutation without fixed points for 200 rows
      shuffled.set(h.data.subarray(j * h.dim, (j + 1) * h.dim), i * h.dim)
    }
    const shuffledFile = path.join(dir, "hE.train.shuffled.arrow")
    await Effect.runPromise(
      Effect.gen(function*() {
        const w = yield* openMatrixWriter(shuffledFile, h.dim)
        yield* w.write({ rows: h.rows, dim: h.dim, data: shuffled })
        return yield* w.close
      })
    )
    const c = await runStage(stageA, trainParams({}), { ...inputs, "hE.train": shuffledFile }, dir, {
      outDir: path.join(dir, "control.out"),
      scratchDir: path.join(dir, "control.s")
    })
    const crow = (await metricsOf(c.outputs["stageA.metrics"]))[199]
    const controlR1 = num(crow.devR1)
    // measured: 0.016
    expect(controlR1).toBeLessThan(4 * chance)
    expect(r1).toBeGreaterThan(controlR1 + 0.4)

    // the retrieval stage agrees with the training-time dev numbers (same slice, same cosine)
    const rp = Schema.decodeUnknownSync(RetrievalParams)({ evalN: N_HOLD })
    const ret = await runStage(retrieval, rp, { projector: r.outputs["projector"], "zF.holdout": inputs["zF.holdout"], "hE.holdout": inputs["hE.holdout"], holdout: holdoutTable }, dir)
    const doc = JSON.parse(fs.readFileSync(ret.outputs["retrieval"], "utf8")) as Record<string, Record<string, number>>
    expect(Object.keys(doc)).toEqual(["stageA", "bootstrap", "ranks", "suite"])
    expect(Object.keys(doc["stageA"])).toEqual(["n", "r1", "r5", "r10", "mrr", "meanRank", "chanceR1", "r1CI", "mrrCI"])
    // the 95% bootstrap intervals over queries bracket the point estimates
    const ci = doc["stageA"] as unknown as Record<"r1CI" | "mrrCI", { readonly lo: number; readonly hi: number }>
    expect(ci.r1CI.lo).toBeLessThanOrEqual(doc["stageA"]["r1"])
    expect(ci.r1CI.hi).toBeGreaterThanOrEqual(doc["stageA"]["r1"])
    expect(ci.mrrCI.lo).toBeLessThanOrEqual(doc["stageA"]["mrr"])
    expect(ci.mrrCI.hi).toBeGreaterThanOrEqual(doc["stageA"]["mrr"])
    expect(doc["stageA"]["n"]).toBe(N_HOLD)
    expect(doc["stageA"]["chanceR1"]).toBeCloseTo(chance, 12)
    expect(doc["stageA"]["r1"]).toBe(r1)
    expect(doc["stageA"]["r10"]).toBeGreaterThanOrEqual(doc["stageA"]["r5"])
    expect(doc["stageA"]["meanRank"]).toBeLessThan(3)
    expect(ret.logs.join("\n")).toMatch(/paper Table 1 Stage A, n = 1024: {2}R@1 0\.430/)
    // the field's grid: 2 directions × 3 scorings; its foreign → English cosine cell is Table 1's row; the pool
    // curve's only pool (the whole 64-pair holdout) gives the same R@1; every mistake is classified
    const suite = (doc as unknown as { suite: BitextSuiteDoc }).suite
    expect(suite.grid.map((c) => `${c.direction} ${c.scoring}`)).toEqual([
      "foreign→english cosine", "foreign→english margin", "foreign→english csls",
      "english→foreign cosine", "english→foreign margin", "english→foreign csls"
    ])
    expect(suite.grid[0].metrics).toEqual(doc["stageA"])
    expect(suite.grid[0].xsimError).toBeCloseTo(1 - r1, 12)
    for (const cell of suite.grid) expect(cell.metrics.r1, `${cell.direction} ${cell.scoring}`).toBeGreaterThan(0.3)
    expect(suite.pool.find((x) => x.direction === "foreign→english" && x.scoring === "cosine")).toEqual({ direction: "foreign→english", scoring: "cosine", pool: 64, blocks: 1, r1 })
    const m = suite.mistakes
    expect(m.number + m.entity + m.other + m.identical).toBe(m.total)
    const retControl = await runStage(retrieval, rp, { projector: c.outputs["projector"], "zF.holdout": inputs["zF.holdout"], "hE.holdout": inputs["hE.holdout"], holdout: holdoutTable }, dir, {
      outDir: path.join(dir, "rc.out")
    })
    const ctrlDoc = JSON.parse(fs.readFileSync(retControl.outputs["retrieval"], "utf8")) as Record<string, Record<string, number>>
    expect(ctrlDoc["stageA"]["meanRank"]).toBeGreaterThan(15) // chance: (64 + 1) / 2
    // and so do the margin and CSLS cells, both ways: no scoring finds a pairing that training did not make
    for (const cell of (ctrlDoc as unknown as { suite: BitextSuiteDoc }).suite.grid) expect(cell.metrics.r1, `${cell.direction} ${cell.scoring}`).toBeLessThan(0.15)
  })

  it("a run killed mid-way resumes from its checkpoint and ends bit-identical to an uninterrupted run", async () => {
    // accumulation 2 × 16, a 64-slot queue that wraps, per-row negatives: every piece of state is exercised
    const params = trainParams({ steps: 30, microBatch: 16, accumulation: 2, queueSize: 64, hardNegatives: 8, hardNegativeRule: "per-row", checkpointEvery: 10, evalEvery: 10, warmupSteps: 5 })
    const straight = await runStage(stageA, params, inputs, dir, { outDir: path.join(dir, "s.out"), scratchDir: path.join(dir, "s.s") })
    const scratch = path.join(dir, "k.s")
    const killed = await runStageExpectingFailure(stageA, params, inputs, dir, {
      outDir: path.join(dir, "k1.out"),
      scratchDir: scratch,
      progress: failingProgress(25) // dies after step 25; the last checkpoint is step 20
    })
    expect(killed.pretty).toMatch(/injected failure/)
    expect(fs.readFileSync(path.join(scratch, "checkpoints", "LATEST"), "utf8").trim()).toBe("step-000000020")
    const resumed = await runStage(stageA, params, inputs, dir, { outDir: path.join(dir, "k2.out"), scratchDir: scratch })
    expect(resumed.outcome.metrics?.["resumedFrom"]).toBe(20)
    expect(resumed.logs.join("\n")).toMatch(/resuming from the checkpoint at step 20/)
    expect(sha256File(path.join(resumed.outputs["projector"], "projector.safetensors"))).toBe(
      sha256File(path.join(straight.outputs["projector"], "projector.safetensors"))
    )
    expect(await metricsOf(resumed.outputs["stageA.metrics"])).toEqual(await metricsOf(straight.outputs["stageA.metrics"]))
    // a checkpoint written with other settings is not resumed
    const other = await runStage(stageA, { ...params, lr: 2e-3 }, inputs, dir, { outDir: path.join(dir, "k3.out"), scratchDir: scratch })
    expect(other.outcome.metrics?.["resumedFrom"]).toBe(0)
    expect(other.logs.join("\n")).toMatch(/ignoring the checkpoint .* other settings/)
  })

  it("runs the shared-mean rule with exclusion of positives and accumulation, without leaking tensors", async () => {
    const tf = await import("@tensorflow/tfjs")
    const before = tf.memory().numTensors
    const r = await runStage(
      stageA,
      trainParams({ steps: 12, microBatch: 8, accumulation: 4, queueSize: 32, hardNegatives: 16, excludePositives: true, evalEvery: 0, dirReduction: "sum" }),
      inputs,
      dir,
      { outDir: path.join(dir, "x.out"), scratchDir: path.join(dir, "x.s") }
    )
    expect(tf.memory().numTensors).toBe(before)
    const rows = await metricsOf(r.outputs["stageA.metrics"])
    expect(rows).toHaveLength(12)
    expect(rows.every((x) => Number.isFinite(num(x.loss)) && Number.isFinite(num(x.gradNorm)))).toBe(true)
    expect(rows.filter((x) => x.devR1 !== null).map((x) => x.step)).toEqual([12]) // evalEvery 0: only at the end
  })

  it("rejects bad settings with the field named", async () => {
    const big = await runStageExpectingFailure(stageA, trainParams({ microBatch: 500 }), inputs, dir, { outDir: path.join(dir, "b1.out") })
    expect(big.typed?.message).toMatch(/stageA\.microBatch 500 is larger than the 200 training pairs/)
    // a range rule fails when the config loads, before any stage runs
    const tau = await Effect.runPromise(Effect.flip(loadConfig({ sets: ["stageA.tauEnd=0"], cwd: dir })))
    expect(tau.message).toMatch(/stageA\.tauEnd: Expected a number > 0/)
  })
})

describe("wiring", () => {
  it("the stages form a DAG: models → encode/teacher → stageA → retrieval; paper numbers are at hand", async () => {
    const dag = await Effect.runPromise(buildDag(stages))
    const at = (s: string) => dag.order.indexOf(s)
    for (const s of ["models", "encode", "teacher", "stageA", "retrieval"]) expect(at(s)).toBeGreaterThanOrEqual(0)
    expect(at("split")).toBeLessThan(at("models"))
    expect(at("models")).toBeLessThan(at("encode"))
    expect(at("models")).toBeLessThan(at("teacher"))
    expect(dag.upstream("stageA")).toEqual(["encode", "teacher"])
    expect(dag.upstream("retrieval")).toEqual(["stageA", "encode", "teacher", "split"]) // split: the holdout English, for the mistakes
    expect(PAPER_RETRIEVAL.stageA).toEqual({ n: 1024, r1: 0.43, r5: 0.706, r10: 0.819, mrr: 0.642, meanRank: 3.8 })
    expect(PAPER_RETRIEVAL.full.r1).toBe(0.45)
    expect(PAPER_RETRIEVAL.finetune.meanRank).toBe(24.7)
  })

  it("the stage declarations do not load tfjs (the CLI imports them for every command)", () => {
    const script = [
      `await import(${JSON.stringify(path.join(repoRoot, "src/nodes/index.ts"))})`,
      "const before = typeof globalThis._tfengine",
      `await import(${JSON.stringify(path.join(repoRoot, "src/nodes/stageA/work.ts"))})`,
      "console.log(before, typeof globalThis._tfengine)"
    ].join("\n")
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: repoRoot, encoding: "utf8" })
    expect(r.status).toBe(0)
    // `_tfengine` is tfjs's global engine: absent after importing the stages, present once the work module loads
    expect(r.stdout.trim().split("\n").pop()).toBe("undefined object")
  })
})
