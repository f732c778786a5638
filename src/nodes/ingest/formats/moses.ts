/**
 * OPUS "Moses" corpora: two line-aligned files, one sentence a line (`X.en` / `X.km`), plain, compressed, or two
 * entries of one zip. Line k of one file is the translation of line k of the other. When the files have different
 * line counts, the extra lines of the longer one are quarantined (`extra-line-english` / `extra-line-foreign`).
 */
import type { ByteSource } from "../bytes.ts"
import { alignedLines, lineBatches } from "../lines.ts"
import { checkSides, CONTROL_CHAR, quarantine, type RecordBatch, rawPair } from "./records.ts"

export async function* readMoses(english: ByteSource, foreign: ByteSource): AsyncGenerator<RecordBatch> {
  for await (const ab of alignedLines(lineBatches(english), lineBatches(foreign))) {
    const batch: RecordBatch = { pairs: [], bad: [] }
    for (let k = 0; k < ab.a.length; k++) {
      const line = ab.firstLine + k
      const en = ab.a[k]
      const fo = ab.b[k]
      if (fo === undefined) {
        batch.bad.push(quarantine(english, line, "extra-line-english", en ?? ""))
        continue
      }
      if (en === undefined) {
        batch.bad.push(quarantine(foreign, line, "extra-line-foreign", fo))
        continue
      }
      const faultEn = ab.faultsA?.get(k)
      if (faultEn !== undefined) {
        batch.bad.push(quarantine(english, line, faultEn, en))
        continue
      }
      const faultFo = ab.faultsB?.get(k)
      if (faultFo !== undefined) {
        batch.bad.push(quarantine(foreign, line, faultFo, fo))
        continue
      }
      const empty = checkSides(en, fo)
      if (empty !== undefined) {
        const side = empty === "empty-english" || (empty === "control-char" && CONTROL_CHAR.test(en)) ? english : foreign
        batch.bad.push(quarantine(side, line, empty, `${en}\t${fo}`))
        continue
      }
      batch.pairs.push(rawPair(en, fo, `${english.label}:${line}`, null))
    }
    yield batch
  }
}
