/** The `clean` stage's work (see stage.ts): normalise, reject, truncate, and summarise the data's quality. */
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { isUtf8 } from "node:buffer"
import { type ColumnBatch, openTableWriter, type RawColumn, readTableRaw, type Row } from "../../formats/parquet/table.ts"
import { HashSet64, hashPair } from "./hash.ts"
import { pairScanner } from "./scan.ts"
import { analyzeForeign, KHMER_DAMAGE_KINDS, type KhmerDamageKind } from "./script.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { codePointLength, HAS_ZERO_WIDTH, MAYBE_NOT_NFC, NEEDS_SPACE_FIX, textFlags, truncateCodePoints, WHITESPACE_RUN, ZERO_WIDTH } from "../../text/unicode.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { QualityDoc } from "../../schemas/quality.ts"
import type { CleanParams } from "./params.ts"
import { asPairRow, type PairRow, PairColumns, RejectColumns } from "../../schemas/rows.ts"

const STAGE = "clean"

export type RejectReason = "empty-english" | "empty-foreign" | "script-share" | "duplicate"


/** Exact length counts up to this many code points; longer ones share the last slot. */
const LENGTH_CAP = 4096
const HISTOGRAM_BIN = 16
const HISTOGRAM_MAX = 512
const EXAMPLES = 5

class LengthStats {
  readonly counts = new Float64Array(LENGTH_CAP + 1)
  n = 0
  sum = 0
  max = 0
  add(length: number): void {
    this.counts[Math.min(length, LENGTH_CAP)]++
    this.n++
    this.sum += length
    if (length > this.max) this.max = length
  }
  private quantile(q: number): number {
    if (this.n === 0) return 0
    const target = q * (this.n - 1)
    let seen = 0
    for (let len = 0; len <= LENGTH_CAP; len++) {
      seen += this.counts[len]
      if (seen > target) return len
    }
    return LENGTH_CAP
  }
  summary() {
    const bins = Math.ceil(HISTOGRAM_MAX / HISTOGRAM_BIN)
    const histogram = new Array<number>(bins + 1).fill(0)
    for (let len = 0; len <= LENGTH_CAP; len++) {
      const c = this.counts[len]
      if (c > 0) histogram[Math.min(Math.floor(len / HISTOGRAM_BIN), bins)] += c
    }
    return {
      count: this.n,
      mean: this.n === 0 ? 0 : this.sum / this.n,
      p50: this.quantile(0.5),
      p95: this.quantile(0.95),
      max: this.max,
      histogram: {
        unit: "code points",
        binWidth: HISTOGRAM_BIN,
        /** counts[i] = pairs with length in [i·binWidth, (i+1)·binWidth); the last bin holds everything ≥ its start. */
        lastBinFrom: bins * HISTOGRAM_BIN,
        counts: histogram
      }
    }
  }
}


const PAIR_COLUMNS = PairColumns.map((c) => c.name)

/** Whether a utf8 column's bytes are valid UTF-8 with every cell starting on a character boundary (so each cell is). */
const wholeCharacters = (col: RawColumn): boolean => {
  const bytes = col.bytes!
  const offsets = col.offsets!
  const n = offsets.length - 1
  if (!isUtf8(bytes.subarray(offsets[0], offsets[n]))) return false
  for (let i = 0; i < n; i++) if (offsets[i] < offsets[i + 1] && (bytes[offsets[i]] & 0xc0) === 0x80) return false
  return true
}

/** Kept rows `rows` of a raw batch, unchanged, as a column batch of byte ranges into the input. */
const keptColumns = (
  rows: ReadonlyArray<number>,
  ids: ArrayLike<number>,
  scores: ArrayLike<number>,
  score: RawColumn,
  eb: Buffer,
  eo: Int32Array,
  fb: Buffer,
  fo: Int32Array,
  ob: Buffer,
  oo: Int32Array
): ColumnBatch => {
  const n = rows.length
  const range = (offsets: Int32Array) => {
    const starts = new Int32Array(n)
    const ends = new Int32Array(n)
    for (let k = 0; k < n; k++) {
      starts[k] = offsets[rows[k]]
      ends[k] = offsets[rows[k] + 1]
    }
    return { starts, ends }
  }
  return {
    rows: n,
    columns: {
      id: { kind: "number", values: rows.map((i) => ids[i]) },
      english: { kind: "utf8", bytes: eb, ...range(eo) },
      foreign: { kind: "utf8", bytes: fb, ...range(fo) },
      origin: { kind: "utf8", bytes: ob, ...range(oo) },
      score: { kind: "number", values: rows.map((i) => (score.valid(i) ? scores[i] : null)) }
    }
  }
}

export const runClean = (ctx: StageContext<CleanParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const p = ctx.params
    const ranges = p.scriptRanges
    const keptWriter = yield* openTableWriter(ctx.outputs["clean"], PairColumns).pipe(asStageError(STAGE))
    const rejectWriter = yield* openTableWriter(ctx.outputs["clean.rejects"], RejectColumns).pipe(asStageError(STAGE))
    const seen = new HashSet64()
    const scanner = pairScanner(ranges)
    const scanned = scanner.result
    const key = new Uint32Array(2)
    const byReason: Record<RejectReason, number> = { "empty-english": 0, "empty-foreign": 0, "script-share": 0, duplicate: 0 }
    const damage: Record<KhmerDamageKind, { rows: number; exampleIds: Array<number> }> = {
      spaceAroundCoeng: { rows: 0, exampleIds: [] },
      coengAtWordEnd: { rows: 0, exampleIds: [] },
      orphanDependentVowel: { rows: 0, exampleIds: [] }
    }
    const englishLengths = new LengthStats()
    const foreignLengths = new LengthStats()
    let rowsIn = 0
    let truncated = 0
    let nfcChanged = 0
    let zeroWidthRemoved = 0
    let zeroWidthRows = 0
    let whitespaceChanged = 0
    const progress = ctx.progress("pairs")

    const normalizeCounting = (s: string): string => {
      let flags = textFlags(s)
      if (flags === 0) return s
      let t = s
      if ((flags & MAYBE_NOT_NFC) !== 0) {
        const n = t.normalize("NFC")
        if (n !== t) nfcChanged++
        t = n
      }
      if (p.removeZeroWidth && (flags & HAS_ZERO_WIDTH) !== 0) {
        const n = t.replace(ZERO_WIDTH, "")
        zeroWidthRemoved += t.length - n.length
        zeroWidthRows++
        t = n
        flags = textFlags(t) // removal can leave two spaces side by side
      }
      if ((flags & NEEDS_SPACE_FIX) !== 0) {
        const n = t.replace(WHITESPACE_RUN, " ").trim()
        if (n !== t) whitespaceChanged++
        t = n
      }
      return t
    }

    const pairsFile = ctx.inputs["pairs"]
    const fail = (message: string) => new StageError({ stage: STAGE, message, file: pairsFile })
    /** The normalisation, rejection and truncation of one pair given as strings (the general path). */
    const cleanStrings = (pair: PairRow, kept: (row: Row) => void, rejected: Array<Row>): void => {
      const english = normalizeCounting(pair.english)
      const foreign = normalizeCounting(pair.foreign)
      const facts = analyzeForeign(foreign, ranges)
      let reason: RejectReason | undefined
      if (english === "") reason = "empty-english"
      else if (foreign === "") reason = "empty-foreign"
      else if (p.minScriptShare > 0 && facts.share < p.minScriptShare) reason = "script-share"
      else if (p.dedupe) {
        hashPair(english, foreign, key)
        if (!seen.add(key[0], key[1])) reason = "duplicate"
      }
      if (reason !== undefined) {
        byReason[reason]++
        rejected.push({ id: pair.id, reason, english, foreign })
        return
      }
      noteDamage(facts.damage, pair.id)
      englishLengths.add(codePointLength(english))
      foreignLengths.add(facts.length)
      const cut = facts.length > p.maxForeignChars ? truncateCodePoints(foreign, p.maxForeignChars) : foreign
      if (cut !== foreign) truncated++
      kept({ id: pair.id, english, foreign: cut, origin: pair.origin, score: pair.score })
    }
    const noteDamage = (kinds: ReadonlyArray<KhmerDamageKind>, id: number): void => {
      for (const kind of kinds) {
        const d = damage[kind]
        d.rows++
        if (d.exampleIds.length < EXAMPLES) d.exampleIds.push(id)
      }
    }

    // Most pairs need no normalisation (textFlags 0 on both sides: no character that NFC, zero-width removal or the
    // whitespace fix could change, nothing above U+FFFF). Those are checked on their UTF-8 bytes (the same facts and
    // hash as on the strings) and, when kept whole, written as byte ranges of the input; every other pair takes the
    // string path above. The output is the same either way.
    yield* readTableRaw(pairsFile, PAIR_COLUMNS).pipe(
      Stream.runForEach((batch) =>
        Effect.gen(function*() {
          const c = batch.columns
          const ids = c["id"].numbers
          const scores = c["score"].numbers
          const en = c["english"]
          const fo = c["foreign"]
          const or = c["origin"]
          if (ids === undefined || scores === undefined || en.bytes === undefined || fo.bytes === undefined || or.bytes === undefined) {
            return yield* fail(`pairs table: the columns are not (int32 id, utf8 english/foreign/origin, float64 score)`)
          }
          const eb = en.bytes
          const eo = en.offsets!
          const fb = fo.bytes
          const fo0 = fo.offsets!
          const ob = or.bytes
          const oo = or.offsets!
          const text = (col: RawColumn, i: number): string | null =>
            col.valid(i) ? col.bytes!.toString("utf8", col.offsets![i], col.offsets![i + 1]) : null
          const rowAt = (i: number): Row => ({
            id: c["id"].valid(i) ? ids[i] : null,
            english: text(en, i),
            foreign: text(fo, i),
            origin: text(or, i),
            score: c["score"].valid(i) ? scores[i] : null
          })
          const onBytes = wholeCharacters(en) && wholeCharacters(fo)
          const rejected: Array<Row> = []
          // kept rows in order: runs of unchanged rows (indices into the batch) and of rows given as strings
          let run: Array<number> = []
          let strings: Array<Row> = []
          const flushRun = Effect.suspend(() => {
            if (run.length === 0) return Effect.void
            const rows = run
            run = []
            return keptWriter.writeColumns(keptColumns(rows, ids, scores, c["score"], eb, eo, fb, fo0, ob, oo))
          })
          const flushStrings = Effect.suspend(() => {
            if (strings.length === 0) return Effect.void
            const rows = strings
            strings = []
            return keptWriter.write(rows)
          })
          for (let i = 0; i < batch.rows; i++) {
            if (!c["id"].valid(i) || !en.valid(i) || !fo.valid(i) || !or.valid(i)) {
              const problem = asPairRow(rowAt(i))
              return yield* fail(`pairs table, row ${rowsIn + 1}: ${typeof problem === "string" ? problem : "a null cell"}`)
            }
            rowsIn++
            const es = eo[i]
            const ee = eo[i + 1]
            const fs = fo0[i]
            const fe = fo0[i + 1]
            if (!onBytes || !scanner.scan(eb, es, ee, fb, fs, fe)) {
              const pair = asPairRow(rowAt(i))
              if (typeof pair === "string") return yield* fail(`pairs table, row ${rowsIn}: ${pair}`)
              let keptRow: Row | undefined
              cleanStrings(pair, (row) => (keptRow = row), rejected)
              if (keptRow !== undefined) {
                yield* flushRun.pipe(asStageError(STAGE))
                strings.push(keptRow)
              }
              continue
            }
            const id = ids[i]
            const facts = scanned.foreign
            let reason: RejectReason | undefined
            if (es === ee) reason = "empty-english"
            else if (fs === fe) reason = "empty-foreign"
            else if (p.minScriptShare > 0 && facts.share < p.minScriptShare) reason = "script-share"
            else if (p.dedupe) {
              if (!seen.add(scanned.key[0], scanned.key[1])) reason = "duplicate"
            }
            if (reason !== undefined) {
              byReason[reason]++
              rejected.push({ id, reason, english: eb.toString("utf8", es, ee), foreign: fb.toString("utf8", fs, fe) })
              continue
            }
            noteDamage(facts.damage, id)
            englishLengths.add(scanned.englishLength)
            foreignLengths.add(facts.length)
            if (facts.length > p.maxForeignChars) {
              truncated++
              yield* flushRun.pipe(asStageError(STAGE))
              const row = rowAt(i)
              strings.push({ ...row, foreign: truncateCodePoints(String(row.foreign), p.maxForeignChars) })
              continue
            }
            if (strings.length > 0) yield* flushStrings.pipe(asStageError(STAGE))
            run.push(i)
          }
          yield* flushRun.pipe(asStageError(STAGE))
          yield* flushStrings.pipe(asStageError(STAGE))
          if (rejected.length > 0) yield* rejectWriter.write(rejected).pipe(asStageError(STAGE))
          progress.advance(batch.rows)
        })
      ),
      Effect.onError(() => Effect.andThen(keptWriter.abort, rejectWriter.abort)),
      asStageError(STAGE)
    )
    const keptRows = yield* keptWriter.close.pipe(asStageError(STAGE))
    const rejectedRows = yield* rejectWriter.close.pipe(asStageError(STAGE))
    progress.done()

    const quality: QualityDoc = {
      rowsIn,
      kept: keptRows,
      rejected: rejectedRows,
      byReason,
      truncated,
      maxForeignChars: p.maxForeignChars,
      normalisation: {
        nfcChanged,
        zeroWidthRemoved,
        zeroWidthRows,
        whitespaceChanged,
        zeroWidthChars: p.removeZeroWidth ? ["U+200B", "U+FEFF", "U+2060"] : [],
        keptJoiners: ["U+200C", "U+200D"]
      },
      lengths: { english: englishLengths.summary(), foreign: foreignLengths.summary() },
      khmerDamage: Object.fromEntries(KHMER_DAMAGE_KINDS.map((k) => [k, damage[k]])),
      settings: { minScriptShare: p.minScriptShare, scriptRanges: ranges, dedupe: p.dedupe, removeZeroWidth: p.removeZeroWidth }
    }
    yield* writeJsonDoc(QualityDoc, ctx.outputs["clean.quality"], quality).pipe(asStageError(STAGE))
    const reasons = Object.entries(byReason).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(", ")
    const damaged = KHMER_DAMAGE_KINDS.filter((k) => damage[k].rows > 0).map((k) => `${k} ${damage[k].rows}`).join(", ")
    ctx.log(
      `${keptRows} of ${rowsIn} pairs kept; rejected ${rejectedRows}${reasons === "" ? "" : ` (${reasons})`}; ` +
        `${truncated} foreign sides truncated to ${p.maxForeignChars} chars` +
        (damaged === "" ? "" : `; suspected damaged Khmer: ${damaged}`)
    )
    if (keptRows === 0) {
      return yield* new StageError({
        stage: STAGE,
        message: `no pair survived cleaning (${rowsIn} in; ${reasons}) — check clean.minScriptShare and clean.scriptRanges ` +
          `against the foreign language`
      })
    }
    return {
      rows: { clean: keptRows, "clean.rejects": rejectedRows },
      metrics: { rowsIn, kept: keptRows, rejected: rejectedRows, byReason, truncated }
    }
  })

