/**
 * A JavaScript decoder of the row groups `table.ts` writes: flat `int32`, `float32`, `float64`, `bool` and `utf8`
 * columns (required or optional), data page v1, PLAIN or dictionary-encoded values (a bool PLAIN, bit-packed), RLE
 * definition levels, ZSTD or no compression. It turns a row group's bytes into columns (UTF-8 bytes and offsets,
 * typed arrays; a bool as 0/1 bytes) for `readTableRaw` and `readTable`, with one native zstd call per page and one
 * copy of each text value.
 *
 * Why: `readTableRaw` used to decode every row group with parquet-wasm on a worker thread (Parquet → Arrow → an IPC
 * stream → Arrow again): on a 1M-pair `pairs` table that was ~4 s of CPU, a second V8 isolate with its own
 * parquet-wasm instance, and a WebAssembly memory that grew to the largest row group and never shrank. Here the
 * same values come out in ~0.3 s on the reading thread, and memory is the row group's own buffers.
 *
 * Anything else (another physical type, nested columns, data page v2, another codec or encoding) is
 * `undefined`: the caller then decodes the row group with parquet-wasm, as before. Corrupt data throws.
 * `test/formats/parquet/read.test.ts` checks the values against parquet-wasm's on tables of every supported shape.
 */
import { isUtf8 } from "node:buffer"
import * as zlib from "node:zlib"
import {
  CODEC_UNCOMPRESSED,
  CODEC_ZSTD,
  ENC_PLAIN,
  ENC_PLAIN_DICTIONARY,
  ENC_RLE,
  ENC_RLE_DICTIONARY,
  PAGE_DATA,
  PAGE_DATA_V2,
  PAGE_DICTIONARY,
  pageHeaderAt,
  type RowGroupInfo,
  TYPE_BOOLEAN,
  TYPE_BYTE_ARRAY,
  TYPE_DOUBLE,
  TYPE_FLOAT,
  TYPE_INT32
} from "./footer.ts"

/** One decoded column of a row group: a utf8 column's cell i is `bytes[offsets[i], offsets[i + 1])`. */
export interface DecodedColumn {
  /** Validity bitmap (LSB first), undefined when no cell is null. */
  readonly validity: Uint8Array | undefined
  readonly bytes?: Buffer
  readonly offsets?: Int32Array
  /** int32 / float32 / float64 values, or a bool's 0/1 (nulls hold 0). */
  readonly numbers?: Int32Array | Float32Array | Float64Array | Uint8Array
  /** The whole buffer `bytes` is a view of (for `reuse` with the next row group). */
  readonly buffer?: Buffer
}

/** A column of the file's schema, in leaf order. */
export interface DecodableColumn {
  readonly name: string
  readonly type: string | undefined
  readonly nullable: boolean
}

const PHYSICAL: Readonly<Record<string, number>> = {
  utf8: TYPE_BYTE_ARRAY,
  int32: TYPE_INT32,
  float32: TYPE_FLOAT,
  float64: TYPE_DOUBLE,
  bool: TYPE_BOOLEAN
}

/** A column of `rows` values of a numeric physical type. */
const numberArray = (physical: number, rows: number): Int32Array | Float32Array | Float64Array | Uint8Array =>
  physical === TYPE_INT32
    ? new Int32Array(rows)
    : physical === TYPE_FLOAT
    ? new Float32Array(rows)
    : physical === TYPE_BOOLEAN
    ? new Uint8Array(rows)
    : new Float64Array(rows)

/** The PLAIN value at byte `at` of a numeric physical type other than BOOLEAN. */
const plainNumber = (page: Buffer, physical: number, at: number): number =>
  physical === TYPE_INT32 ? page.readInt32LE(at) : physical === TYPE_FLOAT ? page.readFloatLE(at) : page.readDoubleLE(at)

class Unsupported extends Error {}

const corrupt = (message: string): Error => new Error(message)

/**
 * The RLE / bit-packing hybrid (parquet-format `RLE` encoding) of `count` values of `bitWidth` bits from
 * `buf[pos, end)`, each handed to `put(index, value)`.
 */
const readHybrid = (
  buf: Uint8Array,
  pos: number,
  end: number,
  bitWidth: number,
  count: number,
  put: (k: number, v: number) => void
): void => {
  const bytesPerRun = (bitWidth + 7) >> 3
  let k = 0
  while (k < count) {
    if (pos >= end) throw corrupt("RLE data ends early")
    let header = 0
    let shift = 0
    for (;;) {
      const b = buf[pos++]
      header += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
      shift += 7
      if (shift > 35 || pos >= end) throw corrupt("bad RLE run header")
    }
    if ((header & 1) === 0) {
      const run = header / 2
      let v = 0
      for (let i = 0; i < bytesPerRun; i++) v |= buf[pos + i] << (8 * i)
      pos += bytesPerRun
      if (pos > end) throw corrupt("RLE run ends past its page")
      v >>>= 0
      const stop = Math.min(count, k + run)
      while (k < stop) put(k++, v)
    } else {
      const values = ((header - 1) / 2) * 8
      const bytes = (values * bitWidth) >> 3
      if (pos + bytes > end) throw corrupt("bit-packed run ends past its page")
      let acc = 0
      let bits = 0
      let at = pos
      for (let i = 0; i < values && k < count; i++) {
        while (bits < bitWidth) {
          acc += buf[at++] * 2 ** bits
          bits += 8
        }
        put(k++, acc % 2 ** bitWidth)
        acc = Math.floor(acc / 2 ** bitWidth)
        bits -= bitWidth
      }
      pos += bytes
    }
  }
}

/** A growable buffer of utf8 values with their offsets. */
class TextOut {
  bytes: Buffer
  pos = 0
  constructor(capacity: number, reuse: Buffer | undefined) {
    this.bytes = reuse !== undefined && reuse.length >= capacity ? reuse : Buffer.allocUnsafeSlow(Math.max(64, capacity))
  }
  append(src: Buffer, s: number, e: number): void {
    const need = this.pos + e - s
    if (need > this.bytes.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.bytes.length, need))
      this.bytes.copy(bigger, 0, 0, this.pos)
      this.bytes = bigger
    }
    src.copy(this.bytes, this.pos, s, e)
    this.pos = need
  }
}

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength))

/** One column chunk: `data[at, end)` holds its pages. */
const decodeChunk = (
  data: Uint8Array,
  at: number,
  end: number,
  codec: number,
  physical: number,
  nullable: boolean,
  rows: number,
  reuse: Buffer | undefined
): DecodedColumn => {
  const isText = physical === TYPE_BYTE_ARRAY
  const isBool = physical === TYPE_BOOLEAN
  const width = physical === TYPE_INT32 || physical === TYPE_FLOAT ? 4 : 8
  const validity = new Uint8Array((rows + 7) >> 3)
  let nulls = 0
  const numbers = isText ? undefined : numberArray(physical, rows)
  const offsets = isText ? new Int32Array(rows + 1) : undefined
  const text = isText ? new TextOut(end - at, reuse) : undefined
  // the dictionary: for text its entries' [start, end) in `dictBytes`, for numbers the values
  let dictBytes: Buffer | undefined
  let dictStarts: Int32Array | undefined
  let dictEnds: Int32Array | undefined
  let dictNumbers: Int32Array | Float32Array | Float64Array | Uint8Array | undefined
  let row = 0
  let pos = at

  const inflate = (body: Uint8Array, size: number): Buffer => {
    if (codec === CODEC_UNCOMPRESSED) return asBuffer(body)
    // one output buffer with room to spare (an exactly full one makes zlib allocate a second and concatenate)
    const out = zlib.zstdDecompressSync(body, { chunkSize: Math.max(64, size + 64) })
    if (out.length !== size) throw corrupt(`a page inflates to ${out.length} bytes, its header says ${size}`)
    return out
  }

  while (row < rows) {
    if (pos >= end) throw corrupt(`column chunk ends after ${row} of ${rows} values`)
    const h = pageHeaderAt(data.subarray(0, end), pos)
    const bodyEnd = h.bodyAt + h.compressedSize
    if (h.compressedSize < 0 || bodyEnd > end) throw corrupt(`a page of ${h.compressedSize} bytes runs past its column chunk`)
    const body = data.subarray(h.bodyAt, bodyEnd)
    pos = bodyEnd
    if (h.type === PAGE_DATA_V2) throw new Unsupported("data page v2")
    if (h.type === PAGE_DICTIONARY) {
      if (h.encoding !== ENC_PLAIN && h.encoding !== ENC_PLAIN_DICTIONARY) throw new Unsupported("dictionary encoding")
      const page = inflate(body, h.uncompressedSize)
      const n = h.numValues
      if (isText) {
        dictStarts = new Int32Array(n)
        dictEnds = new Int32Array(n)
        let p = 0
        for (let k = 0; k < n; k++) {
          if (p + 4 > page.length) throw corrupt("dictionary page ends early")
          const len = page.readUInt32LE(p)
          dictStarts[k] = p + 4
          p += 4 + len
          if (p > page.length) throw corrupt("dictionary page ends early")
          dictEnds[k] = p
        }
        dictBytes = page
      } else {
        if (isBool) throw new Unsupported("a boolean dictionary")
        if (n * width > page.length) throw corrupt("dictionary page ends early")
        dictNumbers = numberArray(physical, n)
        for (let k = 0; k < n; k++) dictNumbers[k] = plainNumber(page, physical, k * width)
      }
      continue
    }
    if (h.type !== PAGE_DATA) continue // index pages: nothing to read
    const levels = h.numValues
    if (levels <= 0 || row + levels > rows) throw corrupt(`a data page holds ${levels} values past the chunk's ${rows}`)
    const page = inflate(body, h.uncompressedSize)
    let p = 0
    // definition levels (max level 1): the rows of this page that hold a value
    const first = row
    let present = levels
    if (nullable) {
      if (h.definitionEncoding !== ENC_RLE) throw new Unsupported("definition level encoding")
      if (page.length < 4) throw corrupt("data page ends inside its definition levels")
      const len = page.readUInt32LE(0)
      if (4 + len > page.length) throw corrupt("definition levels run past their page")
      present = 0
      readHybrid(page, 4, 4 + len, 1, levels, (k, v) => {
        const r = first + k
        if (v === 1) {
          validity[r >> 3] |= 1 << (r & 7)
          present++
        } else if (v !== 0) throw corrupt(`definition level ${v} in a flat column`)
      })
      nulls += levels - present
      p = 4 + len
    } else {
      for (let r = first; r < first + levels; r++) validity[r >> 3] |= 1 << (r & 7)
    }
    // the value of the k-th present row of this page goes to row `rowOf(k)`
    let cursor = first
    const nextRow = (): number => {
      if (nullable) while ((validity[cursor >> 3] & (1 << (cursor & 7))) === 0) cursor++
      return cursor++
    }
    if (h.encoding === ENC_PLAIN) {
      if (isText) {
        let r = first
        for (let k = 0; k < present; k++) {
          const target = nextRow()
          for (; r < target; r++) offsets![r + 1] = text!.pos // nulls before it: empty
          if (p + 4 > page.length) throw corrupt("data page ends inside a value")
          const len = page.readUInt32LE(p)
          p += 4
          if (p + len > page.length) throw corrupt("data page ends inside a value")
          text!.append(page, p, p + len)
          p += len
          offsets![target + 1] = text!.pos
          r = target + 1
        }
        for (; r < first + levels; r++) offsets![r + 1] = text!.pos
      } else if (isBool) {
        // one bit per value, LSB first
        if (p + ((present + 7) >> 3) > page.length) throw corrupt("data page ends inside its values")
        for (let k = 0; k < present; k++) numbers![nextRow()] = (page[p + (k >> 3)] >> (k & 7)) & 1
      } else {
        if (p + present * width > page.length) throw corrupt("data page ends inside its values")
        for (let k = 0; k < present; k++) numbers![nextRow()] = plainNumber(page, physical, p + width * k)
      }
    } else if (h.encoding === ENC_RLE_DICTIONARY || h.encoding === ENC_PLAIN_DICTIONARY) {
      if (p >= page.length && present > 0) throw corrupt("data page lacks its index bit width")
      const bitWidth = present > 0 ? page[p] : 0
      if (bitWidth > 32) throw corrupt(`dictionary index bit width ${bitWidth}`)
      const entries = isText ? dictStarts?.length ?? 0 : dictNumbers?.length ?? 0
      if (present > 0 && (isText ? dictBytes === undefined : dictNumbers === undefined)) {
        throw corrupt("dictionary-encoded page without a dictionary page")
      }
      let r = first
      readHybrid(page, p + 1, page.length, bitWidth, present, (_, ix) => {
        if (ix >= entries) throw corrupt(`dictionary index ${ix} of ${entries} entries`)
        const target = nextRow()
        if (isText) {
          for (; r < target; r++) offsets![r + 1] = text!.pos
          text!.append(dictBytes!, dictStarts![ix], dictEnds![ix])
          offsets![target + 1] = text!.pos
          r = target + 1
        } else numbers![target] = dictNumbers![ix]
      })
      if (isText) for (; r < first + levels; r++) offsets![r + 1] = text!.pos
    } else throw new Unsupported(`value encoding ${h.encoding}`)
    row += levels
  }
  if (text !== undefined) {
    const bytes = text.bytes.subarray(0, text.pos)
    // as arrow-rs checks a Utf8 column: valid UTF-8, every cell starting on a character boundary
    if (!isUtf8(bytes)) throw corrupt("a utf8 column holds invalid UTF-8")
    for (let i = 0; i < rows; i++) {
      if (offsets![i] < offsets![i + 1] && (bytes[offsets![i]] & 0xc0) === 0x80) throw corrupt("a utf8 cell starts inside a character")
    }
    return { validity: nulls > 0 ? validity : undefined, bytes, offsets, buffer: text.bytes }
  }
  return { validity: nulls > 0 ? validity : undefined, numbers }
}

/**
 * Decodes row group `rg` (its bytes `data`, where `data[0]` is file byte `rg.start`) for the columns `wanted`
 * (names of `columns`, the file's schema in leaf order). Undefined when the row group uses anything this decoder
 * does not read; throws when its data are corrupt. `reuse` holds, per utf8 column, a buffer of an earlier row group
 * that its text may be written into (the caller is done with that row group).
 */
export const decodeRowGroupJs = (
  data: Uint8Array,
  rg: RowGroupInfo,
  columns: ReadonlyArray<DecodableColumn>,
  wanted: ReadonlyArray<string>,
  reuse?: ReadonlyMap<string, Buffer>
): Record<string, DecodedColumn> | undefined => {
  if (rg.columns.length !== columns.length) return undefined
  const out: Record<string, DecodedColumn> = {}
  try {
    for (const name of wanted) {
      const c = columns.findIndex((col) => col.name === name)
      if (c < 0) return undefined
      const col = columns[c]
      const chunk = rg.columns[c]
      const physical = col.type === undefined ? undefined : PHYSICAL[col.type]
      if (physical === undefined || chunk.type !== physical || chunk.path !== name) return undefined
      if (chunk.codec !== CODEC_ZSTD && chunk.codec !== CODEC_UNCOMPRESSED) return undefined
      if (chunk.numValues !== rg.rows) return undefined
      const at = chunk.start - rg.start
      const end = at + chunk.compressedBytes
      if (at < 0 || end > data.length) throw corrupt(`column "${name}" lies outside its row group`)
      out[name] = decodeChunk(data, at, end, chunk.codec, physical, col.nullable, rg.rows, reuse?.get(name))
    }
  } catch (e) {
    if (e instanceof Unsupported) return undefined
    throw e
  }
  return out
}
