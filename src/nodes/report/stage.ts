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
 * Gotcha: the lineage is read from the manifest at the time the report runs; it is not part of the cache key, so a
 * cached report shows the lineage of the run that made it.
 *
 * Training metrics may be Parquet tables (one row per logged step, numeric columns, `step` as x) or JSON (an array of
 * such rows, or an object holding one) or JSON lines.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { asStageError } from "../../pipeline/stageError.ts"
import { StageError } from "../../pipeline/errors.ts"
import { readManifest } from "../../pipeline/manifest.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { readTableAll } from "../../pipeline/table.ts"
import {
  JudgeDoc,
  type MetricsTable,
  QualityDoc,
  renderReport,
  RetrievalDoc,
  RetrievalFullDoc,
  TokstatsDoc
} from "./render.ts"
import { type LlinkConfig, ReportConfig } from "../../schemas/config.ts"
import { readGenerations } from "../../schemas/sft.ts"

const STAGE = "report"
type ReportParams = typeof ReportConfig.Type

/** File names inside the `report` folder (and in the run directory). */
export const REPORT_MD = "report.md"
export const REPORT_HTML = "report.html"
export const RESULTS_JSON = "results.json"

const readJson = (file: string): Effect.Effect<unknown, StageError> =>
  Effect.try({
    try: (): unknown => JSON.parse(fs.readFileSync(file, "utf8")),
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot read JSON: ${cause instanceof Error ? cause.message : String(cause)}`, file, cause })
  })

const decodeFile = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, file: string, what: string) =>
  Effect.flatMap(readJson(file), (json) =>
    Schema.decodeUnknownEffect(schema)(json).pipe(
      Effect.mapError((cause) => new StageError({ stage: STAGE, message: `${what} has an unexpected shape: ${cause.message}`, file, cause }))
    )
  )

/** Rows (objects) → column → numbers (null, missing or non-numeric cells become NaN; booleans 0/1). */
export const metricsFromRows = (rows: ReadonlyArray<Readonly<Record<string, unknown>>>): MetricsTable => {
  const names: Array<string> = []
  for (const r of rows) for (const k of Object.keys(r)) if (!names.includes(k)) names.push(k)
  const out = new Map<string, Array<number>>()
  for (const name of names) {
    const values = rows.map((r) => {
      const v = r[name]
      return typeof v === "number" ? v : typeof v === "boolean" ? (v ? 1 : 0) : Number.NaN
    })
    if (values.some((v) => Number.isFinite(v))) out.set(name, values)
  }
  return out
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x)

/** Reads a training-metrics artifact (Parquet, JSON rows, an object holding a rows array, or JSON lines). */
export const readMetricsTable = (file: string): Effect.Effect<MetricsTable, StageError> =>
  Effect.gen(function*() {
    if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() === true) {
      const inner = fs.readdirSync(file).filter((f) => /\.(parquet|json|jsonl)$/.test(f)).sort()
      if (inner.length === 0) return new Map()
      return yield* readMetricsTable(path.join(file, inner[0]))
    }
    if (file.endsWith(".parquet")) {
      const rows = yield* readTableAll(file).pipe(asStageError(STAGE))
      return metricsFromRows(rows)
    }
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot read ${file}: ${String(cause)}`, file, cause })
    })
    if (file.endsWith(".jsonl")) {
      const rows: Array<Record<string, unknown>> = []
      for (const [i, line] of text.split("\n").entries()) {
        if (line.trim() === "") continue
        const parsed = yield* Effect.try({
          try: (): unknown => JSON.parse(line),
          catch: (cause) => new StageError({ stage: STAGE, message: `line ${i + 1} is not JSON`, file, line: i + 1, cause })
        })
        if (isRecord(parsed)) rows.push(parsed)
      }
      return metricsFromRows(rows)
    }
    const json = yield* readJson(file)
    const rowsOf = (x: unknown): ReadonlyArray<Record<string, unknown>> | undefined =>
      Array.isArray(x) && x.every(isRecord) ? x : undefined
    const direct = rowsOf(json)
    if (direct !== undefined) return metricsFromRows(direct)
    if (isRecord(json)) {
      for (const key of ["history", "steps", "rows", "metrics", "log"]) {
        const rows = rowsOf(json[key])
        if (rows !== undefined) return metricsFromRows(rows)
      }
      for (const value of Object.values(json)) {
        const rows = rowsOf(value)
        if (rows !== undefined && rows.length > 0) return metricsFromRows(rows)
      }
    }
    return new Map()
  })

/** Whether the Stage B evaluation data came from the offline synthesizer (any row marked offline). */
const synthOfflineOf = (file: string): Effect.Effect<boolean | null, StageError> =>
  Effect.map(readTableAll(file, { columns: ["offline"] }).pipe(asStageError(STAGE)), (rows) =>
    rows.length === 0 ? null : rows.some((r) => r["offline"] === true))

const writeText = (file: string, text: string) =>
  Effect.try({
    try: () => fs.writeFileSync(file, text),
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot write ${file}: ${String(cause)}`, file, cause })
  })

export const report = defineStage<ReportParams>({
  name: STAGE,
  version: "1",
  description: "results.json and a self-contained report (Tables 1 and 2 beside the paper, tokens, curves, samples, lineage)",
  inputs: ["retrieval", "retrieval.full", "judge", "tokstats", "clean.quality", "stageA.metrics", "stageB.metrics", "generations", "sft.eval"],
  outputs: [
    { name: "results", kind: "json", file: RESULTS_JSON, description: "the run's numbers beside the paper's" },
    { name: "report", kind: "dir", file: "report", description: `${REPORT_MD} and ${REPORT_HTML} (self-contained, inline SVG)` }
  ],
  params: ReportConfig,
  selectParams: (config) => (config as LlinkConfig).report,
  run: Effect.fn("report.run")(function*(ctx) {
    const p = ctx.params
    const inputs = ctx.inputs
    const retrieval = yield* decodeFile(RetrievalDoc, inputs["retrieval"], "the retrieval artifact")
    const retrievalFull = yield* decodeFile(RetrievalFullDoc, inputs["retrieval.full"], "the retrieval.full artifact")
    const judge = yield* decodeFile(JudgeDoc, inputs["judge"], "the judge artifact")
    const tokstats = yield* decodeFile(TokstatsDoc, inputs["tokstats"], "the tokstats artifact")
    const quality = yield* decodeFile(QualityDoc, inputs["clean.quality"], "the clean.quality artifact")
    const stageAMetrics = yield* readMetricsTable(inputs["stageA.metrics"])
    const stageBMetrics = yield* readMetricsTable(inputs["stageB.metrics"])
    const generations = yield* readGenerations(STAGE, inputs["generations"])
    const synthOffline = yield* synthOfflineOf(inputs["sft.eval"])
    const manifest = yield* readManifest(ctx.runDir, (m) => ctx.log(m)).pipe(asStageError(STAGE))
    const rendered = renderReport({
      title: p.title,
      retrieval,
      retrievalFull,
      judge,
      tokstats,
      quality,
      stageAMetrics,
      stageBMetrics,
      generations,
      synthOffline,
      manifest,
      samples: p.samples
    })
    const resultsText = `${JSON.stringify(rendered.results, null, 2)}\n`
    const dir = ctx.outputs["report"]
    yield* Effect.try({
      try: () => fs.mkdirSync(dir, { recursive: true }),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${dir}: ${String(cause)}`, file: dir, cause })
    })
    yield* writeText(ctx.outputs["results"], resultsText)
    yield* writeText(path.join(dir, REPORT_MD), rendered.markdown)
    yield* writeText(path.join(dir, REPORT_HTML), rendered.html)
    // Human-facing copies in the run directory (best effort: the artifacts/ links always point at the cached ones).
    const copies = yield* Effect.result(
      Effect.gen(function*() {
        yield* Effect.try({ try: () => fs.mkdirSync(ctx.runDir, { recursive: true }), catch: (cause) => cause })
        for (const [name, text] of [[RESULTS_JSON, resultsText], [REPORT_MD, rendered.markdown], [REPORT_HTML, rendered.html]] as const) {
          yield* Effect.try({ try: () => fs.writeFileSync(path.join(ctx.runDir, name), text), catch: (cause) => cause })
        }
      })
    )
    if (copies._tag === "Failure") ctx.log(`could not copy the report into ${ctx.runDir}: ${String(copies.failure)}`)
    const r = rendered.results
    const pref = (x: number | null | undefined) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`)
    ctx.log(
      `R@1 Stage A ${r.retrieval.stageA.r1.toFixed(3)}, full ${r.retrieval.full.r1.toFixed(3)}, fine-tune ${r.retrieval.finetune.r1.toFixed(3)}; ` +
        `judge${r.offline.judge ? " (offline chrF)" : ""} preference vs base ${pref(r.judge.overall.vsBase.preference)}, ` +
        `vs fine-tune ${pref(r.judge.overall.vsFinetune.preference)}; report: ${path.join(ctx.runDir, REPORT_HTML)}`
    )
    return {
      rows: {},
      metrics: {
        offline: r.offline,
        r1: { stageA: r.retrieval.stageA.r1, full: r.retrieval.full.r1, finetune: r.retrieval.finetune.r1 },
        preference: { vsBase: r.judge.overall.vsBase.preference, vsFinetune: r.judge.overall.vsFinetune.preference },
        ratioBaseToLlink: r.tokens.ratioBaseToLlink,
        lineage: manifest !== undefined
      }
    }
  })
})
