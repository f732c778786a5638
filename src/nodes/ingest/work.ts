/** The `ingest` stage's work (see stage.ts): stream the corpus into the `pairs` and `ingest.quarantine` tables. */
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import type { CorpusParams } from "./params.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter } from "../../pipeline/table.ts"
import type { Row } from "../../pipeline/table.ts"
import { planFiles, readCorpus, readerOptions, resolveCorpus } from "./corpus.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { PairColumns, QuarantineColumns } from "../../schemas/rows.ts"

const STAGE = "ingest"

const describeReasons = (byReason: Readonly<Record<string, number>>): string =>
  Object.entries(byReason)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${r} ${n}`)
    .join(", ")

export const runIngest = (ctx: StageContext<CorpusParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
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
