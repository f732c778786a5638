/**
 * `report`: the run's results beside the paper's. Reads the retrieval, judge, tokenizer, data-quality and training
 * artifacts and the generations, and writes `results.json` (the numbers) and a `report` folder holding `report.md`
 * and `report.html` (self-contained: inline CSS and SVG plots, no external files). Copies of the three files are
 * also written into the run directory (`<run-dir>/report.html`, …) for people to open.
 *
 * Contents (src/nodes/report/render.ts): offline markers (synthesizer, judge), Table 1 (retrieval) and Table 2 (judge)
 * beside the paper, prompt tokens per system and the tokenizer statistics, numeric fidelity, training curves of
 * Stage A (loss components, τ, lr, dev retrieval) and Stage B (L_SFT vs L_zero and their gap, other loss terms, lr),
 * sample generations, data quality, and the lineage from `<run-dir>/manifest.json` when present (which stages ran or
 * were cached, with their parameters and input digests).
 *
 * Every input is optional: the report runs at the end of every run, `--until S` and failed stages included, on the
 * artifacts that exist, and says which were not computed (`results.partial.missing`, a note at the top).
 *
 * Gotcha: the lineage is read from the manifest at the time the report runs; it is not part of the cache key, so a
 * cached report shows the lineage of the run that made it.
 *
 * Training metrics may be Parquet tables (one row per logged step, numeric columns, `step` as x) or JSON (an array of
 * such rows, or an object holding one) or JSON lines.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { ResultsDoc } from "../../schemas/results.ts"
import type { LlinkConfig } from "../config.ts"
import { ReportParams } from "./params.ts"

/** File names inside the `report` folder (and in the run directory). */
export const REPORT_MD = "report.md"
export const REPORT_HTML = "report.html"
export const RESULTS_JSON = "results.json"

/** Everything the report can show; each is read when it was computed. */
export const REPORT_INPUTS = [
  "retrieval",
  "retrieval.full",
  "retrieval.peers",
  "retrieval.testSets",
  "retrieval.testSets.full",
  "judge",
  "judge.pairs",
  "tokstats",
  "clean.quality",
  "ingest.summary",
  "stageA.metrics",
  "stageB.metrics",
  "generations",
  "sft.eval",
  "models.pretrain"
] as const

export const report = defineStage<ReportParams>({
  name: "report",
  source: import.meta.url,
  version: "2",
  cost: 4,
  description: "results.json and a self-contained report (Tables 1 and 2 beside the paper, tokens, curves, samples, lineage)",
  inputs: [],
  optionalInputs: REPORT_INPUTS,
  outputs: [
    { name: "results", kind: "json", file: RESULTS_JSON, schema: ResultsDoc, description: "the run's numbers beside the paper's", runCopy: "file" },
    {
      name: "report",
      kind: "dir",
      file: "report",
      description: `${REPORT_MD} and ${REPORT_HTML} (self-contained, inline SVG)`,
      runCopy: "contents"
    }
  ],
  params: ReportParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return {
      ...c.report,
      numbers: c.stageB.numbers,
      ...(c.stageB.slotPolicy === undefined ? {} : { slotPolicy: c.stageB.slotPolicy }),
      ...(c.generate.copyNumbers === "on" ? { copyNumbers: "on" as const } : {})
    }
  },
  run: (ctx) => Effect.flatMap(importWork("report", () => import("./work.ts")), (work) => work.runReport(ctx))
})
