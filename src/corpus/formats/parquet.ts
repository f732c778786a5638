/**
 * Parquet corpora (OPUS / Hugging Face exports), read one row group at a time with parquet-wasm from a file-backed
 * Blob (`fs.openAsBlob`), so only one row group is ever in memory. This reader exists beside the pipeline's own
 * table reader because corpus files need what artifact tables never hold: a `translation { en, km }` struct column.
 *
 * Columns are chosen, in order of preference, from: a struct column `translation` with fields named by the language
 * codes; columns `english` and `foreign`; columns named by the language codes (`en`, `km`); otherwise the string
 * columns at `englishColumn` / `foreignColumn` (counting string columns only). A numeric `score` column is kept.
 * The "line" of a Parquet row is its 1-based row number in the file.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { type Field, tableFromIPC, type Vector } from "apache-arrow"
import * as parquet from "parquet-wasm/node"
import { InputFileError } from "../../pipeline/errors.ts"
import { describeError } from "../../errors/describe.ts"
import { sameLang } from "../../text/unicode.ts"
import { checkSides, quarantine, type RecordBatch, type ReaderOptions, rawPair } from "./records.ts"

type Layout =
  | { readonly kind: "struct"; readonly column: string; readonly english: string; readonly foreign: string; readonly score?: string }
  | { readonly kind: "columns"; readonly english: string; readonly foreign: string; readonly score?: string }

const isString = (f: Field): boolean => {
  const t = String(f.type)
  return t === "Utf8" || t === "LargeUtf8" || /^Dictionary<.*, (Large)?Utf8>$/.test(t)
}
const isNumber = (f: Field): boolean => /^(Float|Int|Uint)/.test(String(f.type))

/** Decides which columns hold the two sides, from the file's Arrow schema. */
export const chooseLayout = (fields: ReadonlyArray<Field>, options: ReaderOptions): Layout | string => {
  const scoreField = fields.find((f) => f.name === "score" && isNumber(f))
  const score = scoreField === undefined ? {} : { score: scoreField.name }
  const translation = fields.find((f) => f.name === "translation" && String(f.type).startsWith("Struct"))
  if (translation !== undefined) {
    const children: ReadonlyArray<Field> = translation.type.children ?? []
    const en = children.find((c) => sameLang(c.name, options.englishLang))
    const fo = children.find((c) => sameLang(c.name, options.foreignLang))
    if (en === undefined || fo === undefined) {
      return `struct column "translation" has fields [${children.map((c) => c.name).join(", ")}], ` +
        `none named "${en === undefined ? options.englishLang : options.foreignLang}"`
    }
    return { kind: "struct", column: "translation", english: en.name, foreign: fo.name, ...score }
  }
  const strings = fields.filter(isString)
  const named = (name: string) => strings.find((f) => f.name === name)
  const english = named("english")
  const foreign = named("foreign")
  if (english !== undefined && foreign !== undefined) {
    return { kind: "columns", english: english.name, foreign: foreign.name, ...score }
  }
  const byEn = strings.find((f) => sameLang(f.name, options.englishLang))
  const byFo = strings.find((f) => sameLang(f.name, options.foreignLang))
  if (byEn !== undefined && byFo !== undefined) return { kind: "columns", english: byEn.name, foreign: byFo.name, ...score }
  const e = strings[options.englishColumn]
  const f = strings[options.foreignColumn]
  if (e !== undefined && f !== undefined && e !== f) return { kind: "columns", english: e.name, foreign: f.name, ...score }
  return `no "translation" struct and no two string columns to use (columns: ${
    fields.map((x) => `${x.name}: ${String(x.type)}`).join(", ")
  })`
}

const openFile = async (file: string): Promise<parquet.ParquetFile> => {
  try {
    return await parquet.ParquetFile.fromFile(await fs.openAsBlob(file))
  } catch (cause) {
    throw new InputFileError({ file, message: `unreadable Parquet file ${path.basename(file)}: ${describeError(cause)}` })
  }
}

export async function* readParquet(file: string, options: ReaderOptions): AsyncGenerator<RecordBatch> {
  const label = path.basename(file)
  const pf = await openFile(file)
  try {
    let fields: ReadonlyArray<Field>
    try {
      fields = tableFromIPC(pf.schema().intoIPCStream()).schema.fields
    } catch (cause) {
      throw new InputFileError({ file, message: `${label}: cannot read the Parquet schema: ${describeError(cause)}` })
    }
    const layout = chooseLayout(fields, options)
    if (typeof layout === "string") throw new InputFileError({ file, message: `${label}: ${layout}` })
    const columns = layout.kind === "struct" ? [layout.column] : [layout.english, layout.foreign]
    if (layout.score !== undefined) columns.push(layout.score)
    const groups = pf.metadata().numRowGroups()
    let row = 0
    for (let g = 0; g < groups; g++) {
      let en: Vector | null
      let fo: Vector | null
      let sc: Vector | null = null
      try {
        const wasmTable = await pf.read({ rowGroups: [g], columns })
        const table = tableFromIPC(wasmTable.intoIPCStream())
        if (layout.kind === "struct") {
          const struct = table.getChild(layout.column)
          en = struct?.getChild(layout.english) ?? null
          fo = struct?.getChild(layout.foreign) ?? null
        } else {
          en = table.getChild(layout.english)
          fo = table.getChild(layout.foreign)
        }
        if (layout.score !== undefined) sc = table.getChild(layout.score)
      } catch (cause) {
        throw new InputFileError({
          file,
          message: `${label}: cannot read row group ${g + 1} of ${groups} (rows from ${row + 1}): ${describeError(cause)}`,
          line: row + 1
        })
      }
      if (en === null || fo === null) {
        throw new InputFileError({ file, message: `${label}: row group ${g + 1} lacks the chosen columns`, line: row + 1 })
      }
      const batch: RecordBatch = { pairs: [], bad: [] }
      for (let r = 0; r < en.length; r++) {
        const line = row + r + 1
        const e: unknown = en.get(r)
        const f: unknown = fo.get(r)
        if (typeof e !== "string" || typeof f !== "string") {
          batch.bad.push(quarantine(label, line, "missing-field", `${String(e)}\t${String(f)}`))
          continue
        }
        const empty = checkSides(e, f)
        if (empty !== undefined) {
          batch.bad.push(quarantine(label, line, empty, `${e}\t${f}`))
          continue
        }
        const s: unknown = sc?.get(r)
        const score = typeof s === "number" && Number.isFinite(s) ? s : null
        batch.pairs.push(rawPair(e, f, `${label}:${line}`, score))
      }
      row += en.length
      yield batch
    }
  } finally {
    pf.free()
  }
}
