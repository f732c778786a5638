/**
 * Corpus resolution and reading: turns the `corpus` config section into a plan (which reader, which files or zip
 * entries) and the plan into a `Stream` of record batches.
 *
 * With `format: "auto"` the format is recognised from the file itself:
 * - magic bytes: `PAR1` → Parquet; `PK` → zip (holding a `.tmx` → TMX; `X.<en>` + `X.<km>` → Moses; one `.tsv` /
 *   `.txt` → TSV; one `.jsonl` → JSONL); gzip / xz are decompressed and the content examined;
 * - a Moses side: `pairPath` is set, or the name ends in a language code (`X.en`, `X.km.gz`) and the other side
 *   exists beside it;
 * - the name: `.tmx`, `.jsonl` / `.ndjson`, `.tsv` (before or after `.gz` / `.xz`);
 * - otherwise the first line: `<` → TMX, `{` → JSONL, a tab → TSV (WMT20 when a score file is configured or
 *   found beside it as `NAME.laser-score[.xz]`).
 *
 * Moses sides: `path` is the English side and `pairPath` the foreign one, unless `path` ends in the foreign
 * language code (or `pairPath` in the English one), in which case they swap.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { InputFileError } from "../pipeline/errors.ts"
import type { CorpusParams } from "./spec.ts"
import { type ByteSource, fileSource, readHead, sniffContainer, toInputFileError } from "./bytes.ts"
import { readJsonl } from "./formats/jsonl.ts"
import { readMoses } from "./formats/moses.ts"
import { readParquet } from "./formats/parquet.ts"
import type { ReaderOptions, RecordBatch } from "./formats/records.ts"
import { readTmx } from "./formats/tmx.ts"
import { readTsv, readTsvWithScores } from "./formats/tsv.ts"
import { readTsvColumns, type TsvColumns } from "./formats/tsvBytes.ts"
import { lineBatches } from "./lines.ts"
import { sameLang } from "../text/unicode.ts"
import { listZip, type ZipEntry, zipEntrySource } from "./zip.ts"

export type { CorpusParams }
export type ResolvedFormat = "tsv" | "wmt20" | "moses" | "tmx" | "parquet" | "jsonl"

export type CorpusPlan =
  | { readonly format: "tsv" | "wmt20"; readonly source: ByteSource; readonly scores: ByteSource | undefined }
  | { readonly format: "moses"; readonly english: ByteSource; readonly foreign: ByteSource }
  | { readonly format: "tmx" | "jsonl"; readonly source: ByteSource }
  | { readonly format: "parquet"; readonly file: string }

/** Reader options derived from the corpus parameters. */
export const readerOptions = (p: CorpusParams): ReaderOptions => ({
  englishLang: p.englishLang,
  foreignLang: p.foreignLang,
  englishColumn: p.englishColumn,
  foreignColumn: p.foreignColumn ?? (p.englishColumn === 0 ? 1 : 0),
  columns: p.columns,
  header: p.header,
  allowLineCountMismatch: p.allowLineCountMismatch
})

const COMPRESSION_EXT = /\.(gz|xz)$/i

/** `a/b/X.en.gz` → { stem: "a/b/X", ext: "en", compression: ".gz" }. */
const splitName = (file: string): { stem: string; ext: string; compression: string } => {
  const compression = COMPRESSION_EXT.exec(file)?.[0] ?? ""
  const bare = compression === "" ? file : file.slice(0, -compression.length)
  const ext = path.extname(bare)
  return { stem: ext === "" ? bare : bare.slice(0, -ext.length), ext: ext.slice(1), compression }
}

/** The other side of a Moses pair derived from the name (`X.en` → `X.km`), when it exists on disk. */
const derivedMosesPair = (file: string, p: CorpusParams): string | undefined => {
  const { stem, ext, compression } = splitName(file)
  if (ext === "") return undefined
  const other = sameLang(ext, p.englishLang) ? p.foreignLang : sameLang(ext, p.foreignLang) ? p.englishLang : undefined
  if (other === undefined) return undefined
  for (const c of new Set([compression, "", ".gz", ".xz"])) {
    const candidate = `${stem}.${other}${c}`
    if (candidate !== file && fs.existsSync(candidate)) return candidate
  }
  return undefined
}

/** A WMT20-style score file beside the corpus (`X.xz` → `X.laser-score.xz`), when it exists. */
const derivedScoreFile = (file: string): string | undefined => {
  const compression = COMPRESSION_EXT.exec(file)?.[0] ?? ""
  const bare = compression === "" ? file : file.slice(0, -compression.length)
  for (const c of new Set([compression, "", ".xz", ".gz"])) {
    const candidate = `${bare}.laser-score${c}`
    if (fs.existsSync(candidate)) return candidate
  }
  return undefined
}

const abs = (p: string): string => path.resolve(p)

/** Orders a Moses pair as [english, foreign]. */
const orderMoses = (first: string, second: string, p: CorpusParams): readonly [string, string] => {
  const a = splitName(first).ext
  const b = splitName(second).ext
  const swap = (a !== "" && sameLang(a, p.foreignLang)) || (b !== "" && sameLang(b, p.englishLang))
  return swap ? [second, first] : [first, second]
}

/**
 * The files whose content defines the corpus (for the cache key): the corpus file, the other Moses side and the
 * score file when configured or found beside it. Synchronous and cheap (names and `existsSync` only).
 */
export const corpusFiles = (p: CorpusParams): ReadonlyArray<string> => {
  const main = abs(p.path)
  const files = [main]
  const pair = p.pairPath !== undefined ? abs(p.pairPath) : p.format === "auto" || p.format === "moses" ? derivedMosesPair(main, p) : undefined
  if (pair !== undefined) files.push(pair)
  const score = p.scorePath !== undefined
    ? abs(p.scorePath)
    : p.format === "auto" || p.format === "wmt20"
    ? derivedScoreFile(main)
    : undefined
  if (score !== undefined) files.push(score)
  return files
}

/** Reads the first few KiB of a (possibly compressed) text source. */
const peekText = (source: ByteSource): Effect.Effect<string, InputFileError> =>
  Effect.tryPromise({
    try: async () => {
      const it = lineBatches(source)[Symbol.asyncIterator]()
      try {
        const first = await it.next()
        return first.done === true ? "" : first.value.lines.slice(0, 20).join("\n")
      } finally {
        await it.return?.(undefined)
      }
    },
    catch: (cause) => toInputFileError(source.file, cause, `cannot read ${path.basename(source.file)}`)
  })

const notFound = (file: string, what: string) =>
  new InputFileError({ file, message: `${what} not found: ${file} (relative paths resolve against the config file's folder)` })

const entryByExt = (entries: ReadonlyArray<ZipEntry>, test: (ext: string) => boolean): Array<ZipEntry> =>
  entries.filter((e) => test(splitName(e.name).ext.toLowerCase()))

const planZip = Effect.fn("corpus.planZip")(function*(file: string, p: CorpusParams) {
  const entries = (yield* listZip(file)).filter((e) => !/(^|\/)(readme|license|licence)[^/]*$/i.test(e.name))
  const label = path.basename(file)
  const want = p.format
  if (want === "auto" || want === "tmx") {
    const tmx = entryByExt(entries, (x) => x === "tmx")
    if (tmx.length > 0) return { format: "tmx", source: zipEntrySource(file, tmx[0]) } satisfies CorpusPlan
    if (want === "tmx") return yield* new InputFileError({ file, message: `${label} holds no .tmx entry (entries: ${names(entries)})` })
  }
  if (want === "auto" || want === "moses") {
    for (const en of entries) {
      const s = splitName(en.name)
      if (s.ext === "" || !sameLang(s.ext, p.englishLang)) continue
      const fo = entries.find((e) => {
        const t = splitName(e.name)
        return t.stem === s.stem && t.ext !== "" && sameLang(t.ext, p.foreignLang)
      })
      if (fo !== undefined) {
        return { format: "moses", english: zipEntrySource(file, en), foreign: zipEntrySource(file, fo) } satisfies CorpusPlan
      }
    }
    if (want === "moses") {
      return yield* new InputFileError({
        file,
        message: `${label} holds no Moses pair X.${p.englishLang} / X.${p.foreignLang} (entries: ${names(entries)})`
      })
    }
  }
  const jsonl = entryByExt(entries, (x) => x === "jsonl" || x === "ndjson")
  if ((want === "auto" || want === "jsonl") && jsonl.length === 1) {
    return { format: "jsonl", source: zipEntrySource(file, jsonl[0]) } satisfies CorpusPlan
  }
  const tsv = entryByExt(entries, (x) => x === "tsv" || x === "txt")
  const single = tsv.length === 1 ? tsv[0] : entries.length === 1 ? entries[0] : undefined
  if ((want === "auto" || want === "tsv" || want === "wmt20") && single !== undefined) {
    return { format: "tsv", source: zipEntrySource(file, single), scores: undefined } satisfies CorpusPlan
  }
  return yield* new InputFileError({
    file,
    message: `cannot find a ${want === "auto" ? "corpus" : want} inside ${label} (entries: ${names(entries)})`
  })
})

const names = (entries: ReadonlyArray<ZipEntry>): string =>
  entries.length === 0 ? "none" : entries.slice(0, 10).map((e) => e.name).join(", ") + (entries.length > 10 ? ", …" : "")

/** Resolves the corpus parameters to a reading plan, examining the file(s) as needed. */
export const resolveCorpus = Effect.fn("corpus.resolve")(function*(p: CorpusParams) {
  const main = abs(p.path)
  if (!fs.existsSync(main)) return yield* notFound(main, "corpus file")
  const container = sniffContainer(yield* readHead(main, 8))
  if (container === "parquet") {
    if (p.format !== "auto" && p.format !== "parquet") {
      return yield* new InputFileError({ file: main, message: `corpus.format is "${p.format}" but ${path.basename(main)} is a Parquet file` })
    }
    return { format: "parquet", file: main } satisfies CorpusPlan as CorpusPlan
  }
  if (p.format === "parquet") {
    return yield* new InputFileError({ file: main, message: `${path.basename(main)} is not a Parquet file (no PAR1 magic)` })
  }
  if (container === "zip") return (yield* planZip(main, p)) as CorpusPlan

  const source = yield* fileSource(main)
  const { ext } = splitName(main)
  const lowerExt = ext.toLowerCase()
  const moses = (): Effect.Effect<CorpusPlan, InputFileError> =>
    Effect.gen(function*() {
      const other = p.pairPath !== undefined ? abs(p.pairPath) : derivedMosesPair(main, p)
      if (other === undefined) {
        return yield* new InputFileError({
          file: main,
          message: `Moses corpus ${path.basename(main)} needs its other side: set corpus.pairPath, or name the files ` +
            `X.${p.englishLang} / X.${p.foreignLang}`
        })
      }
      if (!fs.existsSync(other)) return yield* notFound(other, "Moses pair file")
      const [en, fo] = orderMoses(main, other, p)
      return { format: "moses", english: yield* fileSource(en), foreign: yield* fileSource(fo) } satisfies CorpusPlan
    })
  const tsv = (format: "tsv" | "wmt20"): Effect.Effect<CorpusPlan, InputFileError> =>
    Effect.gen(function*() {
      const scoreFile = p.scorePath !== undefined ? abs(p.scorePath) : format === "wmt20" ? derivedScoreFile(main) : undefined
      if (scoreFile !== undefined && !fs.existsSync(scoreFile)) return yield* notFound(scoreFile, "score file")
      const scores = scoreFile === undefined ? undefined : yield* fileSource(scoreFile)
      return { format: scores === undefined ? "tsv" : "wmt20", source, scores } satisfies CorpusPlan
    })

  switch (p.format) {
    case "tsv":
    case "wmt20":
      return yield* tsv(p.format)
    case "moses":
      return yield* moses()
    case "tmx":
    case "jsonl":
      return { format: p.format, source } satisfies CorpusPlan as CorpusPlan
    case "auto":
      break
  }
  if (p.pairPath !== undefined || ((sameLang(lowerExt, p.englishLang) || sameLang(lowerExt, p.foreignLang)) && derivedMosesPair(main, p) !== undefined)) {
    return yield* moses()
  }
  if (lowerExt === "tmx") return { format: "tmx", source } satisfies CorpusPlan as CorpusPlan
  if (lowerExt === "jsonl" || lowerExt === "ndjson") return { format: "jsonl", source } satisfies CorpusPlan as CorpusPlan
  const head = (yield* peekText(source)).trimStart()
  if (head.startsWith("<")) return { format: "tmx", source } satisfies CorpusPlan as CorpusPlan
  if (head.startsWith("{")) return { format: "jsonl", source } satisfies CorpusPlan as CorpusPlan
  const firstLine = head.split("\n", 1)[0] ?? ""
  if (lowerExt === "tsv" || firstLine.includes("\t")) {
    return yield* tsv(p.scorePath !== undefined || derivedScoreFile(main) !== undefined ? "wmt20" : "tsv")
  }
  return yield* new InputFileError({
    file: main,
    line: 1,
    message: `cannot tell the format of ${path.basename(main)}: its first line has no tab, it is not TMX or JSONL, ` +
      `and no Moses pair file was found (set corpus.format, or corpus.pairPath for a Moses pair)`
  })
})

/** The files actually read by a plan (for messages and metrics). */
export const planFiles = (plan: CorpusPlan): ReadonlyArray<string> => {
  switch (plan.format) {
    case "tsv":
    case "wmt20":
      return plan.scores === undefined ? [plan.source.label] : [plan.source.label, plan.scores.label]
    case "moses":
      return [plan.english.label, plan.foreign.label]
    case "tmx":
    case "jsonl":
      return [plan.source.label]
    case "parquet":
      return [path.basename(plan.file)]
  }
}

const batches = (plan: CorpusPlan, options: ReaderOptions): AsyncIterable<RecordBatch> => {
  switch (plan.format) {
    case "tsv":
    case "wmt20":
      return plan.scores === undefined ? readTsv(plan.source, options) : readTsvWithScores(plan.source, plan.scores, options)
    case "moses":
      return readMoses(plan.english, plan.foreign, options)
    case "tmx":
      return readTmx(plan.source, options)
    case "jsonl":
      return readJsonl(plan.source, options)
    case "parquet":
      return readParquet(plan.file, options)
  }
}

const planMainFile = (plan: CorpusPlan): string =>
  plan.format === "parquet" ? plan.file : plan.format === "moses" ? plan.english.file : plan.source.file

/**
 * A plain TSV corpus (no score file) streamed on bytes: its pairs as byte ranges (see `formats/tsvBytes.ts`);
 * undefined for every other plan, which goes through `readCorpus`.
 */
export const readTsvCorpusColumns = (
  plan: CorpusPlan,
  options: ReaderOptions
): Stream.Stream<TsvColumns, InputFileError> | undefined => {
  if (plan.format !== "tsv" || plan.scores !== undefined) return undefined
  const source = plan.source
  return Stream.suspend(() => Stream.fromAsyncIterable(readTsvColumns(source, options), (cause) => toInputFileError(source.file, cause)))
}

/** Streams the corpus as record batches (pairs and quarantined rows, in file order). */
export const readCorpus = (plan: CorpusPlan, options: ReaderOptions): Stream.Stream<RecordBatch, InputFileError> =>
  Stream.suspend(() => Stream.fromAsyncIterable(batches(plan, options), (cause) => toInputFileError(planMainFile(plan), cause)))
