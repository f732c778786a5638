/**
 * Real-data tier: the Stage A chain (models → encode → teacher → stageA → retrieval) on the first 600 pairs of
 * ../shared/data/km-en/mixed_real_pairs.en-km.tsv (en<TAB>km) with the TINY random checkpoints, printing the numbers.
 * The tiny models know nothing about either language, so the retrieval numbers only show that the chain runs on
 * real text end to end (long Khmer without spaces, Latin names and digits inside Khmer, zero-width spaces removed
 * as `clean` would); what little is learnt comes from shared surface tokens (digits, names).
 * Then FLORES-200 devtest and the file's own first 50 (training) pairs as named test sets (`testSets`), with their
 * contamination against the training pairs printed and checked.
 * Skipped, with a message, when the data folder is absent.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { encode } from "../../../src/nodes/encode/stage.ts"
import { retrieval } from "../../../src/nodes/retrieval/stage.ts"
import { RetrievalParams } from "../../../src/nodes/retrieval/params.ts"
import { stageA } from "../../../src/nodes/stageA/stage.ts"
import { StageAParams } from "../../../src/nodes/stageA/params.ts"
import { teacher } from "../../../src/nodes/teacher/stage.ts"
import { testSets } from "../../../src/nodes/testSets/stage.ts"
import { TestSetsParams } from "../../../src/nodes/testSets/params.ts"
import { readMatrix } from "../../../src/formats/arrow/matrix.ts"
import { EncodeConfig } from "../../../src/nodes/encode/params.ts"
import { ModelsConfig } from "../../../src/nodes/models/params.ts"
import { TeacherConfig } from "../../../src/nodes/teacher/params.ts"
import { l2NormalizeRows } from "../../../src/train/hostMath.ts"
import { realDataDir, runModels, runStage, tempDir, writePairs } from "../../support/stageA.ts"
import type { Pair } from "../../support/stageA.ts"
import { skipFor } from "../../support/envGate.ts"

const FILE = path.join(realDataDir, "mixed_real_pairs.en-km.tsv")
const present = !skipFor("shared-data", fs.existsSync(FILE) ? undefined : `${FILE} is absent (the shared km-en data folder is not here)`)

const N_PAIRS = 600
const N_HOLD = 120

const readPairs = (n: number): Array<Pair> => {
  const out: Array<Pair> = []
  for (const line of fs.readFileSync(FILE, "utf8").split("\n")) {
    if (out.length === n) break
    const fields = line.split("\t")
    if (fields.length !== 2) continue
    const english = fields[0].trim()
    const foreign = fields[1].replace(/[\u200b-\u200d\ufeff]/g, "").trim()
    if (english.length > 0 && foreign.length > 0) out.push({ english, foreign })
  }
  return out
}

describe.skipIf(!present)("Stage A on real Khmer–English pairs (tiny checkpoints)", () => {
  const dir = tempDir("real")
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("runs encode → teacher → stageA → retrieval and prints the numbers", async () => {
    const pairs = readPairs(N_PAIRS)
    expect(pairs).toHaveLength(N_PAIRS)
    const train = await writePairs(path.join(dir, "train.parquet"), pairs.slice(0, N_PAIRS - N_HOLD))
    const holdout = await writePairs(path.join(dir, "holdout.parquet"), pairs.slice(N_PAIRS - N_HOLD))
    const t0 = Date.now()
    const m = await runModels(Schema.decodeUnknownSync(ModelsConfig)({ seed: 17 }), train, dir)
    const up = { models: m.outputs["models"], train, holdout }
    const t1 = Date.now()
    const e = await runStage(encode, Schema.decodeUnknownSync(EncodeConfig)({ batchSize: 32 }), up, dir)
    const t2 = Date.now()
    const t = await runStage(teacher, Schema.decodeUnknownSync(TeacherConfig)({ batchSize: 16 }), up, dir)
    const t3 = Date.now()
    const params = Schema.decodeUnknownSync(StageAParams)({
      steps: 300,
      microBatch: 32,
      accumulation: 1,
      queueSize: 1024,
      hardNegatives: 64,
      warmupSteps: 30,
      evalEvery: 100,
      checkpointEvery: 100,
      evalN: N_HOLD
    })
    const s = await runStage(stageA, params, {
      "zF.train": e.outputs["zF.train"],
      "hE.train": t.outputs["hE.train"],
      "zF.holdout": e.outputs["zF.holdout"],
      "hE.holdout": t.outputs["hE.holdout"]
    }, dir)
    const t4 = Date.now()
    const r = await runStage(retrieval, Schema.decodeUnknownSync(RetrievalParams)({ evalN: N_HOLD }), {
      projector: s.outputs["projector"],
      "zF.holdout": e.outputs["zF.holdout"],
      "hE.holdout": t.outputs["hE.holdout"],
      holdout
    }, dir)
    const doc = JSON.parse(fs.readFileSync(r.outputs["retrieval"], "utf8")) as { stageA: Record<string, number> }
    // how distinguishable the frozen tiny models' vectors are: mean cosine between different holdout rows
    const spread = async (file: string) => {
      const m = await Effect.runPromise(readMatrix(file))
      const x = l2NormalizeRows(m.data, m.rows, m.dim)
      let sum = 0
      let count = 0
      for (let i = 0; i < m.rows; i++) {
        for (let j = i + 1; j < m.rows; j++) {
          let dot = 0
          for (let k = 0; k < m.dim; k++) dot += x[i * m.dim + k] * x[j * m.dim + k]
          sum += dot
          count++
        }
      }
      return sum / count
    }
    const zSpread = await spread(e.outputs["zF.holdout"])
    const hSpread = await spread(t.outputs["hE.holdout"])
    console.log(
      [
        `[stageA real-data tier] ${N_PAIRS - N_HOLD} train / ${N_HOLD} holdout pairs from ${path.basename(FILE)}, tiny checkpoints`,
        `  time: models ${t1 - t0} ms, encode ${t2 - t1} ms, teacher ${t3 - t2} ms, stageA ${t4 - t3} ms (300 steps)`,
        `  mean cosine between different holdout rows: z_F ${zSpread.toFixed(4)}, h_E ${hSpread.toFixed(4)}`,
        ...e.logs.map((l) => `  encode: ${l}`),
        ...t.logs.map((l) => `  teacher: ${l}`),
        `  encode batches: ${JSON.stringify(e.outcome.metrics?.["zF.train"])}; teacher batches: ${JSON.stringify(t.outcome.metrics?.["hE.train"])}`,
        ...s.logs.map((l) => `  stageA: ${l}`),
        ...r.logs.map((l) => `  retrieval: ${l}`)
      ].join("\n")
    )
    expect(doc.stageA.n).toBe(N_HOLD)
    for (const k of ["r1", "r5", "r10", "mrr", "meanRank"]) expect(Number.isFinite(doc.stageA[k])).toBe(true)
    expect(doc.stageA.chanceR1).toBeCloseTo(1 / N_HOLD, 12)

    // Named test sets (eval.testSets) on the same models and projector: FLORES-200 devtest, none of whose English is
    // in the training file, and the file's own first 50 pairs, which are training pairs (planted contamination).
    const enc = Schema.decodeUnknownSync(EncodeConfig)({ batchSize: 32 })
    const tea = Schema.decodeUnknownSync(TeacherConfig)({ batchSize: 16 })
    const ts = await runStage(testSets, Schema.decodeUnknownSync(TestSetsParams)({
      testSets: [
        { name: "flores200-devtest", corpus: { path: path.join(realDataDir, "flores200_devtest.eng_Latn"), pairPath: path.join(realDataDir, "flores200_devtest.khm_Khmr"), format: "moses" } },
        { name: "train-head", corpus: { path: FILE, format: "tsv" }, maxPairs: 50 }
      ],
      clean: { removeZeroWidth: true, maxForeignChars: 256 },
      encode: { batchSize: enc.batchSize, maxChars: enc.maxChars, maxTokens: enc.maxTokens },
      teacher: { template: tea.template, maxTokens: tea.maxTokens, batchSize: tea.batchSize },
      pools: [100],
      bootstrap: {}
    }), { models: m.outputs["models"], projector: s.outputs["projector"], train }, dir)
    console.log(ts.logs.map((l) => `  testSets: ${l}`).join("\n"))
    const sets = JSON.parse(fs.readFileSync(ts.outputs["retrieval.testSets"], "utf8")) as {
      sets: ReadonlyArray<{ name: string; n: number; contaminatedEnglish: number; contaminatedForeign: number; stageA: { chanceR1: number } }>
    }
    const [flores, head] = sets.sets
    expect([flores.name, flores.n, flores.contaminatedEnglish]).toEqual(["flores200-devtest", 1012, 0])
    expect(flores.stageA.chanceR1).toBeCloseTo(1 / 1012, 12)
    expect(head.n).toBe(50)
    // the same sentences after the same normalisation (a few may differ in whitespace or NFC from the raw lines)
    expect(head.contaminatedEnglish).toBeGreaterThanOrEqual(45)
    expect(head.contaminatedForeign).toBeGreaterThanOrEqual(45)
  }, 300_000)
})
