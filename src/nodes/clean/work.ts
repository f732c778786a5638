/** The `clean` stage's work (see stage.ts): normalise, reject, truncate, and summarise the data's quality. */
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter, readTable, type Row } from "../../pipeline/table.ts"
import { HashSet64, hashPair } from "./hash.ts"
import { analyzeForeign, KHMER_DAMAGE_KINDS, type KhmerDamageKind } from "./script.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { codePointLength, HAS_ZERO_WIDTH, MAYBE_NOT_NFC, NEEDS_SPACE_FIX, textFlags, truncateCodePoints } from "../../text/unicode.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { QualityDoc } from "../../schemas/quality.ts"
import type { CleanParams } from "./params.ts"
import { asPairRow, PairColumns, RejectColumns } from "../../schemas/rows.ts"

const STAGE = "clean"

export type RejectReason = "empty-english" | "empty-foreign" | "script-share" | "duplicate"

const ZERO_WIDTH = /[\u200B\uFEFF\u2060]/g
const WHITESPACE_RUN = /\s+/g

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

/** The normalisation of steps 1–3 (exported for tests and other tools). */
export const normalizeText = (s: string, removeZeroWidth: boolean): string => {
  let t = (textFlags(s) & MAYBE_NOT_NFC) !== 0 ? s.normalize("NFC") : s
  if (removeZeroWidth && (textFlags(t) & HAS_ZERO_WIDTH) !== 0) t = t.replace(ZERO_WIDTH, "")
  if ((textFlags(t) & NEEDS_SPACE_FIX) !== 0) t = t.replace(WHITESPACE_RUN, " ").trim()
  return t
}

export const runClean = (ctx: StageContext<CleanParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const p = ctx.params
    const ranges = p.scriptRanges
    const keptWriter = yield* openTableWriter(ctx.outputs["clean"], PairColumns).pipe(asStageError(STAGE))
    const rejectWriter = yield* openTableWriter(ctx.outputs["clean.rejects"], RejectColumns).pipe(asStageError(STAGE))
    const seen = new HashSet64()
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

    yield* readTable(ctx.inputs["pairs"]).pipe(
      Stream.runForEachArray((rows) =>
        Effect.gen(function*() {
          const kept: Array<Row> = []
          const rejected: Array<Row> = []
          for (const raw of rows) {
            const pair = asPairRow(raw)
            if (typeof pair === "string") {
              return yield* new StageError({ stage: STAGE, message: `pairs table, row ${rowsIn + 1}: ${pair}`, file: ctx.inputs["pairs"] })
            }
            rowsIn++
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
              continue
            }
            for (const kind of facts.damage) {
              const d = damage[kind]
              d.rows++
              if (d.exampleIds.length < EXAMPLES) d.exampleIds.push(pair.id)
            }
            englishLengths.add(codePointLength(english))
            foreignLengths.add(facts.length)
            const cut = facts.length > p.maxForeignChars ? truncateCodePoints(foreign, p.maxForeignChars) : foreign
            if (cut !== foreign) truncated++
            kept.push({ id: pair.id, english, foreign: cut, origin: pair.origin, score: pair.score })
          }
          if (kept.length > 0) yield* keptWriter.write(kept).pipe(asStageError(STAGE))
          if (rejected.length > 0) yield* rejectWriter.write(rejected).pipe(asStageError(STAGE))
          progress.advance(rows.length)
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

