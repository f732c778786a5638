/** The `ingest` stage's work (see stage.ts): stream the corpus into the `pairs` and `ingest.quarantine` tables. */
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import type { CorpusParams } from "./params.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter } from "../../formats/parquet/table.ts"
import type { ColumnBatch, Row } from "../../formats/parquet/table.ts"
import { planFiles, readCorpus, readerOptions, readTsvCorpusColumns, resolveCorpus } from "../../corpus/corpus.ts"
import type { LineCounts, Quarantined } from "../../corpus/formats/records.ts"
import type { TsvColumns } from "../../corpus/formats/tsvBytes.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { PairColumns, QuarantineColumns } from "../../schemas/rows.ts"
import { IngestSummaryDoc } from "../../schemas/ingestSummary.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"

const STAGE = "ingest"

const describeReasons = (byReason: Readonly<Record<string, number>>): string =>
  Object.entries(byReason)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${r} ${n}`)
    .join(", ")

/** `label:line` origins of a batch, written as bytes (`label:` once, then the digits). */
class OriginBytes {
  private readonly prefix: Buffer
  private buf = Buffer.allocUnsafeSlow(1 << 16)
  private starts = new Int32Array(1024)
  private ends = new Int32Array(1024)
  private ids = new Int32Array(1024)
  constructor(label: string) {
    this.prefix = Buffer.from(`${label}:`, "utf8")
  }
  /** `count` ids from `first` (reused buffer, valid until the next call). */
  idRange(first: number, count: number): Int32Array {
    if (this.ids.length < count) this.ids = new Int32Array(2 * count)
    for (let k = 0; k < count; k++) this.ids[k] = first + k
    return this.ids
  }
  /** The origins of `lines`, as one buffer and ranges (reused, valid until the next call). */
  encode(lines: Int32Array, count: number): { bytes: Buffer; starts: Int32Array; ends: Int32Array } {
    const need = count * (this.prefix.length + 11)
    if (this.buf.length < need) this.buf = Buffer.allocUnsafeSlow(2 * need)
    if (this.starts.length < count) {
      this.starts = new Int32Array(2 * count)
      this.ends = new Int32Array(2 * count)
    }
    const { starts, ends } = this
    let pos = 0
    for (let k = 0; k < count; k++) {
      starts[k] = pos
      this.prefix.copy(this.buf, pos)
      pos += this.prefix.length
      pos += this.buf.write(String(lines[k]), pos, "latin1")
      ends[k] = pos
    }
    return { bytes: this.buf, starts, ends }
  }
}

/** A byte-level TSV batch as the `pairs` table's columns (ids from `firstId`, no score). */
const pairColumns = (batch: TsvColumns, firstId: number, origins: OriginBytes): ColumnBatch => {
  const n = batch.count
  const ids = origins.idRange(firstId, n)
  const o = origins.encode(batch.lines, n)
  return {
    rows: n,
    columns: {
      id: { kind: "number", values: ids },
      english: { kind: "utf8", bytes: batch.bytes, starts: batch.englishStart, ends: batch.englishEnd },
      foreign: { kind: "utf8", bytes: batch.bytes, starts: batch.foreignStart, ends: batch.foreignEnd },
      origin: { kind: "utf8", bytes: o.bytes, starts: o.starts, ends: o.ends },
      score: { kind: "null" }
    }
  }
}

export const runIngest = (ctx: StageContext<CorpusParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const plan = yield* resolveCorpus(ctx.params).pipe(asStageError(STAGE))
    const files = planFiles(plan)
    ctx.log(`reading ${plan.format} corpus: ${files.join(" + ")}`)
    const pairsWriter = yield* openTableWriter(ctx.outputs["pairs"], PairColumns).pipe(asStageError(STAGE))
    const quarantineWriter = yield* openTableWriter(ctx.outputs["ingest.quarantine"], QuarantineColumns).pipe(
      asStageError(STAGE)
    )
    // a failed read (a corrupt file) leaves both writers open: close their handles
    const abortWriters = Effect.andThen(pairsWriter.abort, quarantineWriter.abort)
    const progress = ctx.progress("pairs")
    const byReason: Record<string, number> = {}
    let nextId = 0
    let lineCounts: LineCounts | undefined
    const writeBad = (bad: ReadonlyArray<Quarantined>) =>
      Effect.gen(function*() {
        if (bad.length === 0) return
        for (const q of bad) byReason[q.reason] = (byReason[q.reason] ?? 0) + 1
        yield* quarantineWriter.write(bad.map((q): Row => ({ file: q.file, line: q.line, reason: q.reason, raw: q.raw })))
      })
    const options = readerOptions(ctx.params)
    const columns = readTsvCorpusColumns(plan, options)
    if (columns !== undefined && plan.format === "tsv") {
      // plain TSV: pairs stay bytes from the file to the pages of pairs.parquet
      const origins = new OriginBytes(plan.source.label)
      yield* columns.pipe(
        Stream.runForEach((batch) =>
          Effect.gen(function*() {
            if (batch.count > 0) {
              yield* pairsWriter.writeColumns(pairColumns(batch, nextId, origins))
              nextId += batch.count
            }
            yield* writeBad(batch.bad)
            progress.advance(batch.count + batch.bad.length)
          })
        ),
        Effect.onError(() => abortWriters),
        asStageError(STAGE)
      )
    } else {
      yield* readCorpus(plan, options).pipe(
        Stream.runForEach((batch) =>
          Effect.gen(function*() {
            if (batch.pairs.length > 0) {
              for (const p of batch.pairs) p.id = nextId++
              yield* pairsWriter.write(batch.pairs)
            }
            yield* writeBad(batch.bad)
            if (batch.lineCounts !== undefined) lineCounts = batch.lineCounts
            progress.advance(batch.pairs.length + batch.bad.length)
          })
        ),
        Effect.onError(() => abortWriters),
        asStageError(STAGE)
      )
    }
    const pairs = yield* pairsWriter.close.pipe(asStageError(STAGE))
    const quarantined = yield* quarantineWriter.close.pipe(asStageError(STAGE))
    progress.done()
    const reasons = describeReasons(byReason)
    ctx.log(`${pairs} pairs, ${quarantined} quarantined${quarantined > 0 ? ` (${reasons})` : ""}`)
    if (lineCounts !== undefined) {
      ctx.log(
        `warning: ${lineCounts.english.file} has ${lineCounts.english.lines} lines and ${lineCounts.foreign.file} ` +
          `${lineCounts.foreign.lines}; paired by position (corpus.allowLineCountMismatch)`
      )
    }
    const summary: IngestSummaryDoc = {
      format: plan.format,
      files: [...files],
      pairs,
      quarantined,
      byReason,
      lineCountMismatch: lineCounts ?? null
    }
    yield* writeJsonDoc(IngestSummaryDoc, ctx.outputs["ingest.summary"], summary).pipe(asStageError(STAGE))
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
      metrics: {
        format: plan.format,
        files,
        pairs,
        quarantined,
        byReason,
        ...(lineCounts === undefined ? {} : { lineCountMismatch: lineCounts })
      }
    }
  })
