/**
 * Line splitting for line-oriented corpora (TSV, Moses, JSONL, score files), tuned for the ingest hot path:
 * each 64 KiB chunk is cut at its last LF, decoded in one `TextDecoder.decode` call and split, so a million lines cost
 * a few hundred decode calls, not a million. Line numbers are 1-based; a UTF-8 BOM at the start is dropped; CRLF
 * endings lose their CR.
 *
 * Invalid UTF-8 is found without a fatal decode of every line: only a chunk whose decoded text contains U+FFFD is
 * re-examined line by line with a fatal `TextDecoder`, which tells a real encoding error (`invalid-utf8`) from a
 * literal U+FFFD already present in the source (`replacement-char`, a sign of earlier damage). Both are bad lines.
 */
import type { ByteSource } from "./bytes.ts"

export type LineFault = "invalid-utf8" | "replacement-char"

/** Consecutive lines of one source. */
export interface LineBatch {
  /** Line number of `lines[0]` (1-based). */
  readonly firstLine: number
  readonly lines: ReadonlyArray<string>
  /** Index in `lines` → what is wrong with that line's bytes; undefined when all lines decoded cleanly. */
  readonly faults: ReadonlyMap<number, LineFault> | undefined
}

const fatal = new TextDecoder("utf-8", { fatal: true })
/** Replacing decoder for the fast path (a little faster than Buffer#toString on Khmer); BOMs are handled here. */
const lenient = new TextDecoder("utf-8", { ignoreBOM: true })

const decodeBody = (body: Buffer, firstLine: number, dropBom: boolean): LineBatch => {
  let text = lenient.decode(body)
  if (dropBom && text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  let lines = text.split("\n")
  if (text.includes("\r")) lines = lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l))
  let faults: Map<number, LineFault> | undefined
  if (text.includes("\uFFFD")) {
    faults = new Map()
    let start = 0
    for (let k = 0; k < lines.length; k++) {
      let end = body.indexOf(10, start)
      if (end < 0) end = body.length
      if (lines[k].includes("\uFFFD")) {
        let fault: LineFault = "replacement-char"
        try {
          fatal.decode(body.subarray(start, end))
        } catch {
          // TextDecoder's only failure mode with { fatal: true }: the bytes are not valid UTF-8 (recorded here).
          fault = "invalid-utf8"
        }
        faults.set(k, fault)
      }
      start = end + 1
    }
  }
  return { firstLine, lines, faults }
}

/** Streams the lines of a byte source in batches (one batch per chunk read). */
export async function* lineBatches(source: ByteSource): AsyncGenerator<LineBatch> {
  let carry: Buffer | undefined
  let next = 1
  let first = true
  for await (const chunk of source.open()) {
    const buf = carry !== undefined && carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk
    const lastNl = buf.lastIndexOf(10)
    if (lastNl < 0) {
      carry = buf
      continue
    }
    const batch = decodeBody(buf.subarray(0, lastNl), next, first)
    first = false
    carry = buf.subarray(lastNl + 1)
    next += batch.lines.length
    yield batch
  }
  if (carry !== undefined && carry.length > 0) {
    yield decodeBody(carry, next, first)
  }
}

/** One line of each of two sources, at the same position. `a`/`b` are undefined once that source has ended. */
export interface AlignedBatch {
  readonly firstLine: number
  readonly a: ReadonlyArray<string | undefined>
  readonly b: ReadonlyArray<string | undefined>
  readonly faultsA: ReadonlyMap<number, LineFault> | undefined
  readonly faultsB: ReadonlyMap<number, LineFault> | undefined
}

class Cursor {
  readonly iterator: AsyncIterator<LineBatch>
  lines: ReadonlyArray<string> = []
  faults: ReadonlyMap<number, LineFault> | undefined
  offset = 0
  ended = false
  constructor(iterable: AsyncIterable<LineBatch>) {
    this.iterator = iterable[Symbol.asyncIterator]()
  }
  get available(): number {
    return this.lines.length - this.offset
  }
  async fill(): Promise<void> {
    while (!this.ended && this.available === 0) {
      const r = await this.iterator.next()
      if (r.done === true) {
        this.ended = true
      } else {
        this.lines = r.value.lines
        this.faults = r.value.faults
        this.offset = 0
      }
    }
  }
  take(n: number): { lines: ReadonlyArray<string>; faults: ReadonlyMap<number, LineFault> | undefined } {
    const lines = this.lines.slice(this.offset, this.offset + n)
    let faults: Map<number, LineFault> | undefined
    if (this.faults !== undefined) {
      for (const [k, f] of this.faults) {
        if (k >= this.offset && k < this.offset + n) (faults ??= new Map()).set(k - this.offset, f)
      }
    }
    this.offset += n
    return { lines, faults }
  }
  async close(): Promise<void> {
    await this.iterator.return?.()
  }
}

/**
 * Walks two line streams in lockstep (a Moses pair, or a TSV and its score file). When one ends first, the rest of
 * the other comes with `undefined` on the ended side, so the caller can quarantine the extra lines.
 */
export async function* alignedLines(a: AsyncIterable<LineBatch>, b: AsyncIterable<LineBatch>): AsyncGenerator<AlignedBatch> {
  const ca = new Cursor(a)
  const cb = new Cursor(b)
  let line = 1
  try {
    while (true) {
      await Promise.all([ca.fill(), cb.fill()])
      if (ca.available === 0 && cb.available === 0) return
      if (ca.available > 0 && cb.available > 0) {
        const n = Math.min(ca.available, cb.available)
        const ta = ca.take(n)
        const tb = cb.take(n)
        yield { firstLine: line, a: ta.lines, b: tb.lines, faultsA: ta.faults, faultsB: tb.faults }
        line += n
      } else if (ca.available > 0) {
        const ta = ca.take(ca.available)
        yield { firstLine: line, a: ta.lines, b: new Array<undefined>(ta.lines.length), faultsA: ta.faults, faultsB: undefined }
        line += ta.lines.length
      } else {
        const tb = cb.take(cb.available)
        yield { firstLine: line, a: new Array<undefined>(tb.lines.length), b: tb.lines, faultsA: undefined, faultsB: tb.faults }
        line += tb.lines.length
      }
    }
  } finally {
    await Promise.all([ca.close(), cb.close()])
  }
}
