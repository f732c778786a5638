/**
 * JSON Lines corpora, one object a line. The sides are read from, in order of preference:
 * `english` / `foreign` (the paper's own code), fields named by the language codes (`en` / `km`), or a
 * `translation: { en, km }` object (Hugging Face datasets). An optional numeric `score` is kept.
 * Blank lines, unparsable JSON and objects without two string sides are quarantined.
 */
import type { ByteSource } from "../bytes.ts"
import { lineBatches } from "../lines.ts"
import { primaryLang } from "../../text/unicode.ts"
import { checkSides, quarantine, type RecordBatch, type ReaderOptions, rawPair } from "./records.ts"

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Finds a field by language code, accepting `en`, `en-US`, `eng` spellings of the key. */
const byLang = (obj: Record<string, unknown>, lang: string): unknown => {
  if (lang in obj) return obj[lang]
  const want = primaryLang(lang)
  for (const key of Object.keys(obj)) if (primaryLang(key) === want) return obj[key]
  return undefined
}

export const pickSides = (
  obj: Record<string, unknown>,
  options: ReaderOptions
): { english: unknown; foreign: unknown } => {
  if ("english" in obj || "foreign" in obj) return { english: obj.english, foreign: obj.foreign }
  const translation = obj.translation
  if (isRecord(translation)) {
    return { english: byLang(translation, options.englishLang), foreign: byLang(translation, options.foreignLang) }
  }
  return { english: byLang(obj, options.englishLang), foreign: byLang(obj, options.foreignLang) }
}

export async function* readJsonl(source: ByteSource, options: ReaderOptions): AsyncGenerator<RecordBatch> {
  for await (const lb of lineBatches(source)) {
    const batch: RecordBatch = { pairs: [], bad: [] }
    for (let k = 0; k < lb.lines.length; k++) {
      const line = lb.firstLine + k
      const text = lb.lines[k]
      const fault = lb.faults?.get(k)
      if (fault !== undefined) {
        batch.bad.push(quarantine(source, line, fault, text))
        continue
      }
      if (text.trim() === "") {
        batch.bad.push(quarantine(source, line, "blank-line", text))
        continue
      }
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        // JSON.parse throws only a SyntaxError: the line is quarantined with that reason.
        batch.bad.push(quarantine(source, line, "invalid-json", text))
        continue
      }
      if (!isRecord(parsed)) {
        batch.bad.push(quarantine(source, line, "invalid-json", text))
        continue
      }
      const { english, foreign } = pickSides(parsed, options)
      if (typeof english !== "string" || typeof foreign !== "string") {
        batch.bad.push(quarantine(source, line, "missing-field", text))
        continue
      }
      const empty = checkSides(english, foreign)
      if (empty !== undefined) {
        batch.bad.push(quarantine(source, line, empty, text))
        continue
      }
      const score = typeof parsed.score === "number" && Number.isFinite(parsed.score) ? parsed.score : null
      batch.pairs.push(rawPair(english, foreign, `${source.label}:${line}`, score))
    }
    yield batch
  }
}
