/**
 * OPUS "Moses" corpora: two line-aligned files, one sentence a line (`X.en` / `X.km`), plain, compressed, or two
 * entries of one zip. Line k of one file is the translation of line k of the other.
 *
 * Two files with different line counts are not aligned (a missing or extra line shifts every later pair), so the
 * reader fails naming both files and both counts, after reading both to the end. With `allowLineCountMismatch`
 * the lines are paired by position, the extra lines of the longer file are quarantined (`extra-line-english` /
 * `extra-line-foreign`), and the last batch carries both counts (`lineCounts`) for the metrics and the report.
 */
import { InputFileError } from "../../pipeline/errors.ts"
import type { ByteSource } from "../bytes.ts"
import { alignedLines, lineBatches } from "../lines.ts"
import { checkSides, CONTROL_CHAR, quarantine, type ReaderOptions, type RecordBatch, rawPair } from "./records.ts"

const lines = (n: number) => `${n.toLocaleString("en-US")} line${n === 1 ? "" : "s"}`

export async function* readMoses(
  english: ByteSource,
  foreign: ByteSource,
  options: Pick<ReaderOptions, "allowLineCountMismatch">
): AsyncGenerator<RecordBatch> {
  let englishLines = 0
  let foreignLines = 0
  for await (const ab of alignedLines(lineBatches(english), lineBatches(foreign))) {
    const batch: RecordBatch = { pairs: [], bad: [] }
    for (let k = 0; k < ab.a.length; k++) {
      const line = ab.firstLine + k
      const en = ab.a[k]
      const fo = ab.b[k]
      if (en !== undefined) englishLines = line
      if (fo !== undefined) foreignLines = line
      if (fo === undefined) {
        if (options.allowLineCountMismatch) batch.bad.push(quarantine(english, line, "extra-line-english", en ?? ""))
        continue
      }
      if (en === undefined) {
        if (options.allowLineCountMismatch) batch.bad.push(quarantine(foreign, line, "extra-line-foreign", fo))
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
  if (englishLines === foreignLines) return
  if (!options.allowLineCountMismatch) {
    throw new InputFileError({
      file: english.file,
      message:
        `the Moses files are not aligned: ${english.label} (${english.file}) has ${lines(englishLines)}, ` +
        `${foreign.label} (${foreign.file}) has ${lines(foreignLines)}. A missing or extra line shifts every later ` +
        `pair; fix the files, or set corpus.allowLineCountMismatch to true to pair the lines by position and ` +
        `quarantine the ${lines(Math.abs(englishLines - foreignLines))} the longer file has over the other`
    })
  }
  yield {
    pairs: [],
    bad: [],
    lineCounts: { english: { file: english.label, lines: englishLines }, foreign: { file: foreign.label, lines: foreignLines } }
  }
}
