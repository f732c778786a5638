/**
 * Row shapes of the data stages' tables, each declared once (`tableShape`): the row Schema and type, the column
 * list that lands on disk and the reader of rows read back all come from the one declaration.
 */
import { float64, int32, nullable, tableShape, utf8 } from "../formats/parquet/shape.ts"

/** A sentence pair: `pairs`, `clean`, `train`, `holdout`, `eval`. */
export const PairTable = tableShape({
  /** Position in the ingested corpus (0-based, in file order); stable through clean and split. */
  id: int32,
  english: utf8,
  foreign: utf8,
  /** Where the pair came from: `file:line` (`archive.zip!entry:line`; `file.parquet:row`). */
  origin: utf8,
  /** A quality score from the corpus (WMT20: LASER), or null. */
  score: nullable(float64)
})
export const PairRow = PairTable.schema
export type PairRow = typeof PairRow.Type
export const PairColumns = PairTable.columns
/** A pair read back from a table, checked cell by cell; a string describing the problem when a cell is wrong. */
export const asPairRow = PairTable.read

/** A corpus row that could not be used as it is: `ingest.quarantine`. */
export const QuarantineTable = tableShape({
  /** File (base name; `archive.zip!entry` inside an archive). */
  file: utf8,
  /** 1-based line (TMX: the line where the unit starts; Parquet: the row number). */
  line: int32,
  /** A short code: `wrong-column-count`, `invalid-utf8`, `empty-foreign`, `tmx-missing-side`, ... */
  reason: utf8,
  /** The raw text, at most 500 code points. */
  raw: utf8
})
export const QuarantineRow = QuarantineTable.schema
export type QuarantineRow = typeof QuarantineRow.Type
export const QuarantineColumns = QuarantineTable.columns

/** A pair removed by the clean stage, with the reason: `clean.rejects`. Texts are after normalisation. */
export const RejectTable = tableShape({
  id: int32,
  /** `empty-english`, `empty-foreign`, `script-share`, `duplicate`. */
  reason: utf8,
  english: utf8,
  foreign: utf8
})
export const RejectRow = RejectTable.schema
export type RejectRow = typeof RejectRow.Type
export const RejectColumns = RejectTable.columns

/** Per-pair token counts with the Llama-3 tokenizer (no BOS): `tokstats.table`. Characters are code points. */
export const TokstatsTable = tableShape({
  id: int32,
  englishTokens: int32,
  foreignTokens: int32,
  englishChars: int32,
  foreignChars: int32
})
export const TokstatsRow = TokstatsTable.schema
export type TokstatsRow = typeof TokstatsRow.Type
export const TokstatsColumns = TokstatsTable.columns

/** A named test set's pair, as the `testSets` stage evaluated it (normalised, cut): `testSets.pairs`. Row i of
 *  `zF.testSets` / `hE.testSets` is this table's row i; a set's rows are consecutive, in file order. */
export const TestSetPairTable = tableShape({
  /** The test set's name (`eval.testSets[].name`). */
  set: utf8,
  /** Position within its set (0-based). */
  row: int32,
  english: utf8,
  foreign: utf8
})
export const TestSetPairRow = TestSetPairTable.schema
export type TestSetPairRow = typeof TestSetPairRow.Type
export const TestSetPairColumns = TestSetPairTable.columns
