/**
 * The `stageB` stage end to end on a tiny setup (tiny Llama from `initTinyModels` with the real Llama-3 tokenizer, a
 * tiny random projector, 64 synthetic examples whose English answer is carried only by the foreign vector):
 * - it learns: L_SFT falls and the slots are used — on validation, L_zero − L_SFT ends clearly positive;
 * - negative control: with foreign vectors that carry no information about the answer the gap stays near zero;
 * - a run halted after a checkpoint and rerun ends with exactly the bytes of an uninterrupted run.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { stageB } from "../../../src/nodes/stageB/stage.ts"
import { readTableAll } from "../../../src/formats/parquet/table.ts"
import type { Row } from "../../../src/formats/parquet/table.ts"
import { readStageBDir } from "../../../src/artifacts/stageB.ts"
import type { StageBParams } from "../../../src/nodes/stageB/work.ts"
import { runStageB } from "../../../src/nodes/stageB/work.ts"
import type { Fixture } from "../../support/stageBModels.ts"
import { liveTensors, makeContext, run, setupBackend, stageBParams, writeFixture } from "../../support/stageBModels.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-stageB-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const OUTPUTS = [
  ["stageB", "stageB"],
  ["stageB.metrics", "stageB.metrics.parquet"]
] as const

/** Small-model settings: K = 2 slots, micro-batches of 4, one step each, a large learning rate. */
const BASE = {
  slots: 2,
  microBatch: 4,
  accumulation: 1,
  lrLora: 1e-2,
  lrSlots: 1e-2,
  lrScale: 1e-2,
  warmupFraction: 0.1,
  checkpointEvery: 0
}

let backend = ""
let main: Fixture
let shuffled: Fixture
beforeAll(async () => {
  backend = await setupBackend()
  main = await writeFixture(tmp, "main", { train: 64, val: 16, slots: 2 })
  shuffled = await writeFixture(tmp, "shuffled", { train: 64, val: 16, slots: 2, shuffleForeign: true })
})

interface Trained {
  readonly rows: ReadonlyArray<Row>
  readonly outDir: string
  readonly logs: ReadonlyArray<string>
  readonly ms: number
  readonly metrics: Readonly<Record<string, unknown>> | undefined
}

const train = async (fx: Fixture, name: string, params: StageBParams, scratch = path.join(tmp, name, "scratch"), haltAfter?: number): Promise<Trained> => {
  const outDir = path.join(tmp, name, "out")
  const logs: Array<string> = []
  const ctx = makeContext(params, fx.inputs, outDir, OUTPUTS, scratch, logs)
  const t0 = performance.now()
  const outcome = await run(runStageB(ctx, haltAfter === undefined ? {} : { haltAfter }))
  const ms = performance.now() - t0
  const rows = haltAfter === undefined ? await run(readTableAll(ctx.outputs["stageB.metrics"])) : []
  return { rows, outDir, logs, ms, metrics: outcome.metrics }
}

const num = (r: Row, k: string): number => {
  const v = r[k]
  if (typeof v !== "number") throw new Error(`${k} is ${String(v)}`)
  return v
}
const meanOf = (rows: ReadonlyArray<Row>, k: string): number => rows.reduce((s, r) => s + num(r, k), 0) / rows.length
const lastVal = (rows: ReadonlyArray<Row>): Row => [...rows].reverse().find((r) => r["valLoss"] !== null)!

describe("stageB on a tiny setup", () => {
  const learnParams = stageBParams({ ...BASE, epochs: 2, evalEvery: 16 })
  let learned: Trained

  it("learns: L_SFT falls and the model comes to rely on the slots (val L_zero − L_SFT > 0)", async () => {
    const before = liveTensors()
    learned = await train(main, "learn", learnParams)
    expect(liveTensors()).toBe(before) // model, projector, slots and optimizer state all released
    const rows = learned.rows
    expect(rows).toHaveLength(32) // 2 epochs × 64 / 4
    console.warn(
      `[stageB] ${backend}: ${rows.length} steps in ${(learned.ms / 1000).toFixed(1)} s ` +
        `(${(learned.ms / rows.length).toFixed(0)} ms/step, micro-batch 4, K 2, every 3rd step with L_zero)`
    )
    // L_SFT falls
    const first = meanOf(rows.slice(0, 4), "lsft")
    const last = meanOf(rows.slice(-4), "lsft")
    expect(last).toBeLessThan(first - 0.5)
    // the contrast steps (0-based step % 3 == 0) log L_zero and the gap, the others do not
    rows.forEach((r, i) => {
      expect(r["lzero"] === null).toBe(i % 3 !== 0)
      expect(r["gap"] === null).toBe(i % 3 !== 0)
      if (r["gap"] !== null) expect(num(r, "gap")).toBeCloseTo(num(r, "lzero") - num(r, "lsft"), 9)
    })
    // validation: at the end the slots are worth a clear margin over the same prompt without them
    const v = lastVal(rows)
    expect(num(v, "step")).toBe(32)
    const gap = num(v, "valLzero") - num(v, "valLoss")
    console.warn(`[stageB] learned: val L_SFT ${num(v, "valLoss").toFixed(3)}, val L_zero ${num(v, "valLzero").toFixed(3)}, gap ${gap.toFixed(3)}`)
    expect(gap).toBeGreaterThan(0.1)
    expect(num(v, "valLoss")).toBeLessThan(num(rows.find((r) => r["valLoss"] !== null)!, "valLoss"))
    // schedule: warmup from 0 (HF: step 0 runs at lr 0), peak after 10% of 32 steps, linear decay
    expect(num(rows[0], "lr")).toBe(0)
    expect(num(rows[3], "lr")).toBeCloseTo(1e-2, 9)
    expect(num(rows[31], "lr")).toBeCloseTo(1e-2 / 29, 9)
    expect(num(rows[5], "lrScale")).toBe(num(rows[5], "lr"))
    // the ForeignScale scalar started at the median embedding-row norm of the tiny decoder (≈ 0.02·√64)
    const dir = await run(readStageBDir(path.join(learned.outDir, "stageB")))
    expect(dir.doc.slotConfig.scaleInit).toBeGreaterThan(0.12)
    expect(dir.doc.slotConfig.scaleInit).toBeLessThan(0.2)
  })

  it("writes the stageB folder: slots, PEFT adapter, config", async () => {
    const dir = await run(readStageBDir(path.join(learned.outDir, "stageB")))
    expect(dir.doc.slots).toBe(2)
    expect(dir.doc.slotTokens).toEqual(["<f0>", "<f1>"])
    expect(dir.doc.addedTokens.slice(0, 3)).toEqual(["<foreign>", "</foreign>", "<foreign_emb>"])
    expect(dir.doc.lora).toEqual({ rank: 16, alpha: 16, dropout: 0.05, targets: ["q", "k", "v", "o", "gate", "up", "down"] })
    expect(dir.doc.steps).toBe(32)
    expect(dir.slotHost.get("expander.net.2.weight")!.shape).toEqual([2 * 64, 128])
    const adapterConfig = JSON.parse(fs.readFileSync(path.join(dir.adapterDir, "adapter_config.json"), "utf8")) as Record<string, unknown>
    expect(adapterConfig["r"]).toBe(16)
    expect(adapterConfig["target_modules"]).toEqual(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    // the stage declaration selects its config section, and K from models.slots (the run's only K)
    expect(stageB.selectParams({ stageB: {}, models: { slots: 3 } })).toEqual({ slots: 3 })
    expect(stageB.inputs).toEqual(["models", "projector", "zF.train", "hE.train", "sft.train", "sft.val"])
  })

  it("negative control: foreign vectors unrelated to the answer leave the gap near zero", async () => {
    const control = await train(shuffled, "control", learnParams)
    const v = lastVal(control.rows)
    const gap = num(v, "valLzero") - num(v, "valLoss")
    const learnedGap = num(lastVal(learned.rows), "valLzero") - num(lastVal(learned.rows), "valLoss")
    console.warn(`[stageB] control: val gap ${gap.toFixed(3)} (learned ${learnedGap.toFixed(3)})`)
    expect(Math.abs(gap)).toBeLessThan(0.05)
    expect(gap).toBeLessThan(learnedGap / 3)
  })

  it("a slot policy: byLength trains a K_max module on each example's own K; fixed K = models.slots writes what no policy writes", async () => {
    const wide = await writeFixture(tmp, "wide", { train: 64, val: 16, slots: 4 })
    const policy = { byLength: { min: 1, max: 3, tokensPerSlot: 2 } }
    const dyn = await train(wide, "byLength", stageBParams({ ...BASE, slots: 4, slotPolicy: policy, epochs: 1, maxSteps: 3, evalEvery: 3 }))
    const dir = await run(readStageBDir(path.join(dyn.outDir, "stageB")))
    expect(dir.doc.slots).toBe(3) // K_max = the policy's max, below models.slots
    expect(dir.doc.slotPolicy).toEqual(policy)
    expect(dir.doc.slotTokens).toEqual(["<f0>", "<f1>", "<f2>"])
    expect(dir.slotHost.get("expander.net.2.weight")!.shape).toEqual([3 * 64, 128])
    // the fixture's four foreign words are 4, 4, 5 and 4 encoder tokens long: K(x) = ⌈n / 2⌉ is 2 for three of them
    // and 3 for the fourth, so the mean over the training examples lies strictly between 2 and 3
    const meanSlots = dyn.metrics?.["meanSlots"]
    expect(typeof meanSlots).toBe("number")
    expect(meanSlots as number).toBeGreaterThan(2)
    expect(meanSlots as number).toBeLessThan(3)
    expect(Number.isFinite(num(lastVal(dyn.rows), "valLoss"))).toBe(true)
    // a policy the decoder cannot serve is an error that names both settings
    await expect(train(wide, "tooWide", stageBParams({ ...BASE, slots: 4, slotPolicy: { byLength: { min: 2, max: 6, tokensPerSlot: 1 } }, maxSteps: 1 }))).rejects.toThrow(
      /byLength\.max is 6 but models\.slots is 4/
    )
    // { fixed: K } at models.slots is the paper's setting: byte for byte what a run without a policy writes
    const plain = await train(main, "noPolicy", stageBParams({ ...BASE, epochs: 1, maxSteps: 2, evalEvery: 2 }))
    const fixed = await train(main, "fixed", stageBParams({ ...BASE, slotPolicy: { fixed: 2 }, epochs: 1, maxSteps: 2, evalEvery: 2 }))
    for (const file of ["stageB/slots.safetensors", "stageB/adapter/adapter_model.safetensors", "stageB/config.json"]) {
      expect(fs.readFileSync(path.join(fixed.outDir, file)).equals(fs.readFileSync(path.join(plain.outDir, file))), file).toBe(true)
    }
    expect(fixed.rows).toEqual(plain.rows)
  })

  it("resumes exactly: halted after a checkpoint and rerun, it ends with the bytes of an uninterrupted run", async () => {
    // 5 steps: L_zero on steps 0 and 3, so the resumed part (steps 2–4) has both kinds; validation on 2 and 4
    const params = stageBParams({ ...BASE, epochs: 1, maxSteps: 5, evalEvery: 2 })
    const whole = await train(main, "whole", params)
    const scratch = path.join(tmp, "resumed", "scratch")
    const halted = await train(main, "resumed", params, scratch, 2)
    expect(halted.metrics).toMatchObject({ halted: true, steps: 2, totalSteps: 5 })
    expect(fs.readFileSync(path.join(scratch, "checkpoints", "LATEST"), "utf8").trim()).toBe("step-000000002")
    const resumed = await train(main, "resumed", params, scratch)
    expect(resumed.metrics).toMatchObject({ resumedFrom: 2, steps: 5 })
    expect(resumed.logs.some((l) => l.includes("resuming from the checkpoint at step 2"))).toBe(true)
    expect(resumed.rows).toEqual(whole.rows)
    for (const file of ["stageB/slots.safetensors", "stageB/adapter/adapter_model.safetensors", "stageB/config.json"]) {
      expect(fs.readFileSync(path.join(resumed.outDir, file)).equals(fs.readFileSync(path.join(whole.outDir, file)))).toBe(true)
    }
    // a checkpoint written under other settings is not resumed
    const other = stageBParams({ ...BASE, epochs: 1, maxSteps: 1, evalEvery: 2 })
    const fresh = await train(main, "resumed", other, scratch)
    expect(fresh.metrics).toMatchObject({ resumedFrom: 0 })
    expect(fresh.logs.some((l) => l.includes("written with other settings"))).toBe(true)
  })
})
