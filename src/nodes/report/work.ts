/** The `report` stage's work (see stage.ts): read what was computed, render, write results.json and the report. */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { asStageError } from "../../pipeline/stageError.ts"
import { StageError } from "../../pipeline/errors.ts"
import { readManifest } from "../../pipeline/manifest.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { readTableAll } from "../../formats/parquet/table.ts"
import { readJsonDoc, writeJsonDoc } from "../../artifacts/json.ts"
import type { DocSchema } from "../../pipeline/stage.ts"
import { JudgeDoc } from "../../schemas/judge.ts"
import { IngestSummaryDoc } from "../../schemas/ingestSummary.ts"
import { QualityDoc } from "../../schemas/quality.ts"
import { ResultsDoc } from "../../schemas/results.ts"
import { RetrievalDoc, RetrievalFullDoc, RetrievalPeersDoc, TestSetsDoc, TestSetsFullDoc } from "../../schemas/retrieval.ts"
import { readGenerations } from "../../schemas/sft.ts"
import { TokstatsDoc } from "../../schemas/tokstats.ts"
import { PretrainDoc } from "../../schemas/pretrain.ts"
import type { ReportParams } from "./params.ts"
import { type MetricsTable, renderReport } from "./render.ts"
import { REPORT_HTML, REPORT_INPUTS, REPORT_MD } from "./stage.ts"
import { describeError } from "../../errors/describe.ts"

const STAGE = "report"

const readJson = (file: string): Effect.Effect<unknown, StageError> =>
  Effect.try({
    try: (): unknown => JSON.parse(fs.readFileSync(file, "utf8")),
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot read JSON: ${describeError(cause)}`, file, cause })
  })

/** An input document decoded with its producer's Schema, or undefined when it was not computed in this run. */
const optionalDoc = <S extends DocSchema>(schema: S, file: string | undefined): Effect.Effect<S["Type"] | undefined, StageError> =>
  file === undefined ? Effect.succeed(undefined) : readJsonDoc(schema, file).pipe(asStageError(STAGE))

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

export const runReport = (ctx: StageContext<ReportParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const p = ctx.params
    const inputs: Readonly<Record<string, string | undefined>> = ctx.inputs
    const missing = REPORT_INPUTS.filter((name) => inputs[name] === undefined)
    if (missing.length > 0) ctx.log(`partial report: not computed in this run: ${missing.join(", ")}`)
    const retrieval = yield* optionalDoc(RetrievalDoc, inputs["retrieval"])
    const retrievalFull = yield* optionalDoc(RetrievalFullDoc, inputs["retrieval.full"])
    const retrievalPeers = yield* optionalDoc(RetrievalPeersDoc, inputs["retrieval.peers"])
    const testSets = yield* optionalDoc(TestSetsDoc, inputs["retrieval.testSets"])
    const testSetsFull = yield* optionalDoc(TestSetsFullDoc, inputs["retrieval.testSets.full"])
    const judge = yield* optionalDoc(JudgeDoc, inputs["judge"])
    const tokstats = yield* optionalDoc(TokstatsDoc, inputs["tokstats"])
    const quality = yield* optionalDoc(QualityDoc, inputs["clean.quality"])
    const ingestSummary = yield* optionalDoc(IngestSummaryDoc, inputs["ingest.summary"])
    const pretrain = yield* optionalDoc(PretrainDoc, inputs["models.pretrain"])
    const metricsOf = (file: string | undefined) => (file === undefined ? Effect.succeed(new Map() as MetricsTable) : readMetricsTable(file))
    const stageAMetrics = yield* metricsOf(inputs["stageA.metrics"])
    const stageBMetrics = yield* metricsOf(inputs["stageB.metrics"])
    const pairsFile = inputs["judge.pairs"]
    const judgePairs = pairsFile === undefined
      ? undefined
      : (yield* readTableAll(pairsFile, { columns: ["id", "comparison", "outcome"] }).pipe(asStageError(STAGE))).map((row) => ({
        id: Number(row["id"]),
        comparison: String(row["comparison"]),
        outcome: String(row["outcome"])
      }))
    const generationsFile = inputs["generations"]
    const generations = generationsFile === undefined ? undefined : yield* readGenerations(STAGE, generationsFile)
    const sftEval = inputs["sft.eval"]
    const synthOffline = sftEval === undefined ? null : yield* synthOfflineOf(sftEval)
    const manifest = yield* readManifest(ctx.runDir, (m) => ctx.log(m)).pipe(asStageError(STAGE))
    const rendered = renderReport({
      title: p.title,
      numbers: p.numbers,
      slotPolicy: p.slotPolicy,
      copyNumbers: p.copyNumbers,
      retrieval,
      retrievalFull,
      retrievalPeers,
      testSets,
      testSetsFull,
      judge,
      tokstats,
      quality,
      ingestSummary,
      pretrain,
      stageAMetrics,
      stageBMetrics,
      generations,
      judgePairs,
      synthOffline,
      manifest,
      samples: p.samples,
      missing
    })
    const dir = ctx.outputs["report"]
    yield* Effect.try({
      try: () => fs.mkdirSync(dir, { recursive: true }),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${dir}: ${String(cause)}`, file: dir, cause })
    })
    yield* writeJsonDoc(ResultsDoc, ctx.outputs["results"], rendered.results).pipe(asStageError(STAGE))
    yield* writeText(path.join(dir, REPORT_MD), rendered.markdown)
    yield* writeText(path.join(dir, REPORT_HTML), rendered.html)
    const r = rendered.results
    const f3 = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(3))
    const pref = (x: number | null | undefined) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`)
    ctx.log(
      `R@1 Stage A ${f3(r.retrieval.stageA?.r1)}, full ${f3(r.retrieval.full?.r1)}, fine-tune ${f3(r.retrieval.finetune?.r1)}, ` +
        `LangBridge ${f3(r.retrieval.langbridge?.r1)}, MindMerger ${f3(r.retrieval.mindmerger?.r1)}; ` +
        `judge${r.offline.judge === true ? " (offline chrF)" : ""} preference vs base ${pref(r.judge?.overall.vsBase.preference)}, ` +
        `vs fine-tune ${pref(r.judge?.overall.vsFinetune.preference)}; report: ${path.join(ctx.runDir, REPORT_HTML)}`
    )
    return {
      rows: {},
      metrics: {
        offline: r.offline,
        r1: {
          stageA: r.retrieval.stageA?.r1 ?? null,
          full: r.retrieval.full?.r1 ?? null,
          finetune: r.retrieval.finetune?.r1 ?? null,
          langbridge: r.retrieval.langbridge?.r1 ?? null,
          mindmerger: r.retrieval.mindmerger?.r1 ?? null
        },
        preference: { vsBase: r.judge?.overall.vsBase.preference ?? null, vsFinetune: r.judge?.overall.vsFinetune.preference ?? null },
        ratioBaseToLlink: r.tokens?.ratioBaseToLlink ?? null,
        lineage: manifest !== undefined,
        missing
      }
    }
  })
