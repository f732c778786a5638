/**
 * `ingest`: reads the user's corpus in whatever format it came (ParaCrawl bonus TSV, WMT20 `.xz` + LASER scores,
 * OPUS Moses plain or zipped, TMX plain or zipped, Parquet, JSONL; see `src/nodes/ingest/corpus.ts` for detection) and
 * writes two tables:
 * - `pairs`: `id` (0-based, file order), `english`, `foreign`, `origin` (`file:line`), `score` (WMT20 LASER or null);
 * - `ingest.quarantine`: every row that could not be used as it is (`file`, `line`, `reason`, `raw` ≤ 500 chars).
 *
 * Rows stream through in batches (one per 64 KiB chunk), so memory stays flat whatever the corpus size. Nothing is
 * altered here (no normalisation): that is `clean`'s job. A structurally broken file (truncated gzip/xz, unreadable
 * zip, not TMX) fails the stage naming the file and the byte or line; a corpus with no usable pair fails too.
 */
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { openTableWriter } from "../../pipeline/table.ts"
import type { Row } from "../../pipeline/table.ts"
import { corpusFiles, type CorpusParams, planFiles, readCorpus, readerOptions, resolveCorpus } from "./corpus.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { CorpusConfig, type LlinkConfig } from "../../schemas/config.ts"
import { PairColumns, QuarantineColumns } from "../../schemas/rows.ts"

const STAGE = "ingest"

const describeReasons = (byReason: Readonly<Record<string, number>>): string =>
  Object.entries(byReason)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${r} ${n}`)
    .join(", ")

export const ingest = defineStage<CorpusParams>({
  name: STAGE,
  version: "1",
  description: "Read the parallel corpus (TSV/WMT20/Moses/TMX/Parquet/JSONL) into a pairs table; quarantine bad rows",
  inputs: [],
  outputs: [
    { name: "pairs", kind: "parquet", file: "pairs.parquet", description: "sentence pairs: id, english, foreign, origin, score" },
    {
      name: "ingest.quarantine",
      kind: "parquet",
      file: "quarantine.parquet",
      description: "rows not ingested: file, line, reason, raw"
    }
  ],
  params: CorpusConfig,
  selectParams: (config) => (config as LlinkConfig).corpus,
  externalInputs: (params) => corpusFiles(params),
  run: Effect.fn("ingest.run")(function*(ctx) {
    const plan = yield* resolveCorpus(ctx.params).pipe(asStageError(STAGE))
    const files = planFiles(plan)
    ctx.log(`reading ${plan.format} corpus: ${files.join(" + ")}`)
    const pairsWriter = yield* openTableWriter(ctx.outputs["pairs"], PairColumns).pipe(asStageError(STAGE))
    const quarantineWriter = yield* openTableWriter(ctx.outputs["ingest.quarantine"], QuarantineColumns).pipe(
      asStageError(STAGE)
    )
    const progress = ctx.progress("pairs")
    const byReason: Record<string, number> = {}
    let nextId = 0
    yield* readCorpus(plan, readerOptions(ctx.params)).pipe(
      Stream.runForEach((batch) =>
        Effect.gen(function*() {
          if (batch.pairs.length > 0) {
            for (const p of batch.pairs) p.id = nextId++
            yield* pairsWriter.write(batch.pairs)
          }
          if (batch.bad.length > 0) {
            for (const q of batch.bad) byReason[q.reason] = (byReason[q.reason] ?? 0) + 1
            yield* quarantineWriter.write(batch.bad.map((q): Row => ({ file: q.file, line: q.line, reason: q.reason, raw: q.raw })))
          }
          progress.advance(batch.pairs.length + batch.bad.length)
        })
      ),
      asStageError(STAGE)
    )
    const pairs = yield* pairsWriter.close.pipe(asStageError(STAGE))
    const quarantined = yield* quarantineWriter.close.pipe(asStageError(STAGE))
    progress.done()
    const reasons = describeReasons(byReason)
    ctx.log(`${pairs} pairs, ${quarantined} quarantined${quarantined > 0 ? ` (${reasons})` : ""}`)
    if (pairs === 0) {
      return yield* new StageError({
        stage: STAGE,
        message: `no usable pair in ${files.join(" + ")} (format ${plan.format}; ${quarantined} rows quarantined` +
          `${quarantined > 0 ? `: ${reasons}` : ""}) — check corpus.format, the language codes and englishColumn`,
        file: files[0]
      })
    }
    return {
      rows: { pairs, "ingest.quarantine": quarantined },
      metrics: { format: plan.format, files, pairs, quarantined, byReason }
    }
  })
})
