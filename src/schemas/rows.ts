/**
 * Row shapes of the data stages' tables: a Schema per row type (to decode rows read back from Parquet) and the
 * matching column list (to write them). Keep the two in step: the column list is what lands on disk.
 */
import { Schema } from "effect"
import type { Column, Row } from "../formats/parquet/table.ts"

/** A sentence pair: `pairs`, `clean`, `train`, `holdout`, `eval`. */
export const PairRow = Schema.Struct({
  /** Position in the ingested corpus (0-based, in file order); stable through clean and split. */
  id: Schema.Number,
  english: Schema.String,
  foreign: Schema.String,
  /** Where the pair came from: `file:line` (`archive.zip!entry:line`; `file.parquet:row`). */
  origin: Schema.String,
  /** A quality score from the corpus (WMT20: LASER), or null. */
  score: Schema.NullOr(Schema.Number)
})
export type PairRow = typeof PairRow.Type

/**
 * A pair read back from a table, checked cell by cell (cheaper than a Schema decode on the million-row hot path);
 * a string describing the problem when a cell has the wrong type.
 */
export const asPairRow = (row: Row): PairRow | string => {
  const { id, english, foreign, origin, score } = row
  if (typeof id !== "number") return `column "id" should be a number, got ${JSON.stringify(id)}`
  if (typeof english !== "string") return `row id ${id}: column "english" should be a string, got ${JSON.stringify(english)}`
  if (typeof foreign !== "string") return `row id ${id}: column "foreign" should be a string, got ${JSON.stringify(foreign)}`
  if (typeof origin !== "string") return `row id ${id}: column "origin" should be a string, got ${JSON.stringify(origin)}`
  if (score !== null && score !== undefined && typeof score !== "number") {
    return `row id ${id}: column "score" should be a number or null, got ${JSON.stringify(score)}`
  }
  return { id, english, foreign, origin, score: score ?? null }
}

export const PairColumns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "english", type: "utf8" },
  { name: "foreign", type: "utf8" },
  { name: "origin", type: "utf8" },
  { name: "score", type: "float64", nullable: true }
]

/** A corpus row that could not be used as it is: `ingest.quarantine`. */
export const QuarantineRow = Schema.Struct({
  /** File (base name; `archive.zip!entry` inside an archive). */
  file: Schema.String,
  /** 1-based line (TMX: the line where the unit starts; Parquet: the row number). */
  line: Schema.Number,
  /** A short code: `wrong-column-count`, `invalid-utf8`, `empty-foreign`, `tmx-missing-side`, ... */
  reason: Schema.String,
  /** The raw text, at most 500 code points. */
  raw: Schema.String
})
export type QuarantineRow = typeof QuarantineRow.Type

export const QuarantineColumns: ReadonlyArray<Column> = [
  { name: "file", type: "utf8" },
  { name: "line", type: "int32" },
  { name: "reason", type: "utf8" },
  { name: "raw", type: "utf8" }
]

/** A pair removed by the clean stage, with the reason: `clean.rejects`. Texts are after normalisation. */
export const RejectRow = Schema.Struct({
  id: Schema.Number,
  /** `empty-english`, `empty-foreign`, `script-share`, `duplicate`. */
  reason: Schema.String,
  english: Schema.String,
  foreign: Schema.String
})
export type RejectRow = typeof RejectRow.Type

export const RejectColumns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "reason", type: "utf8" },
  { name: "english", type: "utf8" },
  { name: "foreign", type: "utf8" }
]

/** Per-pair token counts with the Llama-3 tokenizer (no BOS): `tokstats.table`. Characters are code points. */
export const TokstatsRow = Schema.Struct({
  id: Schema.Number,
  englishTokens: Schema.Number,
  foreignTokens: Schema.Number,
  englishChars: Schema.Number,
  foreignChars: Schema.Number
})
export type TokstatsRow = typeof TokstatsRow.Type

export const TokstatsColumns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "englishTokens", type: "int32" },
  { name: "foreignTokens", type: "int32" },
  { name: "englishChars", type: "int32" },
  { name: "foreignChars", type: "int32" }
]
