/**
 * Tab-separated corpora: ParaCrawl's "bonus" release (`en<TAB>km`, plain or `.gz`) and the WMT20 filtering release
 * (`.xz` TSV plus an optional LASER score file, one score a line, read in lockstep and kept as `score`).
 *
 * A line must have exactly `columns` fields (2 unless configured); `englishColumn`/`foreignColumn` pick the sides.
 * Bad lines (wrong field count, an empty side, invalid UTF-8, a blank line) are quarantined, never dropped. With a
 * score file, a pair whose score line is missing or not a number is quarantined, and so is every extra score line.
 */
import type { ByteSource } from "../bytes.ts"
import { alignedLines, type LineBatch, lineBatches, type LineFault } from "../lines.ts"
import { checkSides, quarantine, type RawPair, type Quarantined, type ReaderOptions, type RecordBatch, rawPair } from "./records.ts"

/** Parses one TSV line into a pair or a quarantine row. */
const parseLine = (
  source: ByteSource,
  text: string,
  line: number,
  fault: LineFault | undefined,
  options: ReaderOptions,
  score: number | null
): RawPair | Quarantined => {
  if (fault !== undefined) return quarantine(source, line, fault, text)
  let english: string
  let foreign: string
  if (options.columns === 2 && options.englishColumn + options.foreignColumn === 1) {
    // hot path: exactly one tab
    const tab = text.indexOf("\t")
    if (tab < 0 || text.indexOf("\t", tab + 1) >= 0) {
      return quarantine(source, line, text.length === 0 ? "blank-line" : "wrong-column-count", text)
    }
    const first = text.slice(0, tab)
    const second = text.slice(tab + 1)
    english = options.englishColumn === 0 ? first : second
    foreign = options.englishColumn === 0 ? second : first
  } else {
    const fields = text.split("\t")
    if (fields.length !== options.columns) {
      return quarantine(source, line, text.length === 0 ? "blank-line" : "wrong-column-count", text)
    }
    english = fields[options.englishColumn]
    foreign = fields[options.foreignColumn]
  }
  const bad = checkSides(english, foreign, text)
  if (bad !== undefined) return quarantine(source, line, bad, text)
  return rawPair(english, foreign, `${source.label}:${line}`, score)
}

const push = (batch: RecordBatch, r: RawPair | Quarantined): void => {
  if ("origin" in r) batch.pairs.push(r)
  else batch.bad.push(r)
}

/** Reads a TSV corpus (any compression) as record batches. */
export async function* readTsv(source: ByteSource, options: ReaderOptions): AsyncGenerator<RecordBatch> {
  for await (const lb of lineBatches(source)) {
    const batch: RecordBatch = { pairs: [], bad: [] }
    const { lines, faults, firstLine } = lb
    for (let k = 0; k < lines.length; k++) {
      const line = firstLine + k
      if (options.header && line === 1) continue
      push(batch, parseLine(source, lines[k], line, faults?.get(k), options, null))
    }
    yield batch
  }
}

const parseScore = (s: string): number | undefined => {
  const t = s.trim()
  if (t === "") return undefined
  const v = Number(t)
  return Number.isFinite(v) ? v : undefined
}

/** Reads a TSV corpus with a score file aligned line by line (WMT20: LASER scores). */
export async function* readTsvWithScores(
  source: ByteSource,
  scores: ByteSource,
  options: ReaderOptions
): AsyncGenerator<RecordBatch> {
  const pairs: AsyncIterable<LineBatch> = lineBatches(source)
  for await (const ab of alignedLines(pairs, lineBatches(scores))) {
    const batch: RecordBatch = { pairs: [], bad: [] }
    for (let k = 0; k < ab.a.length; k++) {
      const line = ab.firstLine + k
      const text = ab.a[k]
      const scoreText = ab.b[k]
      if (text === undefined) {
        batch.bad.push(quarantine(scores, line, "score-extra", scoreText ?? ""))
        continue
      }
      if (options.header && line === 1) continue
      const parsed = parseLine(source, text, line, ab.faultsA?.get(k), options, null)
      if (!("origin" in parsed)) {
        batch.bad.push(parsed)
        continue
      }
      if (scoreText === undefined) {
        batch.bad.push(quarantine(source, line, "score-missing", text))
        continue
      }
      const score = ab.faultsB?.has(k) === true ? undefined : parseScore(scoreText)
      if (score === undefined) {
        batch.bad.push(quarantine(scores, line, "score-invalid", `${scoreText}\t${text}`))
        continue
      }
      batch.pairs.push(rawPair(parsed.english, parsed.foreign, parsed.origin, score))
    }
    yield batch
  }
}
