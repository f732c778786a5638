/**
 * The `finetune` stage (direct fine-tune baseline) on the tiny setup: LoRA on the decoder with the foreign word in
 * the prompt learns the synthetic task (loss and validation loss fall, and end well below a control trained on
 * foreign words shuffled across classes), writes a PEFT adapter that `loadLora` reads
 * back, and resumes exactly from a checkpoint.
 */
import { loadConfig } from "../../../src/nodes/config.ts"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadModelConfig } from "../../../src/models/hfconfig.ts"
import { disposeLora, loadLora } from "../../../src/models/lora.ts"
import { finetune } from "../../../src/nodes/finetune/stage.ts"
import { readTableAll } from "../../../src/formats/parquet/table.ts"
import type { Row } from "../../../src/formats/parquet/table.ts"
import { readFinetuneDir } from "../../../src/artifacts/stageB.ts"
import type { FinetuneParams } from "../../../src/nodes/finetune/work.ts"
import { runFinetune } from "../../../src/nodes/finetune/work.ts"
import type { Fixture } from "../../support/stageBModels.ts"
import { finetuneParams, liveTensors, makeContext, run, setupBackend, writeFixture } from "../../support/stageBModels.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-finetune-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const OUTPUTS = [
  ["finetune", "finetune"],
  ["finetune.metrics", "finetune.metrics.parquet"]
] as const

let backend = ""
let fx: Fixture
let shuffledFx: Fixture
beforeAll(async () => {
  backend = await setupBackend()
  fx = await writeFixture(tmp, "data", { train: 64, val: 16, slots: 2 })
  shuffledFx = await writeFixture(tmp, "shuffled", { train: 64, val: 16, slots: 2, shuffleForeign: true })
})

/** The validation loss must beat the shuffled-foreign control's by this much (nats per answer token). */
const CONTROL_MARGIN = 0.08
const lastVal = (rows: ReadonlyArray<Row>): number => num(rows.filter((r) => r["valLoss"] !== null).at(-1)!, "valLoss")

const train = async (name: string, params: FinetuneParams, scratch = path.join(tmp, name, "scratch"), haltAfter?: number, data?: Fixture) => {
  const outDir = path.join(tmp, name, "out")
  const logs: Array<string> = []
  const ctx = makeContext(params, (data ?? fx).inputs, outDir, OUTPUTS, scratch, logs)
  const t0 = performance.now()
  const outcome = await run(runFinetune(ctx, haltAfter === undefined ? {} : { haltAfter }))
  const ms = performance.now() - t0
  const rows: ReadonlyArray<Row> = haltAfter === undefined ? await run(readTableAll(ctx.outputs["finetune.metrics"])) : []
  return { rows, outDir, logs, ms, metrics: outcome.metrics }
}

const num = (r: Row, k: string): number => {
  const v = r[k]
  if (typeof v !== "number") throw new Error(`${k} is ${String(v)}`)
  return v
}
const meanOf = (rows: ReadonlyArray<Row>, k: string): number => rows.reduce((s, r) => s + num(r, k), 0) / rows.length

const BASE = { microBatch: 4, accumulation: 1, lrLora: 1e-2, warmupFraction: 0.1, checkpointEvery: 0 }

describe("finetune on a tiny setup", () => {
  it("learns the task from the foreign text in the prompt and writes a PEFT adapter", async () => {
    const before = liveTensors()
    const res = await train("learn", finetuneParams({ ...BASE, epochs: 1, evalEvery: 4 }))
    expect(liveTensors()).toBe(before)
    const rows = res.rows
    expect(rows).toHaveLength(16)
    console.warn(`[finetune] ${backend}: ${rows.length} steps in ${(res.ms / 1000).toFixed(1)} s (${(res.ms / rows.length).toFixed(0)} ms/step, micro-batch 4)`)
    expect(meanOf(rows.slice(-4), "loss")).toBeLessThan(meanOf(rows.slice(0, 4), "loss") - 0.3)
    const vals = rows.filter((r) => r["valLoss"] !== null)
    expect(vals.map((r) => num(r, "step"))).toEqual([4, 8, 12, 16])
    expect(num(vals[3], "valLoss")).toBeLessThan(num(vals[0], "valLoss") - 0.2)
    expect(Object.keys(rows[0]).sort()).toEqual(["gradNorm", "loss", "lr", "step", "valLoss"])

    const dir = path.join(res.outDir, "finetune")
    const doc = await run(readFinetuneDir(dir))
    expect(doc.prompt).toEqual({ instruction: "input", appendEos: false, maxSeqLen: 768, maxForeignChars: 256 })
    expect(doc.steps).toBe(16)
    const mc = await run(loadModelConfig(fx.decoderDir))
    if (mc.kind !== "llama") throw new Error("not a llama")
    const lora = await run(loadLora(dir, mc.config))
    expect(lora.config).toMatchObject({ rank: 16, alpha: 16, dropout: 0.05 })
    const b = lora.layers[0].q!.b.dataSync()
    expect(b.some((v) => v !== 0)).toBe(true) // trained (B starts at zero)
    disposeLora(lora)
    expect(finetune.inputs).toEqual(["models", "sft.train", "sft.val"])
  })

  it("negative control: foreign words unrelated to the answer leave the validation loss well above the real run's", async () => {
    // The same training on examples whose foreign word is another class's: only the answers' prior can be learned.
    // Four epochs (64 steps), so the real data's mapping shows. The random tiny decoder spreads its first guesses
    // over the whole 128k vocabulary (ln 128256 ≈ 11.8 nats), and 64 LoRA steps take it only to ≈ 10.8, so the
    // margin is small against the loss; measured 10.830 (real) vs 10.997 (control), seeded, the same on every run.
    const params = finetuneParams({ ...BASE, epochs: 4, evalEvery: 16 })
    const real = lastVal((await train("real-long", params)).rows)
    const control = lastVal((await train("control", params, undefined, undefined, shuffledFx)).rows)
    console.warn(`[finetune] val loss: learned ${real.toFixed(3)}, shuffled-foreign control ${control.toFixed(3)}`)
    expect(control).toBeGreaterThan(real + CONTROL_MARGIN)
  })

  it("resumes exactly from a checkpoint", async () => {
    const params = finetuneParams({ ...BASE, epochs: 1, maxSteps: 4, evalEvery: 2 })
    const whole = await train("whole", params)
    const scratch = path.join(tmp, "resumed", "scratch")
    const halted = await train("resumed", params, scratch, 2)
    expect(halted.metrics).toMatchObject({ halted: true, steps: 2 })
    const resumed = await train("resumed", params, scratch)
    expect(resumed.metrics).toMatchObject({ resumedFrom: 2, steps: 4 })
    expect(resumed.rows).toEqual(whole.rows)
    for (const file of ["finetune/adapter_model.safetensors", "finetune/llink-finetune.json"]) {
      expect(fs.readFileSync(path.join(resumed.outDir, file)).equals(fs.readFileSync(path.join(whole.outDir, file)))).toBe(true)
    }
  })

  it("rejects bad settings naming the field, when the config loads (before any stage runs)", async () => {
    const err = await Effect.runPromise(Effect.flip(loadConfig({ sets: ["finetune.microBatch=0"], cwd: tmp })))
    expect(err._tag).toBe("ConfigError")
    expect(err.message).toMatch(/finetune\.microBatch/)
  })
})
