/** `ingest.summary`, written by `ingest`: what reading the corpus kept and set aside (read by the report). */
import { Schema } from "effect"

const FileLines = Schema.Struct({ file: Schema.String, lines: Schema.Number })

export const IngestSummaryDoc = Schema.Struct({
  format: Schema.String,
  /** The files read (base names; `archive.zip!entry` inside a zip). */
  files: Schema.Array(Schema.String),
  pairs: Schema.Number,
  quarantined: Schema.Number,
  /** Quarantined rows per reason (`wrong-column-count`, `control-char`, `invalid-utf8`, …). */
  byReason: Schema.Record(Schema.String, Schema.Number),
  /** Moses only, and only when `corpus.allowLineCountMismatch` accepted two files of different lengths. */
  lineCountMismatch: Schema.NullOr(Schema.Struct({ english: FileLines, foreign: FileLines }))
})
export type IngestSummaryDoc = typeof IngestSummaryDoc.Type
