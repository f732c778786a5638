/** A parallel corpus as llink reads it: the config shape of `corpus` (what `ingest` reads) and of each named test set (`eval.testSets`); `--set corpus.path=…` swaps the corpus. */
import { Schema } from "effect"
import { Count, crossCheck, dflt } from "../schemas/fields.ts"

export const CorpusFormat = Schema.Literals(["auto", "tsv", "wmt20", "moses", "tmx", "parquet", "jsonl"])
export type CorpusFormat = typeof CorpusFormat.Type

export const CorpusConfig = Schema.Struct({
  /** Path of the corpus file (or the English side of a Moses pair, or a zip). Relative paths resolve against the
   *  config file's folder. */
  path: dflt(Schema.String, "datasets/km-en-sample/km-en.sample.tsv"),
  format: dflt(CorpusFormat, "auto"),
  /** Foreign side of a Moses pair when `path` is the English side (otherwise derived from the language codes:
   *  `X.en` → `X.km`; the two swap when `path` ends in the foreign code). */
  pairPath: Schema.optionalKey(Schema.String),
  /** WMT20: LASER score file, one score a line (kept as the `score` column). */
  scorePath: Schema.optionalKey(Schema.String),
  /** Language codes: `english` is the decoder's language, `foreign` the one injected as a modality. */
  englishLang: dflt(Schema.String, "en"),
  foreignLang: dflt(Schema.String, "km"),
  /** For two-column TSV/Parquet: which column (0-based) holds the English side. ParaCrawl bonus: en first. */
  englishColumn: dflt(Count, 0),
  /** Column (0-based) of the foreign side; default: the other of columns 0 and 1. */
  foreignColumn: Schema.optionalKey(Count),
  /** TSV: the exact number of tab-separated fields of a good line (other lines are quarantined). */
  columns: dflt(Schema.Int.check(Schema.isGreaterThanOrEqualTo(2, { message: "Expected a whole number ≥ 2" })), 2),
  /** TSV: the first line is a header to skip. */
  header: dflt(Schema.Boolean, false),
  /** Moses: accept two files with different line counts, pairing lines by position and quarantining the extra
   *  lines of the longer one (`extra-line-english` / `extra-line-foreign`). Off by default: a missing or extra
   *  line shifts every later pair, so a count mismatch stops the stage naming both files and both counts. The
   *  report says when a run accepted one. */
  allowLineCountMismatch: dflt(Schema.Boolean, false)
}).check(
  crossCheck("englishColumn", (c) =>
    c.englishColumn < c.columns ? undefined : `must be < columns (${c.columns}), got ${c.englishColumn}`),
  crossCheck("foreignColumn", (c) => {
    const f = c.foreignColumn ?? (c.englishColumn === 0 ? 1 : 0)
    if (f >= c.columns) return `must be < columns (${c.columns}), got ${f}`
    return f === c.englishColumn ? `must differ from englishColumn (${c.englishColumn}), got ${f}` : undefined
  })
)

export type CorpusParams = typeof CorpusConfig.Type
