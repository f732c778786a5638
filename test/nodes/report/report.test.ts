/**
 * `report`: renders every section from small fixture artifacts — Table 1 and Table 2 with this run's numbers beside
 * the paper's, tokens, numeric fidelity, SVG training curves (L_SFT vs L_zero and the gap), samples, data quality,
 * lineage from the manifest, and the offline markers — and writes results.json with numbers checked by hand.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { judge } from "../../../src/nodes/judge/stage.ts"
import { report } from "../../../src/nodes/report/stage.ts"
import { readMetricsTable } from "../../../src/nodes/report/work.ts"
import type { Manifest } from "../../../src/pipeline/manifest.ts"
import { writeTable } from "../../../src/formats/parquet/table.ts"
import { sftZeroColumns } from "../../../src/nodes/report/render.ts"
import { SftColumns } from "../../../src/schemas/sft.ts"
import { configOf, generationRow, makeContext, paramsOf, tmpDir, writeGenerations } from "../../support/stageB.ts"

const metricsRow = (n: number) => ({ n, r1: 0, r5: 0, r10: 0, mrr: 0, meanRank: 0, chanceR1: 1 / n, r1CI: null, mrrCI: null })
const bootstrap = { method: "percentile", level: 0.95, resamples: 1000, seed: 0, unit: "query" }

const lengths = { count: 1, mean: 1, p50: 1, p95: 1, max: 1, histogram: { unit: "code points", binWidth: 16, lastBinFrom: 512, counts: [1] } }

const writeJson = (file: string, value: unknown) => {
  fs.writeFileSync(file, JSON.stringify(value))
  return file
}

const fixtures = async (base: string, options: { readonly offlineSynth: boolean; readonly manifest: boolean }) => {
  const gens = [
    generationRow({ id: 0, bucket: "content", instruction: "Translate <this>.", reference: "The fee is $50 per person.", llink: "The cost is $5 each.", base: "zzz", finetune: "There is a fee of $50.", llinkPromptTokens: 30, basePromptTokens: 120, finetunePromptTokens: 110 }),
    generationRow({ id: 1, bucket: "qa", task_type: "qa_about_text", instruction: "How far is it?", reference: "The distance is 25 kilometers.", llink: "The distance is approximately 10 miles.", base: "(untranslatable)", finetune: "It is far away.", llinkPromptTokens: 34, basePromptTokens: 60, finetunePromptTokens: 70 })
  ]
  const generations = await writeGenerations(path.join(base, "generations.parquet"), gens)
  // The judge artifact comes from the judge stage itself (offline chrF).
  const jctx = makeContext(judge, paramsOf(judge, configOf({ judge: { mode: "offline", floor: 0 } })), { generations }, path.join(base, "judge"))
  await Effect.runPromise(judge.run(jctx))
  const retrieval = writeJson(path.join(base, "retrieval.json"), {
    stageA: { ...metricsRow(100), r1: 0.512, r5: 0.75, r10: 0.86, mrr: 0.62, meanRank: 4.25, r1CI: { lo: 0.415, hi: 0.609 }, mrrCI: { lo: 0.55, hi: 0.69 } },
    bootstrap,
    ranks: { stageA: [1, 2, 1] },
    suite: {
      system: "stageA",
      grid: [
        { direction: "foreign→english", scoring: "cosine", k: 0, metrics: { ...metricsRow(100), r1: 0.512, r1CI: { lo: 0.415, hi: 0.609 } }, xsimError: 0.488 },
        { direction: "english→foreign", scoring: "margin", k: 4, metrics: { ...metricsRow(100), r1: 0.634 }, xsimError: 0.366 }
      ],
      pool: [
        { direction: "foreign→english", scoring: "margin", pool: 100, blocks: 4, r1: 0.71 },
        { direction: "foreign→english", scoring: "margin", pool: 400, blocks: 1, r1: 0.455 }
      ],
      mistakes: {
        direction: "foreign→english",
        scoring: "margin",
        total: 40,
        number: 10,
        entity: 20,
        other: 8,
        identical: 2,
        examples: [{ gold: "I paid 5 riel.", retrieved: "I paid 7 riel.", kind: "number" }]
      }
    }
  })
  const retrievalFull = writeJson(path.join(base, "retrieval.full.json"), {
    full: { ...metricsRow(100), r1: 0.531, r5: 0.77, r10: 0.88, mrr: 0.64, meanRank: 3.75 },
    finetune: { ...metricsRow(100), r1: 0.097, r5: 0.21, r10: 0.33, mrr: 0.15, meanRank: 27.5 },
    fullVector: "meanSlot",
    n: 100,
    bootstrap,
    ranks: { full: [1, 1, 3], finetune: [4, 9, 2] }
  })
  // One named test set (eval.testSets), 3 of whose English sentences are in the training split.
  const testSets = writeJson(path.join(base, "retrieval.testSets.json"), {
    bootstrap,
    sets: [{
      name: "flores200-devtest",
      files: ["/data/flores200_devtest.eng_Latn", "/data/flores200_devtest.khm_Khmr"],
      read: 1012,
      quarantined: 0,
      dropped: 0,
      n: 1012,
      contaminatedEnglish: 3,
      contaminatedForeign: 1,
      stageA: { ...metricsRow(1012), r1: 0.123, mrr: 0.2, r1CI: { lo: 0.104, hi: 0.144 } },
      ranks: [1, 4, 2],
      suite: {
        system: "stageA",
        grid: [
          { direction: "foreign→english", scoring: "cosine", k: 0, metrics: { ...metricsRow(1012), r1: 0.123, r1CI: { lo: 0.104, hi: 0.144 } }, xsimError: 0.877 },
          { direction: "english→foreign", scoring: "margin", k: 4, metrics: { ...metricsRow(1012), r1: 0.141, r1CI: { lo: 0.12, hi: 0.162 } }, xsimError: 0.859 }
        ],
        pool: [],
        mistakes: { direction: "foreign→english", scoring: "margin", total: 0, number: 0, entity: 0, other: 0, identical: 0, examples: [] }
      }
    }]
  })
  const testSetsFull = writeJson(path.join(base, "retrieval.testSets.full.json"), {
    bootstrap,
    fullVector: "meanSlot",
    peerVector: "meanMappedStates",
    sets: [{
      name: "flores200-devtest",
      n: 1012,
      full: { ...metricsRow(1012), r1: 0.087, r1CI: { lo: 0.07, hi: 0.105 } },
      finetune: { ...metricsRow(1012), r1: 0.004 },
      langbridge: { ...metricsRow(1012), r1: 0.011, r1CI: { lo: 0.005, hi: 0.018 } },
      mindmerger: null,
      ranks: { full: [2, 1, 3], finetune: [9, 5, 7], langbridge: [4, 1, 8], mindmerger: null }
    }]
  })
  // The peers' rows: LangBridge scored, MindMerger off (`baselines`).
  const retrievalPeers = writeJson(path.join(base, "retrieval.peers.json"), {
    n: 100,
    vector: "meanMappedStates",
    langbridge: { ...metricsRow(100), r1: 0.013, r5: 0.061, r10: 0.118, mrr: 0.052, meanRank: 46.25, r1CI: { lo: 0.001, hi: 0.035 }, mrrCI: { lo: 0.03, hi: 0.075 } },
    mindmerger: null,
    bootstrap
  })
  const side = (tpc: number) => ({ tokens: 100, chars: 100 / tpc, tokensPerChar: tpc, charsPerSentence: 1, tokensPerSentence: { mean: 10, p50: 9, p95: 20, max: 30 } })
  const tokstats = writeJson(path.join(base, "tokstats.json"), {
    pairs: 400,
    tokenizer: "llama3",
    countsSpecialTokens: false,
    english: side(0.25),
    foreign: side(1.625),
    foreignToEnglishTokenRatio: { ofTotals: 6.25, meanPerPair: 6.5, medianPerPair: 6.1 },
    slots: { K: 8, savedPerSentence: { mean: 57.5, total: 23000 }, shareLongerThanK: 0.99 }
  })
  const quality = writeJson(path.join(base, "quality.json"), {
    rowsIn: 500,
    kept: 480,
    rejected: 20,
    byReason: { "empty-english": 1, "script-share": 4, duplicate: 15 },
    truncated: 7,
    maxForeignChars: 256,
    // the rest of the clean stage's document (src/schemas/quality.ts), which the report does not show
    normalisation: { nfcChanged: 0, zeroWidthRemoved: 0, zeroWidthRows: 0, whitespaceChanged: 0, zeroWidthChars: [], keptJoiners: [] },
    lengths: { english: lengths, foreign: lengths },
    khmerDamage: {},
    settings: { minScriptShare: 0.5, scriptRanges: [[6016, 6143]], dedupe: true, removeZeroWidth: true }
  })
  const ingestSummary = writeJson(path.join(base, "summary.json"), {
    format: "moses",
    files: ["c.en", "c.km"],
    pairs: 520,
    quarantined: 9,
    byReason: { "extra-line-english": 2, "control-char": 6, "invalid-utf8": 1 },
    lineCountMismatch: { english: { file: "c.en", lines: 531 }, foreign: { file: "c.km", lines: 529 } }
  })
  const stageAMetrics = path.join(base, "stageA.metrics.parquet")
  await Effect.runPromise(
    writeTable(
      stageAMetrics,
      [
        { name: "step", type: "int32" },
        { name: "loss", type: "float64" },
        { name: "nce", type: "float64" },
        { name: "dir", type: "float64" },
        { name: "tau", type: "float64" },
        { name: "lr", type: "float64" },
        { name: "devR1", type: "float64", nullable: true }
      ],
      Stream.fromIterable([1, 2, 3, 4].map((s) => ({ step: s, loss: 4 - s * 0.5, nce: 3.5 - s * 0.5, dir: 0.01, tau: 0.17 - s * 0.01, lr: s * 1e-4, devR1: s === 4 ? 0.5 : null })))
    )
  )
  // Stage B metrics as JSON lines (another accepted format).
  const stageBMetrics = path.join(base, "stageB.metrics.jsonl")
  fs.writeFileSync(
    stageBMetrics,
    [1, 2, 3].map((s) => JSON.stringify({ step: s, loss: 3 - s * 0.3, lossSft: 2.9 - s * 0.3, lossZero: 3 - s * 0.2, align: 0.5, lrLora: 1e-4 })).join("\n") + "\n"
  )
  const sftEval = path.join(base, "sft.eval.parquet")
  await Effect.runPromise(
    writeTable(sftEval, SftColumns, Stream.fromIterable([{ id: 0, row: 0, task_type: "translate_to_english", bucket: "content", instruction: "x", input: "x <foreign_emb>", output: "y", foreign_raw: "ក", english_ref: "y", offline: options.offlineSynth }]))
  )
  const inputs = {
    retrieval,
    "retrieval.full": retrievalFull,
    "retrieval.peers": retrievalPeers,
    "retrieval.testSets": testSets,
    "retrieval.testSets.full": testSetsFull,
    judge: jctx.outputs["judge"],
    "judge.pairs": jctx.outputs["judge.pairs"],
    tokstats,
    "clean.quality": quality,
    "ingest.summary": ingestSummary,
    "stageA.metrics": stageAMetrics,
    "stageB.metrics": stageBMetrics,
    generations,
    "sft.eval": sftEval
  }
  const ctx = makeContext(report, paramsOf(report, configOf({ report: { title: "Tiny <run> report" } })), inputs, path.join(base, "report"))
  if (options.manifest) {
    fs.mkdirSync(ctx.runDir, { recursive: true })
    const tool = { llink: "0.0.0", node: "v22", effect: "4.1.0" }
    const stage = (status: "ran" | "cached", params: unknown) => ({
      key: "a".repeat(64),
      status,
      version: "1",
      params,
      inputs: { train: "b".repeat(64) },
      externalInputs: {},
      outputs: { "sft.train": { digest: "c".repeat(64), rows: 40000, path: "/x" } },
      metrics: {},
      durationMs: 1500,
      recordedAt: "2025-01-01T00:00:00.000Z",
      tool
    })
    const manifest: Manifest = {
      manifestVersion: 1,
      createdAt: "2025-01-01T00:00:00.000Z",
      updatedAt: "2025-01-01T00:00:01.000Z",
      config: { path: "/cfg/llink.config.json", digest: "d".repeat(64), overrides: [], value: {} },
      options: { only: null, until: null, force: [] },
      stages: { synthesize: stage("ran", { mode: "offline", seed: 17 }), stageA: stage("cached", { steps: 20000 }) },
      tool
    }
    fs.writeFileSync(path.join(ctx.runDir, "manifest.json"), JSON.stringify(manifest))
  }
  return ctx
}

describe("report", () => {
  it("renders every section with the run's and the paper's numbers, inline SVG plots and the lineage", async () => {
    const base = tmpDir("report")
    const ctx = await fixtures(base, { offlineSynth: true, manifest: true })
    const outcome = await Effect.runPromise(report.run(ctx))
    const html = fs.readFileSync(path.join(ctx.outputs["report"], "report.html"), "utf8")
    const md = fs.readFileSync(path.join(ctx.outputs["report"], "report.md"), "utf8")
    const results = JSON.parse(fs.readFileSync(ctx.outputs["results"], "utf8"))

    expect(html.startsWith("<!DOCTYPE html>")).toBe(true)
    expect(html).toContain("<title>Tiny &lt;run&gt; report</title>")
    // Table 1: this run and the paper.
    expect(html).toContain("Table 1: bilingual retrieval")
    // Table 1b: the direction × scoring grid, the pool curve and the mistakes.
    expect(md).toContain("Table 1b: LLINK (Stage A) retrieval both ways")
    expect(md).toMatch(/\| english→foreign \| margin \(k = 4\) \| 0\.634 \|/)
    expect(md).toMatch(/\| foreign→english \| cosine \| 0\.512 \| 0\.415–0\.609 \|.*\| 48\.8% \|/)
    expect(md).toContain("margin 100: 0.710, 400: 0.455")
    expect(md).toContain("only in numbers 10 (25%), only in names or numbers 20 (50%), otherwise 8 (20%), not at all (a duplicate sentence) 2 (5%)")
    expect(html).toContain("Table 1b")
    // Table 1c: the named test set, its contamination and its grid (a missing cell is a dash).
    expect(md).toContain("Table 1c: retrieval on the named test sets")
    expect(md).toContain("| flores200-devtest | 1,012 | 3 / 1 | 0.123 (0.104–0.144) | – | – | 0.141 (0.120–0.162) | 0.200 | 0.087 (0.070–0.105) | 0.004 | 0.011 (0.005–0.018) | – | 0.0010 |")
    expect(html).toContain("Table 1c")
    for (const s of ["0.512", "0.531", "0.097", "4.3", "3.8", "27.5", "0.430", "0.450", "0.104", "24.7", "n = 1,024", "n = 100"]) expect(html).toContain(s)
    // Table 2: this run (offline chrF judge) and the paper.
    expect(html).toContain("Table 2: pairwise judge (OFFLINE chrF judge")
    for (const s of ["86.3%", "66.2%", "76.2%", "60.9%", "LLINK vs. Base", "LLINK vs. Fine-tune", "Content understanding", "Q&amp;A"]) expect(html).toContain(s)
    // Table 2b: one ranking of the judged systems from the same verdicts, raw and style-controlled, with the plot
    const ranking = results.judge.ranking
    expect(ranking.raw.rows.map((x: { system: string }) => x.system).sort()).toEqual(["base", "finetune", "llink"])
    const valid = (a: { n: number; invalid: number }) => a.n - a.invalid
    // LLINK's verdicts plus base against fine-tune on each of the 2 examples (judge.comparisons: "all"; offline verdicts are never invalid)
    expect(ranking.raw.battles).toBe(valid(results.judge.overall.vsBase) + valid(results.judge.overall.vsFinetune) + 2)
    expect(ranking.raw.rows.reduce((a: number, x: { score: number }) => a + x.score, 0) / 3).toBeCloseTo(1000, 6)
    expect(md).toContain("Table 2b: one ranking of all judged systems")
    expect(html).toContain("Chance of beating an average system")
    // Offline markers.
    expect(html).toContain("OFFLINE SYNTHESIZER")
    expect(html).toContain("OFFLINE JUDGE")
    // Tokens: means 32, 90, 90 → base/LLINK 2.81×; the tokenizer statistics beside the paper's.
    expect(html).toContain("2.81×")
    expect(html).toContain("1.625")
    expect(html).toContain("6.25×")
    expect(html).toContain("6.5× (example: 104 vs 16)")
    // Numeric fidelity and samples (escaped).
    expect(html).toContain("Numeric fidelity")
    expect(html).toContain("The distance is approximately 10 miles.")
    expect(html).toContain("Translate &lt;this&gt;.")
    // Curves: Stage A and Stage B, with L_SFT vs L_zero and the gap.
    const svgs = html.match(/<svg /g) ?? []
    expect(svgs.length).toBeGreaterThanOrEqual(7)
    expect(html).toContain("Stage A: loss components")
    expect(html).toContain("Stage A: temperature τ")
    expect(html).toContain("Stage B: L_SFT vs L_zero")
    expect(html).toContain("usage gap L_zero − L_SFT")
    // Data and lineage.
    expect(html).toContain("Pairs in")
    expect(html).toContain("rejected: duplicate")
    // ingest: quarantine reasons (most frequent first) and the accepted Moses mismatch
    expect(md).toContain("| Quarantined at ingest | 9 |")
    expect(md.indexOf("quarantined: control-char | 6")).toBeLessThan(md.indexOf("quarantined: extra-line-english | 2"))
    expect(md).toContain("WARNING: Moses line counts differ (accepted by corpus.allowLineCountMismatch")
    expect(md).toContain("c.en: 531 lines, c.km: 529 lines")
    expect(html).toContain("<td>synthesize</td>")
    expect(html).toContain("<td>cached</td>")
    expect(html).toContain("{&quot;mode&quot;:&quot;offline&quot;,&quot;seed&quot;:17}")
    expect(html).not.toMatch(/<(script|link|img)\b/)

    expect(md).toContain("| LLINK (Stage A) | this run (n = 100) | 0.512 |")
    // The peers' Table 1 rows (no paper rows: the paper has no peers), and how their vector is formed.
    expect(md).toContain("| LangBridge (mean mapped state) | this run (n = 100) | 0.013 | 0.001–0.035 | 0.061 | 0.118 | 0.052 | 0.030–0.075 | 46.3 | 0.010 |")
    expect(md).toContain("| MindMerger (mean mapped state) | off in this run (baselines) | – |")
    expect(md).toContain("Peer query vectors: meanMappedStates")
    expect(md).toContain("the mean of the rows its trained bridge makes from the encoder's token states of the foreign sentence read alone")
    expect(results.retrieval.langbridge.r1).toBe(0.013)
    expect(results.retrieval.mindmerger).toBeNull()
    expect(results.retrieval.peerVector).toBe("meanMappedStates")
    // Table 1's intervals; Table 2's judge statistics, with the paper's (W + ½T)/N derived from its shares.
    expect(md).toContain("| 0.512 | 0.415–0.609 | 0.750 | 0.860 | 0.620 | 0.550–0.690 |")
    expect(md).toContain("percentile bootstrap over queries, 1,000 resamples, seed 0")
    for (const s of ["Preference 95% CI", "Win rate (W + ½T)/N", "Position consistency", "First / second shown won", "*79.0%*", "*61.0%*", "*66.0%*", "*57.0%*"]) {
      expect(md).toContain(s)
    }
    // Content, LLINK vs base: one pair, LLINK wins in both orders; 20 vs 3 characters.
    expect(md).toContain("| 100.0% | 100.0–100.0% | 100.0% | 100.0–100.0% | 0.0% | 100.0% | 50.0% / 50.0% | 20.0 / 3.0 (6.67×) |")
    expect(results.judge.bootstrap).toEqual({ method: "percentile", level: 0.95, resamples: 1000, seed: 0, unit: "prompt" })
    expect(results.retrieval.bootstrap.unit).toBe("query")
    // results.json keys the test sets by name and leaves their per-query ranks in the artifact
    expect(Object.keys(results.retrieval.testSets)).toEqual(["flores200-devtest"])
    expect(results.retrieval.testSets["flores200-devtest"]).toMatchObject({ n: 1012, contaminatedEnglish: 3, stageA: { r1: 0.123 }, full: { r1: 0.087 }, finetune: { r1: 0.004 }, langbridge: { r1: 0.011 }, mindmerger: null })
    expect(results.retrieval.testSets["flores200-devtest"].ranks).toBeUndefined()
    expect(results.judge.byBucket.content.vsBase.meanChars).toEqual({ system: 20, baseline: 3, ratio: 20 / 3 })
    expect(md).toContain("*paper (n = 1,024)* | *0.430*")
    expect(md).toContain("> **OFFLINE SYNTHESIZER")
    // "What this run shows" and generation quality come from the same numbers.
    expect(md.indexOf("## What this run shows")).toBeLessThan(md.indexOf("## Retrieval"))
    expect(results.claims.map((c: { verdict: string }) => c.verdict)).toHaveLength(5)
    expect(md).toContain("| LLINK's prompts use fewer decoder tokens | ✔ reproduced |")
    expect(md).toContain("## Generation quality")
    expect(results.generation.llink.n).toBe(2)
    expect(results.generation.base.chrf).toBeLessThan(results.generation.finetune.chrf)
    expect(html).toContain('<h2 id="generation">')

    expect(results.retrieval.stageA.r1).toBe(0.512)
    expect(results.retrieval.paper.full.r1).toBe(0.45)
    expect(results.offline).toEqual({ synthesizer: true, judge: true })
    expect(results.tokens.llink).toEqual({ mean: 32, total: 64 })
    expect(results.tokens.base).toEqual({ mean: 90, total: 180 })
    expect(results.tokens.ratioBaseToLlink).toBeCloseTo(90 / 32, 12)
    expect(results.judge.paper.content.vsBase.preference).toBe(0.863)
    expect(results.judge.byBucket.content.vsBase.n).toBe(1)
    expect(results.training.stageA.devR1).toBe(0.5)
    expect(results.training.stageB.lossZero).toBeCloseTo(2.4, 12)
    expect(results.data).toEqual({ rowsIn: 500, kept: 480, rejected: 20, truncated: 7 })
    expect(outcome.metrics?.["lineage"]).toBe(true)
    // The run directory's copies are the runner's (runCopy; test/pipeline/runner.test.ts, endToEnd.test.ts).
  })

  it("says so when there is no manifest, and drops the synthesizer marker for LLM data", async () => {
    const base = tmpDir("report-plain")
    const ctx = await fixtures(base, { offlineSynth: false, manifest: false })
    await Effect.runPromise(report.run(ctx))
    const html = fs.readFileSync(path.join(ctx.outputs["report"], "report.html"), "utf8")
    expect(html).toContain("No manifest.json in the run directory.")
    expect(html).not.toContain("OFFLINE SYNTHESIZER")
    expect(html).toContain("OFFLINE JUDGE")
  })

  it("states the settings beyond the paper (number pathway, slot policy, number pointer) when they are on, and only then", async () => {
    const policy = { byLength: { min: 2, max: 8, tokensPerSlot: 3 } }
    expect(report.selectParams(configOf({ stageB: { slotPolicy: policy, numbers: "copy" } }))).toMatchObject({ numbers: "copy", slotPolicy: policy })
    expect("slotPolicy" in (report.selectParams(configOf({})) as object)).toBe(false)
    expect(report.selectParams(configOf({ generate: { copyNumbers: "on" } }))).toMatchObject({ copyNumbers: "on" })
    expect("copyNumbers" in (report.selectParams(configOf({ generate: { copyNumbers: "off" } })) as object)).toBe(false)
    const base = tmpDir("report-beyond")
    const plain = await fixtures(base, { offlineSynth: true, manifest: false })
    const ctx = { ...plain, params: { ...plain.params, numbers: "copy" as const, slotPolicy: policy, copyNumbers: "on" as const } }
    await Effect.runPromise(report.run(ctx))
    const results = JSON.parse(fs.readFileSync(ctx.outputs["results"], "utf8"))
    expect(results.numbers).toBe("copy")
    expect(results.slotPolicy).toEqual(policy)
    expect(results.copyNumbers).toBe("on")
    const md = fs.readFileSync(path.join(ctx.outputs["report"], "report.md"), "utf8")
    expect(md).toContain("LLINK's slots per example: K(x) = clamp(⌈encoder tokens / 3⌉, 2, 8)")
    expect(md).toContain("number pathway")
    expect(md).toContain("every system's numbers copied from the foreign text at decoding")
    const off = await fixtures(tmpDir("report-paper"), { offlineSynth: true, manifest: false })
    await Effect.runPromise(report.run(off))
    const paper = JSON.parse(fs.readFileSync(off.outputs["results"], "utf8"))
    expect("slotPolicy" in paper || "numbers" in paper || "copyNumbers" in paper).toBe(false)
    expect(fs.readFileSync(path.join(off.outputs["report"], "report.md"), "utf8")).not.toContain("copied from the foreign text")
  })

  it("reads training metrics from JSON rows, an object holding rows, and finds the L_SFT / L_zero columns", async () => {
    const base = tmpDir("report-metrics")
    const a = writeJson(path.join(base, "a.json"), [{ step: 1, sft_loss: 2, zero_loss: 3, note: "x" }, { step: 2, sft_loss: 1.5, zero_loss: null }])
    const b = writeJson(path.join(base, "b.json"), { config: {}, history: [{ step: 1, L_sft: 2, L_zero: 2.5 }] })
    const ta = await Effect.runPromise(readMetricsTable(a))
    expect([...ta.keys()]).toEqual(["step", "sft_loss", "zero_loss"])
    expect(ta.get("zero_loss")?.[1]).toBeNaN()
    expect(sftZeroColumns(ta)).toEqual({ sft: "sft_loss", zero: "zero_loss" })
    const tb = await Effect.runPromise(readMetricsTable(b))
    expect(sftZeroColumns(tb)).toEqual({ sft: "L_sft", zero: "L_zero" })
  })
})
