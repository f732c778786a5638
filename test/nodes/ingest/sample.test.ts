/**
 * The embedded sample corpus: the committed TSV is exactly what the generator writes, its noise rows are
 * handled as documented, and the default config (llink.config.json) runs ingest → clean → split → tokstats on it.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { generate, generateMini, hasHeldOutFiller, MINI_FILE, MINI_HELD_OUT_WORDS, MINI_PAIRS, miniPairs, SAMPLE_FILE } from "../../../datasets/km-en-sample/generate.ts"
import { clean } from "../../../src/nodes/clean/stage.ts"
import { ingest } from "../../../src/nodes/ingest/stage.ts"
import { stages } from "../../../src/nodes/index.ts"
import { split } from "../../../src/nodes/split/stage.ts"
import { tokstats } from "../../../src/nodes/tokstats/stage.ts"
import { LlinkConfig } from "../../../src/nodes/config.ts"
import { repoRoot, rows, runStage, tempDir } from "../../support/dataStages.ts"

describe("embedded sample corpus", () => {
  it("is the generator's deterministic output (rerun: node datasets/km-en-sample/generate.ts)", () => {
    const text = generate()
    expect(generate()).toBe(text)
    expect(fs.readFileSync(SAMPLE_FILE, "utf8")).toBe(text)
    const lines = text.trimEnd().split("\n")
    expect(lines).toHaveLength(600)
    // Khmer digits and Latin digits both occur; sentences end with ។ or ?
    expect(text).toMatch(/[០-៩]/)
    expect(lines.filter((l) => /\t.*[0-9]/.test(l)).length).toBeGreaterThan(10)
    const good = lines.filter((l) => l.split("\t").length === 2 && /[\u1780-\u17FF]/.test(l.split("\t")[1]))
    expect(good.filter((l) => /[។?]$/.test(l)).length).toBeGreaterThan(good.length * 0.98)
  })

  it("runs through ingest → clean → split → tokstats with llink.config.json's settings", async () => {
    const config = Schema.decodeUnknownSync(LlinkConfig)(JSON.parse(fs.readFileSync(path.join(repoRoot, "llink.config.json"), "utf8")), {
      onExcessProperty: "error"
    })
    const names = stages.map((s) => s.name)
    expect(names.slice(0, 4)).toEqual(["ingest", "clean", "split", "tokstats"]) // the data stages come first
    const dir = tempDir("sample")
    // The default reads the miniature corpus (below); the noisy sample is the data stages' test bed.
    expect(path.resolve(repoRoot, config.corpus.path)).toBe(MINI_FILE)
    const corpus = { ...config.corpus, path: SAMPLE_FILE }
    expect(ingest.externalInputs?.(corpus)).toEqual([SAMPLE_FILE])

    const ing = await runStage(ingest, corpus, {}, dir)
    expect(ing.outcome.rows).toEqual({ pairs: 596, "ingest.quarantine": 4 })
    expect(ing.outcome.metrics?.byReason).toEqual({ "empty-foreign": 1, "empty-english": 1, "wrong-column-count": 2 })
    const quarantine = await rows(ing.outputs["ingest.quarantine"])
    expect(quarantine.every((q) => q.file === "km-en.sample.tsv")).toBe(true)

    const cl = await runStage(clean, config.clean, { pairs: ing.outputs["pairs"] }, dir)
    const quality = JSON.parse(fs.readFileSync(cl.outputs["clean.quality"], "utf8"))
    expect(quality.byReason).toEqual({ "empty-english": 0, "empty-foreign": 0, "script-share": 1, duplicate: 1 })
    expect(quality.truncated).toBe(1)
    expect(quality.normalisation.zeroWidthRows).toBe(2)
    expect(quality.normalisation.nfcChanged).toBe(1)
    expect(cl.outcome.rows).toEqual({ clean: 594, "clean.rejects": 2 })

    const sp = await runStage(split, { ...config.split, train: 400, holdout: 120, evalN: 100 }, { clean: cl.outputs["clean"] }, dir)
    expect(sp.outcome.rows).toEqual({ train: 400, holdout: 120, eval: 100 })

    const ts = await runStage(tokstats, { ...config.tokstats, slots: config.models.slots }, { train: sp.outputs["train"] }, dir)
    const s = JSON.parse(fs.readFileSync(ts.outputs["tokstats"], "utf8"))
    expect(s.pairs).toBe(400)
    expect(s.foreignToEnglishTokenRatio.ofTotals).toBeGreaterThan(2)
  })

  it("has a miniature twin for the embedded default: deterministic, distinct on both sides, clean as it is", async () => {
    const text = generateMini()
    expect(fs.readFileSync(MINI_FILE, "utf8")).toBe(text)
    const lines = text.trimEnd().split("\n")
    expect(lines).toHaveLength(MINI_PAIRS)
    expect(new Set(lines.map((l) => l.split("\t")[0])).size).toBe(MINI_PAIRS)
    expect(new Set(lines.map((l) => l.split("\t")[1])).size).toBe(MINI_PAIRS)
    expect(lines.filter((l) => /[0-9០-៩]/.test(l)).length).toBeGreaterThan(MINI_PAIRS / 5) // numbers stay
    const dir = tempDir("mini")
    const config = Schema.decodeUnknownSync(LlinkConfig)(JSON.parse(fs.readFileSync(path.join(repoRoot, "llink.config.json"), "utf8")))
    const ing = await runStage(ingest, { ...config.corpus, path: MINI_FILE }, {}, dir)
    expect(ing.outcome.rows).toEqual({ pairs: MINI_PAIRS, "ingest.quarantine": 0 })
    const cl = await runStage(clean, config.clean, { pairs: ing.outputs["pairs"] }, dir)
    expect(cl.outcome.rows).toEqual({ clean: MINI_PAIRS, "clean.rejects": 0 })
  })

  it("keeps its fillers apart: no eval pair's filler combination occurs in train, and held-out fillers only in eval", async () => {
    const combination = new Map(miniPairs().map((p) => [p.en, p.combination]))
    const dir = tempDir("mini-split")
    const config = Schema.decodeUnknownSync(LlinkConfig)(JSON.parse(fs.readFileSync(path.join(repoRoot, "llink.config.json"), "utf8")))
    expect(config.split.holdoutFrom).toBe("end")
    const ing = await runStage(ingest, { ...config.corpus, path: MINI_FILE }, {}, dir)
    const cl = await runStage(clean, config.clean, { pairs: ing.outputs["pairs"] }, dir)
    const sp = await runStage(split, config.split, { clean: cl.outputs["clean"] }, dir)
    const english = async (name: string) => (await rows(sp.outputs[name])).map((r) => String(r.english))
    const [train, holdout, evalSet] = [await english("train"), await english("holdout"), await english("eval")]
    expect([train.length, holdout.length, evalSet.length]).toEqual([config.split.train, config.split.holdout, config.split.evalN])
    const trainCombinations = new Set(train.map((e) => combination.get(e)))
    expect(trainCombinations.has(undefined)).toBe(false) // every split row is a generated pair
    const repeated = [...holdout, ...evalSet].filter((e) => trainCombinations.has(combination.get(e)))
    expect(repeated).toEqual([])
    // The held-out fillers: none in train, a third or so of eval, and each of them really occurs there.
    expect(train.filter(hasHeldOutFiller)).toEqual([])
    const held = evalSet.filter(hasHeldOutFiller).length / evalSet.length
    expect(held).toBeGreaterThan(0.2)
    expect(held).toBeLessThan(0.5)
    for (const word of MINI_HELD_OUT_WORDS) expect([word, holdout.some((e) => e.includes(word))]).toEqual([word, true])
    // The check can fail: a plain seeded split of the same corpus puts held-out fillers in train.
    const anywhere = await runStage(split, { ...config.split, holdoutFrom: "anywhere" as const }, { clean: cl.outputs["clean"] }, tempDir("mini-split-anywhere"))
    expect((await rows(anywhere.outputs["train"])).filter((r) => hasHeldOutFiller(String(r.english))).length).toBeGreaterThan(50)
  })

  it("ships corpus specs that are valid config files", () => {
    const dir = path.join(repoRoot, "datasets/specs")
    const specs = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort()
    expect(specs).toEqual(["flores200.json", "jsonl.json", "opus-moses-zip.json", "opus-parquet.json", "opus-tmx.json", "paracrawl-bonus.json", "tatoeba.json", "wmt20.json"])
    const decoded = specs.map((f) => Schema.decodeUnknownSync(LlinkConfig)(JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")), { onExcessProperty: "error" }))
    // the corpus specs set the training corpus; the test-set specs (FLORES-200, Tatoeba) add eval.testSets only
    expect(decoded.map((c) => c.corpus.format)).toEqual(["auto", "jsonl", "moses", "parquet", "tmx", "tsv", "auto", "wmt20"])
    expect(decoded.map((c) => c.eval.testSets.map((s) => s.name).join())).toEqual(["flores200-devtest", "", "", "", "", "", "tatoeba", ""])
    expect(decoded.flatMap((c) => c.eval.testSets.map((s) => s.corpus.format))).toEqual(["moses", "moses"])
  })
})
