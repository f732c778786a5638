/**
 * The `testSets` stage (eval.testSets): named test sets read through the corpus readers and scored by Stage A.
 * - A test set that holds exactly the holdout pairs (as a TSV and as a Moses pair of files) gets the same ranks as
 *   the `retrieval` stage's on the holdout: the stage meets the models exactly as encode → teacher → retrieval do.
 * - Contamination is counted exactly: a set that starts with training pairs reports them, per side.
 * - A pair whose foreign side is only zero-width characters is dropped after normalisation, as `clean` would.
 * - No test sets: an empty list and no model loaded; a missing file is named by its config field in the pre-flight.
 * - Real data (skips when ../shared/data/km-en is absent): the shipped FLORES-200 and Tatoeba specs decode and read
 *   all their pairs.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadConfig } from "../../../src/nodes/config.ts"
import { encode } from "../../../src/nodes/encode/stage.ts"
import { EncodeConfig } from "../../../src/nodes/encode/params.ts"
import { ModelsConfig } from "../../../src/nodes/models/params.ts"
import { retrieval } from "../../../src/nodes/retrieval/stage.ts"
import { RetrievalParams } from "../../../src/nodes/retrieval/params.ts"
import { stageA } from "../../../src/nodes/stageA/stage.ts"
import { StageAParams } from "../../../src/nodes/stageA/params.ts"
import { teacher } from "../../../src/nodes/teacher/stage.ts"
import { TeacherConfig } from "../../../src/nodes/teacher/params.ts"
import { testSets } from "../../../src/nodes/testSets/stage.ts"
import { TestSetsParams } from "../../../src/nodes/testSets/params.ts"
import { readTestSet } from "../../../src/nodes/testSets/work.ts"
import { readMatrix } from "../../../src/formats/arrow/matrix.ts"
import { readTableAll } from "../../../src/formats/parquet/table.ts"
import { RetrievalDoc, TestSetsDoc } from "../../../src/schemas/retrieval.ts"
import { skipFor } from "../../support/envGate.ts"
import { realDataDir, repoRoot, runModels, runStage, syntheticPairs, tempDir, writePairs } from "../../support/stageA.ts"

const dir = tempDir("testSets")
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const N_TRAIN = 200
const N_HOLD = 64
const pairs = syntheticPairs(N_TRAIN + N_HOLD, 5)
const train = pairs.slice(0, N_TRAIN)
const holdout = pairs.slice(N_TRAIN)

const inputs: Record<string, string> = {}
let retrievalDoc: RetrievalDoc | undefined

const params = (testSetsList: ReadonlyArray<unknown>) =>
  Schema.decodeUnknownSync(TestSetsParams)({
    testSets: testSetsList,
    clean: { removeZeroWidth: true, maxForeignChars: 256 },
    encode: { batchSize: 32, maxChars: 2000, maxTokens: 128 },
    teacher: { template: "paper", maxTokens: 128, batchSize: 32 },
    pools: [16],
    bootstrap: { resamples: 1000, seed: 7 }
  })

const readDoc = (file: string): TestSetsDoc => Schema.decodeUnknownSync(TestSetsDoc)(JSON.parse(fs.readFileSync(file, "utf8")))

beforeAll(async () => {
  const trainFile = await writePairs(path.join(dir, "train.parquet"), train)
  const holdFile = await writePairs(path.join(dir, "holdout.parquet"), holdout)
  const m = await runModels(Schema.decodeUnknownSync(ModelsConfig)({ seed: 3 }), trainFile, dir)
  const up = { models: m.outputs["models"], train: trainFile, holdout: holdFile }
  const e = await runStage(encode, Schema.decodeUnknownSync(EncodeConfig)({ batchSize: 32 }), up, dir)
  const t = await runStage(teacher, Schema.decodeUnknownSync(TeacherConfig)({ batchSize: 32 }), up, dir)
  const a = await runStage(
    stageA,
    Schema.decodeUnknownSync(StageAParams)({ steps: 100, microBatch: 32, accumulation: 1, queueSize: 256, hardNegatives: 32, warmupSteps: 10, evalEvery: 0, checkpointEvery: 0, evalN: N_HOLD }),
    { "zF.train": e.outputs["zF.train"], "hE.train": t.outputs["hE.train"], "zF.holdout": e.outputs["zF.holdout"], "hE.holdout": t.outputs["hE.holdout"] },
    dir
  )
  const r = await runStage(
    retrieval,
    Schema.decodeUnknownSync(RetrievalParams)({ evalN: N_HOLD, pools: [16], bootstrap: { resamples: 1000, seed: 7 } }),
    { projector: a.outputs["projector"], "zF.holdout": e.outputs["zF.holdout"], "hE.holdout": t.outputs["hE.holdout"], holdout: holdFile },
    dir
  )
  retrievalDoc = Schema.decodeUnknownSync(RetrievalDoc)(JSON.parse(fs.readFileSync(r.outputs["retrieval"], "utf8")))
  Object.assign(inputs, { models: m.outputs["models"], projector: a.outputs["projector"], train: trainFile })
}, 600_000)

describe("testSets", () => {
  it("scores a test set as retrieval scores the holdout, in any format, and counts contamination exactly", async () => {
    const tsv = path.join(dir, "held.tsv")
    fs.writeFileSync(tsv, holdout.map((p) => `${p.english}\t${p.foreign}\n`).join(""))
    fs.writeFileSync(path.join(dir, "held.en"), holdout.map((p) => `${p.english}\n`).join(""))
    fs.writeFileSync(path.join(dir, "held.km"), holdout.map((p) => `${p.foreign}\n`).join(""))
    // 10 training pairs, one pair whose foreign side is only zero-width spaces, then 20 holdout pairs
    const leaky = path.join(dir, "leaky.tsv")
    const leakyPairs = [...train.slice(0, 10), { english: "Nothing here.", foreign: "\u200B\u200B" }, ...holdout.slice(0, 20)]
    fs.writeFileSync(leaky, leakyPairs.map((p) => `${p.english}\t${p.foreign}\n`).join(""))
    const p = params([
      { name: "held-tsv", corpus: { path: tsv, format: "tsv" } },
      { name: "held-moses", corpus: { path: path.join(dir, "held.en"), pairPath: path.join(dir, "held.km"), format: "moses" } },
      { name: "leaky", corpus: { path: leaky, format: "tsv" }, maxPairs: 25 }
    ])
    const ran = await runStage(testSets, p, inputs, dir)
    const doc = readDoc(ran.outputs["retrieval.testSets"])
    expect(doc.sets.map((s) => s.name)).toEqual(["held-tsv", "held-moses", "leaky"])
    const ref = retrievalDoc!
    for (const s of doc.sets.slice(0, 2)) {
      expect(s).toMatchObject({ n: N_HOLD, read: N_HOLD, quarantined: 0, dropped: 0, contaminatedEnglish: 0, contaminatedForeign: 0 })
      // the same vectors as encode → teacher → retrieval, up to float rounding in differently shaped batches
      const same = s.ranks.filter((r, i) => r === ref.ranks.stageA[i]).length
      expect(same).toBeGreaterThanOrEqual(N_HOLD - 2)
      expect(Math.abs(s.stageA.r1 - ref.stageA.r1)).toBeLessThanOrEqual(2 / N_HOLD)
      expect(s.stageA.r1).toBeGreaterThan(5 * s.stageA.chanceR1)
      expect(s.suite.grid).toHaveLength(6)
    }
    const l = doc.sets[2]
    expect(l).toMatchObject({ read: 31, dropped: 1, n: 25, contaminatedEnglish: 10, contaminatedForeign: 10 })
    expect(ran.logs.some((x) => x.includes("test set leaky: n = 25") && x.includes("10 English, 10 foreign"))).toBe(true)
    // what testSetsFull reads: every evaluated pair in order, and its vectors row for row
    const pairs = await Effect.runPromise(readTableAll(ran.outputs["testSets.pairs"]))
    expect(pairs.map((r) => r["set"])).toEqual([...Array(64).fill("held-tsv"), ...Array(64).fill("held-moses"), ...Array(25).fill("leaky")])
    expect(pairs.slice(128, 131).map((r) => [r["row"], r["english"]])).toEqual([[0, train[0].english], [1, train[1].english], [2, train[2].english]])
    const z = await Effect.runPromise(readMatrix(ran.outputs["zF.testSets"]))
    const h = await Effect.runPromise(readMatrix(ran.outputs["hE.testSets"]))
    expect([z.rows, h.rows]).toEqual([153, 153])
    // the TSV and the Moses copy of the holdout give the same vectors
    expect(z.data.subarray(0, 64 * z.dim)).toEqual(z.data.subarray(64 * z.dim, 128 * z.dim))
  })

  it("with no test sets writes an empty list", async () => {
    const ran = await runStage(testSets, params([]), { train: "/nonexistent/train.parquet", models: "/nonexistent/models.json", projector: "/nonexistent" }, dir, {
      outDir: path.join(dir, "empty.out")
    })
    expect(readDoc(ran.outputs["retrieval.testSets"]).sets).toEqual([])
    expect(await Effect.runPromise(readTableAll(ran.outputs["testSets.pairs"]))).toEqual([])
    expect((await Effect.runPromise(readMatrix(ran.outputs["zF.testSets"]))).rows).toBe(0)
  })

  it("pre-flight names the config field of a missing file", async () => {
    const p = params([
      { name: "ok", corpus: { path: path.join(dir, "held.tsv"), format: "tsv" } },
      { name: "gone", corpus: { path: path.join(dir, "absent.en"), pairPath: path.join(dir, "absent.km"), format: "moses" } }
    ])
    fs.writeFileSync(path.join(dir, "held.tsv"), "a\tb\n")
    const problems = await Effect.runPromise(testSets.preflight!(p, { env: {} }))
    expect(problems.map((x) => x.field)).toEqual(["eval.testSets[1].corpus.path"])
    expect(problems[0].message).toContain("absent.en")
  })

  it("rejects two test sets of one name", () => {
    expect(() => params([{ name: "x", corpus: { path: "a.tsv" } }, { name: "x", corpus: { path: "b.tsv" } }])).toThrow(/distinct test-set names/)
  })
})

const realPresent = !skipFor("shared-data", fs.existsSync(realDataDir) ? undefined : `${realDataDir} is absent (the shared km-en data folder is not here)`)

describe.skipIf(!realPresent)("testSets on real data", () => {
  it("the shipped FLORES-200 and Tatoeba specs decode and read every pair", async () => {
    const expected: Record<string, number> = { "flores200-devtest": 1012, tatoeba: 726 }
    for (const spec of ["flores200.json", "tatoeba.json"]) {
      const loaded = await Effect.runPromise(loadConfig({ file: path.join(repoRoot, "datasets/specs", spec) }))
      for (const s of loaded.value.eval.testSets) {
        // the spec names ../../data/<file> (a data/ folder at the repository root); the shared copy stands in
        const at = (f: string | undefined) => (f === undefined ? undefined : path.join(realDataDir, path.basename(f)))
        const set = await Effect.runPromise(readTestSet({ ...s, corpus: { ...s.corpus, path: at(s.corpus.path)!, pairPath: at(s.corpus.pairPath) } }, {
          removeZeroWidth: true,
          maxForeignChars: 256
        }))
        console.log(`${s.name}: read ${set.read}, quarantined ${set.quarantined}, dropped ${set.dropped}, n ${set.english.length}`)
        expect(set.english.length).toBe(expected[s.name])
        expect(set.foreign.every((f) => !f.includes("\u200B"))).toBe(true)
      }
    }
  })
})
