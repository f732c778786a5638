/**
 * What every corpus reader produces: batches of candidate pairs and of quarantined (bad) rows, in file order.
 * The ingest stage numbers the pairs and writes both tables. Reasons are short fixed codes (counted in metrics).
 */
import type { ByteSource } from "../bytes.ts"
import type { LineFault } from "../lines.ts"
import { excerpt } from "../../text/unicode.ts"

/** Why a row was quarantined. */
export type QuarantineReason =
  | LineFault
  | "blank-line"
  | "wrong-column-count"
  | "empty-english"
  | "empty-foreign"
  | "control-char"
  | "extra-line-english"
  | "extra-line-foreign"
  | "score-missing"
  | "score-extra"
  | "score-invalid"
  | "invalid-json"
  | "missing-field"
  | "tmx-missing-side"
  | "tmx-unparsable"

/** A candidate pair, already shaped as a `pairs` row; the ingest stage numbers it (sets `id`) in place. */
export type RawPair = {
  id: number
  readonly english: string
  readonly foreign: string
  /** `file:line` (`archive.zip!entry:line` inside an archive; `file.parquet:row` for Parquet). */
  readonly origin: string
  readonly score: number | null
}

/** A candidate pair with its id still unset (0). One allocation per pair on the hot path. */
export const rawPair = (english: string, foreign: string, origin: string, score: number | null): RawPair => ({
  id: 0,
  english,
  foreign,
  origin,
  score
})

export interface Quarantined {
  readonly file: string
  readonly line: number
  readonly reason: QuarantineReason
  /** The raw text, at most 500 code points. */
  readonly raw: string
}

export interface RecordBatch {
  readonly pairs: Array<RawPair>
  readonly bad: Array<Quarantined>
  /** Moses, in the last batch, when the two files' line counts differ and `allowLineCountMismatch` accepted it. */
  readonly lineCounts?: LineCounts
}

/** The line counts of a Moses pair whose files differ in length (labels as in quarantine rows). */
export interface LineCounts {
  readonly english: { readonly file: string; readonly lines: number }
  readonly foreign: { readonly file: string; readonly lines: number }
}

/** Language codes and column choices every reader needs. */
export interface ReaderOptions {
  readonly englishLang: string
  readonly foreignLang: string
  /** Two-column text/Parquet: index of the English column (the foreign one is `foreignColumn`). */
  readonly englishColumn: number
  readonly foreignColumn: number
  /** TSV: the exact number of tab-separated fields a line must have. */
  readonly columns: number
  /** TSV: skip the first line (a header). */
  readonly header: boolean
  /** Moses: pair two files of different lengths by position instead of failing. */
  readonly allowLineCountMismatch: boolean
}

export const quarantine = (
  source: ByteSource | string,
  line: number,
  reason: QuarantineReason,
  raw: string
): Quarantined => ({ file: typeof source === "string" ? source : source.label, line, reason, raw: detach(excerpt(raw, 500)) })

/**
 * A copy of `s` that does not keep its parent alive. V8 represents a substring as a view of the string it was cut
 * from (a "sliced string"): a quarantine row cut from a 64 KiB chunk would pin the whole chunk until the table is
 * closed — thousands of chunks for a noisy corpus. Concatenating then slicing forces a flat copy.
 */
export const detach = (s: string): string => (" " + s).slice(1)

/**
 * C0 control characters other than TAB (NUL, ESC, form feed, a CR inside a line, ...): no sentence holds them, so
 * a row that does is binary debris (crawled PDFs and images, broken encodings), quarantined as `control-char`.
 */
export const CONTROL_CHAR = /[\x00-\x08\x0a-\x1f]/

/**
 * Checks both sides of a candidate pair; returns the reason it is bad, if any: an empty side (nothing but
 * whitespace), then a C0 control character in either side, or anywhere in `row` when given (a TSV line: its
 * other columns too).
 */
export const checkSides = (english: string, foreign: string, row?: string): QuarantineReason | undefined =>
  english.trim() === ""
    ? "empty-english"
    : foreign.trim() === ""
    ? "empty-foreign"
    : row !== undefined
    ? (CONTROL_CHAR.test(row) ? "control-char" : undefined)
    : CONTROL_CHAR.test(english) || CONTROL_CHAR.test(foreign)
    ? "control-char"
    : undefined
