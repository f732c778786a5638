/**
 * Stage B data plumbing: only the matrix rows the sft tables point at are kept (across record batches), sft tables
 * are checked cell by cell, and the `stageB` / `finetune` config sections default to the paper's settings.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { openMatrixWriter } from "../../src/formats/arrow/matrix.ts"
import { openTableWriter } from "../../src/formats/parquet/table.ts"
import { LlinkConfig } from "../../src/nodes/config.ts"
import { gatherRows, readMatrixRows, readSftTable } from "../../src/train/sftData.ts"
import { planTotalSteps } from "../../src/train/sftLoop.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-stageB-data-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)

describe("stage B data", () => {
  it("keeps only the wanted matrix rows, across record batches", async () => {
    const file = path.join(tmp, "m.arrow")
    const w = await run(openMatrixWriter(file, 2))
    for (const start of [0, 4, 7]) {
      const rows = start === 7 ? 3 : start === 4 ? 3 : 4
      await run(w.write({ rows, dim: 2, data: Float32Array.from({ length: rows * 2 }, (_, i) => (start + (i >> 1)) * 10 + (i & 1)) }))
    }
    await run(w.close)
    const m = await run(readMatrixRows("stageB", file, [9, 0, 5, 5, 4]))
    expect(m.rows).toBe(4)
    expect([...gatherRows(m, [5, 9, 0, 4, 5])]).toEqual([50, 51, 90, 91, 0, 1, 40, 41, 50, 51])
    expect(() => gatherRows(m, [3])).toThrow(/not loaded/)
    const err = await run(Effect.flip(readMatrixRows("stageB", file, [10])))
    expect(err.message).toMatch(/pair 10, but .* has 10 rows/)
  })

  it("checks the sft cells", async () => {
    const file = path.join(tmp, "sft.parquet")
    const w = await run(
      openTableWriter(file, [
        { name: "task_type", type: "utf8" },
        { name: "input", type: "utf8" },
        { name: "output", type: "utf8" },
        { name: "foreign_raw", type: "utf8" },
        { name: "row", type: "int32" }
      ])
    )
    await run(w.write([{ task_type: "t", input: "i <foreign_emb>", output: "o", foreign_raw: "f", row: -1 }]))
    await run(w.close)
    const err = await run(Effect.flip(readSftTable("stageB", file)))
    expect(err.message).toMatch(/"row" must be a whole number/)
  })

  it("plans ⌈epochs·⌈n/micro⌉/accumulation⌉ steps, capped by maxSteps", () => {
    expect(planTotalSteps({ examples: 40_000, microBatch: 8, accumulation: 16, epochs: 3, maxSteps: 0 })).toBe(938)
    expect(planTotalSteps({ examples: 64, microBatch: 4, accumulation: 1, epochs: 2, maxSteps: 0 })).toBe(32)
    expect(planTotalSteps({ examples: 65, microBatch: 4, accumulation: 3, epochs: 1, maxSteps: 0 })).toBe(6)
    expect(planTotalSteps({ examples: 64, microBatch: 4, accumulation: 1, epochs: 2, maxSteps: 5 })).toBe(5)
  })

  it("the config sections default to the paper's Stage B and fine-tune settings", () => {
    const c = Schema.decodeUnknownSync(LlinkConfig)({})
    expect(c.models.slots).toBe(8) // K: one field for the whole run (models.slots)
    expect(c.stageB).toMatchObject({
      maxSeqLen: 768,
      loraRank: 16,
      loraAlpha: 16,
      loraDropout: 0.05,
      loraTargets: ["q", "k", "v", "o", "gate", "up", "down"],
      lrLora: 1e-4,
      lrSlots: 3e-5,
      weightDecay: 0.01,
      warmupFraction: 0.15,
      epochs: 3,
      microBatch: 8,
      accumulation: 16,
      scaleInit: "median-embedding-norm",
      gateInit: 0.5,
      gateMax: 0.7,
      contrastWeight: 0.05,
      contrastEvery: 3,
      contrastSign: "paper",
      cosWeight: 0.05,
      nceWeight: 0.01,
      nceTau: 0.07
    })
    expect(c.finetune).toMatchObject({ loraRank: 16, loraAlpha: 16, lrLora: 1e-4, maxForeignChars: 256 })
    const code = Schema.decodeUnknownSync(LlinkConfig)({ stageB: { contrastSign: "code", scaleInit: "one", nceWeight: 1e-3, cosForm: "mse" } })
    expect(code.stageB).toMatchObject({ contrastSign: "code", scaleInit: "one", nceWeight: 1e-3, cosForm: "mse" })
    expect(() => Schema.decodeUnknownSync(LlinkConfig)({ stageB: { contrastSign: "sideways" } })).toThrow()
  })
})
