/**
 * The TSV reader on bytes: the same pairs and quarantine rows as `readTsv` (tsv.ts), without decoding the corpus
 * into strings. A good line's two fields are handed on as byte ranges of the chunk, which the `pairs` table
 * writer copies straight into its pages (`TableWriter.writeColumns`); only quarantined lines are decoded.
 *
 * Why: on a 1M-pair ParaCrawl-shaped file, decoding every line to UTF-16, slicing, and writing the strings back as
 * UTF-8 was most of ingest's time and garbage. Here a 1 MiB chunk is checked as a whole (valid UTF-8 with
 * `buffer.isUtf8`, no U+FFFD bytes), lines and tabs are found with `indexOf`, and one pass over each line's bytes
 * looks for C0 control characters.
 *
 * Same decisions as the string reader, in the same order: a UTF-8 BOM at the start of the file is dropped; CRLF
 * loses its CR; a header line (option) is skipped before anything else; then `invalid-utf8` / `replacement-char`;
 * then the field count (`blank-line` for an empty line, else `wrong-column-count`); then `empty-english` /
 * `empty-foreign` (nothing but JavaScript `trim` whitespace); then `control-char` (a C0 control other than TAB
 * anywhere in the line).
 */
import { isUtf8 } from "node:buffer"
import type { ByteSource } from "../bytes.ts"
import { quarantine, type Quarantined, type ReaderOptions } from "./records.ts"

/** The good pairs of one chunk as byte ranges of `bytes`, and its quarantined lines. */
export interface TsvColumns {
  readonly bytes: Buffer
  readonly count: number
  readonly englishStart: Int32Array
  readonly englishEnd: Int32Array
  readonly foreignStart: Int32Array
  readonly foreignEnd: Int32Array
  /** 1-based line number of each pair (its `origin` is `label:line`). */
  readonly lines: Int32Array
  readonly bad: Array<Quarantined>
}

const CHUNK = 1 << 20
const lenient = new TextDecoder("utf-8", { ignoreBOM: true })
const REPLACEMENT = Buffer.from([0xef, 0xbf, 0xbd])

/** Whether `buf[s, e)` (valid UTF-8) is empty after JavaScript's `String.prototype.trim`. */
const isBlank = (buf: Buffer, s: number, e: number): boolean => {
  let i = s
  while (i < e) {
    const b = buf[i]
    if (b === 0x20 || (b >= 0x09 && b <= 0x0d)) {
      i++
      continue
    }
    if (b < 0x80) return false
    let cp: number
    let len: number
    if (b < 0xe0) {
      cp = ((b & 0x1f) << 6) | (buf[i + 1] & 0x3f)
      len = 2
    } else if (b < 0xf0) {
      cp = ((b & 0x0f) << 12) | ((buf[i + 1] & 0x3f) << 6) | (buf[i + 2] & 0x3f)
      len = 3
    } else return false // nothing above U+FFFF is whitespace
    const ws = cp === 0xa0 || cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 ||
      cp === 0x202f || cp === 0x205f || cp === 0x3000 || cp === 0xfeff
    if (!ws) return false
    i += len
  }
  return true
}

/** Growable columns of one chunk's pairs. */
class Pairs {
  count = 0
  englishStart: Int32Array
  englishEnd: Int32Array
  foreignStart: Int32Array
  foreignEnd: Int32Array
  lines: Int32Array
  constructor(capacity: number) {
    this.englishStart = new Int32Array(capacity)
    this.englishEnd = new Int32Array(capacity)
    this.foreignStart = new Int32Array(capacity)
    this.foreignEnd = new Int32Array(capacity)
    this.lines = new Int32Array(capacity)
  }
  push(es: number, ee: number, fs: number, fe: number, line: number): void {
    if (this.count === this.lines.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2)
        b.set(a)
        return b
      }
      this.englishStart = grow(this.englishStart)
      this.englishEnd = grow(this.englishEnd)
      this.foreignStart = grow(this.foreignStart)
      this.foreignEnd = grow(this.foreignEnd)
      this.lines = grow(this.lines)
    }
    const k = this.count++
    this.englishStart[k] = es
    this.englishEnd[k] = ee
    this.foreignStart[k] = fs
    this.foreignEnd[k] = fe
    this.lines[k] = line
  }
}

/** Parses the whole lines in `buf[start, end)` (each ends at a LF, the last one at `end`) into `pairs`. */
const parseChunk = (
  source: ByteSource,
  options: ReaderOptions,
  buf: Buffer,
  start: number,
  end: number,
  firstLine: number,
  pairs: Pairs
): { readonly batch: TsvColumns; readonly lines: number } => {
  // Faults are possible only where the region is not valid UTF-8 or holds U+FFFD bytes.
  const region = buf.subarray(start, end)
  const checkFaults = !isUtf8(region) || region.indexOf(REPLACEMENT) >= 0
  pairs.count = 0
  const bad: Array<Quarantined> = []
  const fields = options.columns
  const enCol = options.englishColumn
  const foCol = options.foreignColumn
  const tabs = new Int32Array(fields + 1)
  let line = firstLine
  let p = start
  while (p <= end) {
    let nl = buf.indexOf(10, p)
    if (nl < 0 || nl > end) nl = end
    let lineEnd = nl
    if (lineEnd > p && buf[lineEnd - 1] === 13) lineEnd--
    const thisLine = line++
    const next = nl + 1
    if (options.header && thisLine === 1) {
      p = next
      if (nl >= end) break
      continue
    }
    const text = () => lenient.decode(buf.subarray(p, lineEnd))
    if (checkFaults) {
      const bytes = buf.subarray(p, nl)
      const fault = !isUtf8(bytes) ? "invalid-utf8" : bytes.indexOf(REPLACEMENT) >= 0 ? "replacement-char" : undefined
      if (fault !== undefined) {
        bad.push(quarantine(source, thisLine, fault, text()))
        p = next
        if (nl >= end) break
        continue
      }
    }
    // one pass: the tabs (up to one more than expected) and any other C0 control character
    let nTabs = 0
    let control = false
    for (let i = p; i < lineEnd; i++) {
      const b = buf[i]
      if (b < 0x20) {
        if (b === 9) {
          if (nTabs < fields) tabs[nTabs] = i
          nTabs++
        } else control = true
      }
    }
    if (nTabs !== fields - 1) {
      bad.push(quarantine(source, thisLine, lineEnd === p ? "blank-line" : "wrong-column-count", text()))
    } else {
      const fieldStart = (f: number) => (f === 0 ? p : tabs[f - 1] + 1)
      const fieldEnd = (f: number) => (f === fields - 1 ? lineEnd : tabs[f])
      const es = fieldStart(enCol)
      const ee = fieldEnd(enCol)
      const fs = fieldStart(foCol)
      const fe = fieldEnd(foCol)
      const reason = isBlank(buf, es, ee)
        ? "empty-english"
        : isBlank(buf, fs, fe)
        ? "empty-foreign"
        : control
        ? "control-char"
        : undefined
      if (reason !== undefined) bad.push(quarantine(source, thisLine, reason, text()))
      else pairs.push(es, ee, fs, fe, thisLine)
    }
    p = next
    if (nl >= end) break
  }
  const batch: TsvColumns = {
    bytes: buf.subarray(0, end), // whole lines only: a character cut at the chunk's end stays out

    count: pairs.count,
    englishStart: pairs.englishStart,
    englishEnd: pairs.englishEnd,
    foreignStart: pairs.foreignStart,
    foreignEnd: pairs.foreignEnd,
    lines: pairs.lines,
    bad
  }
  return { batch, lines: line - firstLine }
}

/**
 * Reads a TSV corpus (any compression) as batches of byte-range pairs, one per ~1 MiB chunk. A batch's buffers
 * are reused for the next one: each is valid until the next batch is asked for (the ingest stage writes it
 * before pulling on).
 */
export async function* readTsvColumns(source: ByteSource, options: ReaderOptions): AsyncGenerator<TsvColumns> {
  const pairs = new Pairs(1 << 14)
  let work = Buffer.allocUnsafeSlow(2 * CHUNK)
  let have = 0 // bytes in `work`: the carried start of a line, then the new chunk
  let line = 1
  let first = true
  const chunks = source.openTransient?.(CHUNK) ?? source.open(CHUNK)
  const bom = (buf: Buffer, len: number) => (len >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0)
  for await (const chunk of chunks) {
    if (have + chunk.length > work.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(2 * work.length, have + chunk.length))
      work.copy(bigger, 0, 0, have)
      work = bigger
    }
    chunk.copy(work, have)
    have += chunk.length
    const lastNl = work.lastIndexOf(10, have - 1)
    if (lastNl < 0) continue
    const start = first ? bom(work, have) : 0
    first = false
    const { batch, lines } = parseChunk(source, options, work, start, lastNl, line, pairs)
    line += lines
    yield batch
    // the rest of the last line goes to the front for the next chunk
    work.copy(work, 0, lastNl + 1, have)
    have -= lastNl + 1
  }
  if (have > 0) {
    const start = first ? bom(work, have) : 0
    yield parseChunk(source, options, work, start, have, line, pairs).batch
  }
}
