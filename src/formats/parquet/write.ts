/**
 * A JavaScript encoder of Parquet row groups that writes the same bytes as parquet-wasm 0.8.0 (parquet-rs 59.3,
 * the `59_maintenance` branch) with the properties `table.ts` uses: ZSTD level 1, chunk-level statistics, data
 * page v1, PLAIN or RLE_DICTIONARY per column (booleans PLAIN only: parquet-rs has no dictionary for them), 1 MiB
 * data and dictionary page limits, 1,024-value mini-batches, 20,000-row page limit, 64-byte statistics truncation.
 *
 * Why: parquet-wasm encodes and compresses inside WebAssembly on the calling thread, which made Parquet writing
 * the bottleneck of ingest and clean (~6 s per million pairs). Here the values are laid out in JavaScript (one
 * pass over the rows) and the pages are compressed by Node's native zstd (libzstd 1.5.7, the version parquet-wasm
 * bundles; level 1, one-shot, gives identical frames): `compressPagesSync` on the writing thread (`table.ts`'s
 * default), or `compressPages` on a worker thread (`zstdWorker.ts`, with `LLINK_ZSTD_WORKER=1`).
 *
 * The file layout and every decision that changes bytes follow parquet-rs:
 * - a column chunk is [dictionary page] then data pages; each page is a Thrift `PageHeader` + zstd frame;
 * - levels: a nullable column with no nulls (or only nulls) is written in mini-batches of 20,000 levels, one with
 *   some nulls in batches of 1,024, a required column in batches of 1,024; a byte-array mini-batch whose values
 *   would overflow the page budget (1 MiB, or what is left of the dictionary budget) is cut into sub-batches of the
 *   number of values that fit (parquet-rs `ByteBudgetChunker`);
 * - after each mini-batch a data page is cut when its estimated size reaches 1 MiB or it holds 20,000 rows, and a
 *   dictionary that reached 1 MiB falls back to PLAIN (the dictionary page still comes first in the chunk);
 * - statistics: min/max (NaN skipped, a zero min written as -0.0 and a zero max as +0.0), null count, exactness;
 *   byte arrays compared bytewise and truncated to 64 bytes on a UTF-8 boundary (the max incremented);
 * - `ColumnMetaData` fields in parquet-rs's order, with `size_statistics` (unencoded byte-array bytes, the
 *   definition-level histogram of nullable columns); the offset/column indexes and the ordinal are not written
 *   (`table.ts` never kept them: they live outside the row group bytes).
 *
 * Every column type of llink's tables is encoded here: flat `int32`, `float32`, `float64`, `bool` and `utf8`, nullable
 * or not (`supportsColumns`). `test/formats/parquet/write.test.ts` checks byte identity with parquet-wasm (kept as the
 * oracle) on random tables of every shape; `LLINK_PARQUET_ENGINE=wasm` still writes through parquet-wasm.
 */
import * as zlib from "node:zlib"
import {
  CODEC_ZSTD,
  ENC_PLAIN,
  ENC_RLE,
  ENC_RLE_DICTIONARY,
  PAGE_DATA,
  PAGE_DICTIONARY,
  TYPE_BOOLEAN,
  TYPE_BYTE_ARRAY,
  TYPE_DOUBLE,
  TYPE_FLOAT,
  TYPE_INT32,
  Writer
} from "./footer.ts"
import { workerClient } from "./workerClient.ts"
import { oneShotOptions, ZSTD_WORKER_TAG } from "./zstdWorker.ts"

export type FastColumnType = "int32" | "float32" | "float64" | "bool" | "utf8"

/** The shape of one column as this encoder sees it. */
export interface FastColumn {
  readonly name: string
  readonly type: FastColumnType
  readonly nullable: boolean
  /** Dictionary-encode this column (parquet-rs's default; `table.ts` turns it off for mostly distinct columns). */
  readonly dictionary: boolean
}

/** The values of one column of a row group, laid out by `table.ts`. */
export type ColumnValues =
  | {
    readonly type: "int32" | "float32" | "float64" | "bool"
    /** One slot per row (nulls hold 0; a bool is 0 or 1). */
    readonly values: Int32Array | Float32Array | Float64Array | Uint8Array
    /** Validity bitmap (LSB first), undefined when the column has no null. */
    readonly validity: Uint8Array | undefined
    readonly nullCount: number
  }
  | {
    readonly type: "utf8"
    /** The non-null values in row order, each as `u32le(length) ‖ UTF-8 bytes` (PLAIN encoding). */
    readonly stream: Buffer
    /** `ends[k]`: end offset in `stream` of the k-th non-null value (its start is `ends[k-1]`, or 0). */
    readonly ends: Int32Array
    readonly validity: Uint8Array | undefined
    readonly nullCount: number
  }

const PAGE_LIMIT = 1024 * 1024
const DICT_LIMIT = 1024 * 1024
const WRITE_BATCH = 1024
const ROW_COUNT_LIMIT = 20_000
const STATS_TRUNCATE = 64

const FAST_TYPES: ReadonlySet<string> = new Set<FastColumnType>(["int32", "float32", "float64", "bool", "utf8"])

/** Whether this encoder writes every column of `columns` (it writes every type `table.ts` declares). */
export const supportsColumns = (
  columns: ReadonlyArray<{ readonly type: string }>
): boolean => columns.every((c) => FAST_TYPES.has(c.type))

// ---- bits and runs -----------------------------------------------------------------------------------------

/** A growable byte buffer with an LSB-first bit writer (parquet-rs `BitWriter` semantics). */
class Bytes {
  buf: Uint8Array
  len = 0
  private acc = 0
  private bits = 0
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial)
  }
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }
  /** Writes out a partly filled byte (parquet-rs `BitWriter::flush`). */
  flushBits(): void {
    if (this.bits > 0) {
      this.ensure(1)
      this.buf[this.len++] = this.acc & 0xff
      this.acc = 0
      this.bits = 0
    }
  }
  byte(b: number): void {
    this.flushBits()
    this.ensure(1)
    this.buf[this.len++] = b
  }
  /** Reserves `n` zero bytes; returns their offset. */
  skip(n: number): number {
    this.flushBits()
    this.ensure(n)
    const at = this.len
    this.buf.fill(0, at, at + n)
    this.len += n
    return at
  }
  /** The low `nbytes` bytes of `v`, little-endian, byte-aligned. */
  aligned(v: number, nbytes: number): void {
    this.flushBits()
    this.ensure(nbytes)
    for (let i = 0; i < nbytes; i++) this.buf[this.len++] = i < 4 ? (v >>> (8 * i)) & 0xff : 0
  }
  vlq(v: number): void {
    this.flushBits()
    while (v >= 0x80) {
      this.byte((v % 128) | 0x80)
      v = Math.floor(v / 128)
    }
    this.byte(v)
  }
  /** Appends the low `nbits` (≤ 32) bits of `v`. */
  value(v: number, nbits: number): void {
    let left = nbits
    let x = v >>> 0
    while (left > 0) {
      const take = Math.min(8 - this.bits, left)
      this.acc |= (x & ((1 << take) - 1)) << this.bits
      this.bits += take
      left -= take
      x = take >= 32 ? 0 : x >>> take
      if (this.bits === 8) {
        this.ensure(1)
        this.buf[this.len++] = this.acc
        this.acc = 0
        this.bits = 0
      }
    }
  }
  result(): Uint8Array {
    this.flushBits()
    return this.buf.subarray(0, this.len)
  }
}

/** parquet-rs `RleEncoder` (the RLE / bit-packing hybrid), ported statement by statement. */
class RleEncoder {
  private readonly buffered = new Array<number>(8).fill(0)
  private numBuffered = 0
  private current = 0
  private repeat = 0
  private bitPacked = 0
  private indicatorAt = -1
  readonly out: Bytes
  private readonly bitWidth: number
  constructor(bitWidth: number, out: Bytes) {
    this.bitWidth = bitWidth
    this.out = out
  }
  put(v: number): void {
    if (this.current === v) {
      this.repeat++
      if (this.repeat > 8) return
    } else {
      if (this.repeat >= 8) this.flushRle()
      this.repeat = 1
      this.current = v
    }
    this.buffered[this.numBuffered++] = v
    if (this.numBuffered === 8) this.flushBufferedValues()
  }
  /** `count` copies of `v` (parquet-rs `put_n_with_observer`: puts until a run accumulates, then extends it). */
  putRun(v: number, count: number): void {
    let left = count
    while (left > 0 && !(this.repeat >= 8 && this.current === v)) {
      this.put(v)
      left--
    }
    if (left > 0) this.repeat += left
  }
  flush(): void {
    if (this.bitPacked > 0 || this.repeat > 0 || this.numBuffered > 0) {
      const allRepeat = this.bitPacked === 0 && (this.repeat === this.numBuffered || this.numBuffered === 0)
      if (this.repeat > 0 && allRepeat) this.flushRle()
      else {
        if (this.numBuffered > 0) while (this.numBuffered < 8) this.buffered[this.numBuffered++] = 0
        this.bitPacked += this.numBuffered
        this.flushBitPacked(true)
        this.repeat = 0
      }
    }
  }
  private flushRle(): void {
    this.out.vlq(this.repeat * 2)
    this.out.aligned(this.current, Math.ceil(this.bitWidth / 8))
    this.numBuffered = 0
    this.repeat = 0
  }
  private flushBitPacked(end: boolean): void {
    if (this.indicatorAt < 0) this.indicatorAt = this.out.skip(1)
    for (let i = 0; i < this.numBuffered; i++) this.out.value(this.buffered[i], this.bitWidth)
    this.numBuffered = 0
    if (end) this.finishBitPacked()
  }
  private finishBitPacked(): void {
    const groups = this.bitPacked / 8
    this.out.buf[this.indicatorAt] = ((groups << 1) | 1) & 0xff
    this.indicatorAt = -1
    this.bitPacked = 0
  }
  private flushBufferedValues(): void {
    if (this.repeat >= 8) {
      this.numBuffered = 0
      if (this.bitPacked > 0) this.finishBitPacked()
      return
    }
    this.bitPacked += this.numBuffered
    const groups = this.bitPacked / 8
    this.flushBitPacked(groups + 1 >= 64)
    this.repeat = 0
  }
}

/** parquet-rs `num_required_bits`. */
const requiredBits = (x: number): number => (x === 0 ? 0 : 32 - Math.clz32(x))

/** parquet-rs `RleEncoder::max_buffer_size`. */
const rleMaxSize = (bitWidth: number, n: number): number => {
  const runs = Math.ceil(n / 8)
  return Math.max(runs + runs * bitWidth, runs * (1 + Math.ceil(bitWidth / 8)))
}

// ---- statistics ------------------------------------------------------------------------------------------

const isContinuation = (b: number): boolean => (b & 0xc0) === 0x80

/** parquet-rs `truncate_utf8` on valid UTF-8: the longest prefix of at most `limit` bytes ending on a boundary. */
const truncateMin = (v: Uint8Array): Uint8Array => {
  for (let x = STATS_TRUNCATE; x >= 1; x--) if (x === v.length || !isContinuation(v[x])) return v.slice(0, x)
  return v
}

/** Code point starting at `i` and its UTF-8 length. */
const codePointAt = (v: Uint8Array, i: number): { cp: number; len: number } => {
  const b = v[i]
  if (b < 0x80) return { cp: b, len: 1 }
  if (b < 0xe0) return { cp: ((b & 0x1f) << 6) | (v[i + 1] & 0x3f), len: 2 }
  if (b < 0xf0) return { cp: ((b & 0x0f) << 12) | ((v[i + 1] & 0x3f) << 6) | (v[i + 2] & 0x3f), len: 3 }
  return { cp: ((b & 0x07) << 18) | ((v[i + 1] & 0x3f) << 12) | ((v[i + 2] & 0x3f) << 6) | (v[i + 3] & 0x3f), len: 4 }
}

const utf8Length = (cp: number): number => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4)

const encodeCodePoint = (cp: number, out: Uint8Array, at: number): void => {
  if (cp < 0x80) out[at] = cp
  else if (cp < 0x800) {
    out[at] = 0xc0 | (cp >> 6)
    out[at + 1] = 0x80 | (cp & 0x3f)
  } else if (cp < 0x10000) {
    out[at] = 0xe0 | (cp >> 12)
    out[at + 1] = 0x80 | ((cp >> 6) & 0x3f)
    out[at + 2] = 0x80 | (cp & 0x3f)
  } else {
    out[at] = 0xf0 | (cp >> 18)
    out[at + 1] = 0x80 | ((cp >> 12) & 0x3f)
    out[at + 2] = 0x80 | ((cp >> 6) & 0x3f)
    out[at + 3] = 0x80 | (cp & 0x3f)
  }
}

/**
 * parquet-rs `truncate_and_increment_utf8`: cut at the last boundary in [limit-3, limit], then increment the last
 * code point that can be incremented without changing its UTF-8 length (dropping those after it). Undefined when
 * none can (the value is then kept whole).
 */
const truncateMax = (v: Uint8Array): Uint8Array | undefined => {
  let split = -1
  for (let x = STATS_TRUNCATE; x >= STATS_TRUNCATE - 3; x--) {
    if (x === v.length || !isContinuation(v[x])) {
      split = x
      break
    }
  }
  if (split < 0) return undefined
  const starts: Array<number> = []
  for (let i = 0; i < split; i += codePointAt(v, i).len) starts.push(i)
  for (let k = starts.length - 1; k >= 0; k--) {
    const { cp, len } = codePointAt(v, starts[k])
    const next = cp + 1
    if (next > 0x10ffff || (next >= 0xd800 && next <= 0xdfff)) continue
    if (utf8Length(next) !== len) continue
    const out = v.slice(0, starts[k] + len)
    encodeCodePoint(next, out, starts[k])
    return out
  }
  return undefined
}

interface ChunkStats {
  readonly min: Uint8Array | undefined
  readonly max: Uint8Array | undefined
  readonly minExact: boolean
  readonly maxExact: boolean
}

const int32Bytes = (v: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setInt32(0, v, true)
  return b
}

const float64Bytes = (v: number): Uint8Array => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setFloat64(0, v, true)
  return b
}

const float32Bytes = (v: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setFloat32(0, v, true)
  return b
}

const isValid = (validity: Uint8Array | undefined, i: number): boolean =>
  validity === undefined || (validity[i >> 3] & (1 << (i & 7))) !== 0

const numericStats = (col: FastColumn, v: ColumnValues & { readonly type: "int32" | "float32" | "float64" | "bool" }, n: number): ChunkStats => {
  let min = 0
  let max = 0
  let any = false
  const values = v.values
  for (let i = 0; i < n; i++) {
    if (v.nullCount > 0 && !isValid(v.validity, i)) continue
    const x = values[i]
    if (x !== x) continue // NaN
    if (!any) {
      min = x
      max = x
      any = true
    } else {
      if (min > x) min = x
      if (x > max) max = x
    }
  }
  if (!any) return { min: undefined, max: undefined, minExact: false, maxExact: false }
  if (col.type === "int32") return { min: int32Bytes(min), max: int32Bytes(max), minExact: true, maxExact: true }
  // a bool's statistic is its one byte (parquet-rs `bool::as_bytes`), false < true
  if (col.type === "bool") return { min: Uint8Array.of(min), max: Uint8Array.of(max), minExact: true, maxExact: true }
  const bytes = col.type === "float32" ? float32Bytes : float64Bytes
  return {
    min: bytes(min === 0 ? -0 : min),
    max: bytes(max === 0 ? 0 : max),
    minExact: true,
    maxExact: true
  }
}

/** Bytewise comparison of `s[a0, a1)` and `s[b0, b1)` (negative, 0, positive), as Rust's `[u8]` ordering. */
const compareBytes = (s: Uint8Array, a0: number, a1: number, b0: number, b1: number): number => {
  const n = Math.min(a1 - a0, b1 - b0)
  for (let i = 0; i < n; i++) {
    const d = s[a0 + i] - s[b0 + i]
    if (d !== 0) return d
  }
  return a1 - a0 - (b1 - b0)
}

const utf8Stats = (v: ColumnValues & { readonly type: "utf8" }): ChunkStats => {
  const count = v.ends.length
  if (count === 0) return { min: undefined, max: undefined, minExact: false, maxExact: false }
  const s = v.stream
  const ends = v.ends
  let minStart = 4
  let minEnd = ends[0]
  let maxStart = 4
  let maxEnd = ends[0]
  for (let k = 1; k < count; k++) {
    const a = ends[k - 1] + 4
    const b = ends[k]
    if (compareBytes(s, a, b, minStart, minEnd) < 0) {
      minStart = a
      minEnd = b
    } else if (compareBytes(s, a, b, maxStart, maxEnd) > 0) {
      maxStart = a
      maxEnd = b
    }
  }
  // copies, as plain Uint8Arrays: a Buffer's `slice` is a view, and truncation must not touch the stream
  const rawMin = Uint8Array.from(s.subarray(minStart, minEnd))
  const rawMax = Uint8Array.from(s.subarray(maxStart, maxEnd))
  let min: Uint8Array = rawMin
  let minExact = true
  if (rawMin.length > STATS_TRUNCATE) {
    min = truncateMin(rawMin)
    minExact = false
  }
  let max: Uint8Array = rawMax
  let maxExact = true
  if (rawMax.length > STATS_TRUNCATE) {
    const t = truncateMax(rawMax)
    if (t !== undefined) {
      max = t
      maxExact = false
    }
  }
  return { min, max, minExact, maxExact }
}

// ---- pages -------------------------------------------------------------------------------------------------

/** A page whose body still has to be compressed. */
export interface PendingPage {
  readonly kind: "data" | "dictionary"
  /** Levels (data page) or entries (dictionary page). */
  readonly numValues: number
  readonly encoding: number
  readonly body: Uint8Array
}

/** One column chunk before compression. */
export interface PreparedChunk {
  readonly column: FastColumn
  readonly dictionary: PendingPage | undefined
  readonly data: ReadonlyArray<PendingPage>
  readonly numValues: number
  readonly nulls: number
  readonly stats: ChunkStats
  /** Encodings in the order parquet-rs records page encoding stats: [page type, encoding, count]. */
  readonly encodingStats: ReadonlyArray<readonly [number, number, number]>
  readonly encodings: ReadonlyArray<number>
  readonly unencodedBytes: number | undefined
  readonly defHistogram: readonly [number, number] | undefined
}

/** A row group before compression. */
export interface PreparedRowGroup {
  readonly rows: number
  readonly chunks: ReadonlyArray<PreparedChunk>
}

type DictKey = string | number

/** Encodes one column of `n` rows into pages, following parquet-rs's mini-batch and page-cut logic. */
const prepareChunk = (col: FastColumn, v: ColumnValues, n: number): PreparedChunk => {
  const isUtf8 = v.type === "utf8"
  const isBool = v.type === "bool"
  // bytes per PLAIN value (a bool is one bit, packed per page)
  const width = v.type === "int32" || v.type === "float32" ? 4 : v.type === "float64" ? 8 : 0
  const nullCount = v.nullCount
  const levels: "absent" | "uniform" | "materialized" = !col.nullable
    ? "absent"
    : nullCount === 0 || nullCount === n
    ? "uniform"
    : "materialized"
  const base = levels === "uniform" ? ROW_COUNT_LIMIT : WRITE_BATCH
  const validity = v.validity
  const numericValues = v.type === "utf8" ? undefined : v.values

  // value k (k-th non-null) → its start/end in the PLAIN stream (utf8), for budgets and page slices
  const ends = isUtf8 ? v.ends : undefined
  const valueStart = (k: number): number => (k === 0 ? 0 : ends![k - 1])

  // the non-null rows, for numeric columns with nulls (values are stored per row)
  let rowOfValue: Int32Array | undefined
  if (!isUtf8 && nullCount > 0 && nullCount < n) {
    rowOfValue = new Int32Array(n - nullCount)
    let k = 0
    for (let i = 0; i < n; i++) if (isValid(validity, i)) rowOfValue[k++] = i
  }
  const numericRow = (k: number): number => (rowOfValue === undefined ? k : rowOfValue[k])
  const nonNullIn = (lo: number, count: number): number => {
    if (levels === "absent") return count
    if (nullCount === 0) return count
    if (nullCount === n) return 0
    let c = 0
    for (let i = lo; i < lo + count; i++) if (isValid(validity, i)) c++
    return c
  }

  // dictionary state
  // parquet-rs has no dictionary for booleans (`has_dictionary_support`)
  let dict: Map<DictKey, number> | undefined = col.dictionary && !isBool ? new Map() : undefined
  const dictEntries: Array<number> = [] // value index k of each entry's first occurrence
  let dictSize = 0
  let indices: Array<number> = []
  let dictionaryPage: PendingPage | undefined
  const f64 = new Float64Array(1)
  const f64Bits = new Uint32Array(f64.buffer)
  const f32 = new Float32Array(1)
  const f32Bits = new Uint32Array(f32.buffer)

  const data: Array<PendingPage> = []
  const encodingStats: Array<[number, number, number]> = []
  const encodings = new Set<number>([ENC_RLE])
  let totalValues = 0
  let columnNulls = 0
  let unencoded = 0
  const hist: [number, number] = [0, 0]

  // page state
  let pageLevels = 0
  let pageRows = 0
  let pageNulls = 0
  let pageFirstValue = 0
  let pageValues = 0
  let pageFirstRow = 0

  const recordStat = (pageType: number, encoding: number): void => {
    const last = encodingStats[encodingStats.length - 1]
    if (pageType === PAGE_DATA && last !== undefined && last[0] === pageType && last[1] === encoding) last[2]++
    else encodingStats.push([pageType, encoding, 1])
  }

  const defLevelBytes = (): Uint8Array => {
    const out = new Bytes(64)
    out.skip(4)
    const rle = new RleEncoder(1, out)
    if (nullCount === 0) rle.putRun(1, pageLevels)
    else if (nullCount === n) rle.putRun(0, pageLevels)
    else for (let i = pageFirstRow; i < pageFirstRow + pageLevels; i++) rle.put(isValid(validity, i) ? 1 : 0)
    rle.flush()
    const bytes = out.result()
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(0, bytes.length - 4, true)
    return bytes
  }

  /** `count` numeric values (rows picked by `rowOf`) as PLAIN bytes of this column's type. */
  const plainValues = (count: number, rowOf: (k: number) => number): Uint8Array => {
    const values = numericValues!
    if (isBool) {
      // parquet-rs `PlainEncoder<BoolType>`: one bit per value, LSB first, the last byte zero-padded
      const out = new Uint8Array((count + 7) >> 3)
      for (let k = 0; k < count; k++) if (values[rowOf(k)] !== 0) out[k >> 3] |= 1 << (k & 7)
      return out
    }
    const out = new Uint8Array(count * width)
    const view = new DataView(out.buffer)
    for (let k = 0; k < count; k++) {
      const x = values[rowOf(k)]
      if (v.type === "int32") view.setInt32(k * 4, x, true)
      else if (v.type === "float32") view.setFloat32(k * 4, x, true)
      else view.setFloat64(k * 8, x, true)
    }
    return out
  }

  const plainBody = (first: number, count: number): Uint8Array =>
    isUtf8 ? v.stream.subarray(valueStart(first), valueStart(first + count)) : plainValues(count, (k) => numericRow(first + k))

  const addDataPage = (): void => {
    let values: Uint8Array
    let encoding: number
    if (dict !== undefined) {
      const bitWidth = requiredBits(Math.max(0, dict.size - 1))
      const out = new Bytes(16 + indices.length)
      out.byte(bitWidth)
      const rle = new RleEncoder(bitWidth, out)
      for (const ix of indices) rle.put(ix)
      rle.flush()
      values = out.result()
      encoding = ENC_RLE_DICTIONARY
      indices = []
    } else {
      values = plainBody(pageFirstValue, pageValues)
      encoding = ENC_PLAIN
    }
    let body = values
    if (col.nullable) {
      const lv = defLevelBytes()
      body = new Uint8Array(lv.length + values.length)
      body.set(lv, 0)
      body.set(values, lv.length)
    }
    data.push({ kind: "data", numValues: pageLevels, encoding, body })
    encodings.add(encoding)
    recordStat(PAGE_DATA, encoding)
    columnNulls += pageNulls
    totalValues += pageLevels
    if (isUtf8) unencoded += valueStart(pageFirstValue + pageValues) - valueStart(pageFirstValue) - 4 * pageValues
    pageFirstRow += pageLevels
    pageFirstValue += pageValues
    pageLevels = 0
    pageRows = 0
    pageNulls = 0
    pageValues = 0
  }

  const writeDictionaryPage = (): void => {
    if (dict === undefined) return
    let body: Uint8Array
    if (isUtf8) {
      const size = dictEntries.reduce((s, k) => s + valueStart(k + 1) - valueStart(k), 0)
      body = new Uint8Array(size)
      let at = 0
      for (const k of dictEntries) {
        const part = v.stream.subarray(valueStart(k), valueStart(k + 1))
        body.set(part, at)
        at += part.length
      }
    } else {
      body = plainValues(dictEntries.length, (e) => numericRow(dictEntries[e]))
    }
    dictionaryPage = { kind: "dictionary", numValues: dictEntries.length, encoding: ENC_PLAIN, body }
    encodings.add(ENC_PLAIN)
    encodingStats.push([PAGE_DICTIONARY, ENC_PLAIN, 1])
    dict = undefined
  }

  const estimatedPageSize = (): number => {
    if (dict !== undefined) return (isUtf8 ? 1 : 0) + rleMaxSize(requiredBits(Math.max(0, dict.size - 1)), indices.length)
    if (isUtf8) return valueStart(pageFirstValue + pageValues) - valueStart(pageFirstValue)
    if (isBool) return (pageValues + 7) >> 3 // parquet-rs: the bit writer's bytes
    return pageValues * width
  }

  let valueOffset = 0
  const miniBatch = (lo: number, count: number): void => {
    const toWrite = nonNullIn(lo, count)
    if (col.nullable) {
      hist[0] += count - toWrite
      hist[1] += toWrite
      pageNulls += count - toWrite
    }
    pageRows += count
    if (dict !== undefined) {
      for (let k = valueOffset; k < valueOffset + toWrite; k++) {
        let key: DictKey
        // the bytes as a latin1 string: one char per byte, so equal keys are equal values
        if (isUtf8) key = v.stream.toString("latin1", valueStart(k) + 4, valueStart(k + 1))
        else if (v.type === "int32") key = v.values[numericRow(k)]
        else if (v.type === "float32") {
          // by bits, as parquet-rs hashes the value's bytes (-0 and +0, NaN payloads stay apart)
          f32[0] = v.values[numericRow(k)]
          key = f32Bits[0]
        } else {
          f64[0] = v.values[numericRow(k)]
          key = `${f64Bits[0]}:${f64Bits[1]}`
        }
        let ix = dict.get(key)
        if (ix === undefined) {
          ix = dict.size
          dict.set(key, ix)
          dictEntries.push(k)
          dictSize += isUtf8 ? valueStart(k + 1) - valueStart(k) : width
        }
        indices.push(ix)
      }
    }
    pageValues += toWrite
    valueOffset += toWrite
    pageLevels += count
    if (pageLevels > 0 && (pageRows >= ROW_COUNT_LIMIT || estimatedPageSize() >= PAGE_LIMIT)) addDataPage()
    if (dict !== undefined && dictSize >= DICT_LIMIT) {
      if (pageLevels > 0) addDataPage()
      writeDictionaryPage()
    }
  }

  /** parquet-rs `ByteBudgetChunker::pick_sub_batch_size` for this column. */
  const subBatchSize = (lo: number, count: number): number => {
    if (count === 0 || !isUtf8) return count
    const budget = dict !== undefined ? Math.max(0, DICT_LIMIT - dictSize) : PAGE_LIMIT
    const vals = nonNullIn(lo, count)
    if (vals === 0) return count
    let fit = vals
    if (valueStart(valueOffset + vals) - valueStart(valueOffset) > budget) {
      let cum = 0
      for (let i = 0; i < vals; i++) {
        cum += valueStart(valueOffset + i + 1) - valueStart(valueOffset + i)
        if (cum > budget) {
          fit = i + 1
          break
        }
      }
    }
    const levelsPer = vals === count ? fit : Math.max(1, Math.ceil((fit * count) / vals))
    return Math.min(count, Math.max(levelsPer, 1))
  }

  for (let lo = 0; lo < n; ) {
    const hi = Math.min(n, lo + base)
    const count = hi - lo
    const sub = subBatchSize(lo, count)
    if (sub >= count) miniBatch(lo, count)
    else for (let s = lo; s < hi; s += sub) miniBatch(s, Math.min(sub, hi - s))
    lo = hi
  }
  if (pageLevels > 0) addDataPage()
  if (dict !== undefined) writeDictionaryPage()

  return {
    column: col,
    dictionary: dictionaryPage,
    data,
    numValues: totalValues,
    nulls: columnNulls,
    stats: v.type === "utf8" ? utf8Stats(v) : numericStats(col, v, n),
    encodingStats,
    encodings: [...encodings].sort((a, b) => a - b),
    unencodedBytes: isUtf8 ? unencoded : undefined,
    defHistogram: col.nullable ? hist : undefined
  }
}

/** Lays out the pages of a row group (everything but compression). */
export const prepareRowGroup = (
  columns: ReadonlyArray<FastColumn>,
  values: ReadonlyArray<ColumnValues>,
  rows: number
): PreparedRowGroup => ({ rows, chunks: columns.map((c, i) => prepareChunk(c, values[i], rows)) })

/** Every page body of a row group, in file order (dictionary first within each chunk). */
export const pageBodies = (group: PreparedRowGroup): Array<Uint8Array> =>
  group.chunks.flatMap((c) => [...(c.dictionary === undefined ? [] : [c.dictionary.body]), ...c.data.map((p) => p.body)])

/** The compression worker (started on first use, shared by every writer of the process; see `zstdWorker.ts`). */
const compressor = workerClient(new URL("./zstdWorker.ts", import.meta.url), ZSTD_WORKER_TAG, "zstd worker")

const isBodies = (out: unknown): out is Array<Uint8Array> => Array.isArray(out) && out.every((b) => b instanceof Uint8Array)

/**
 * Compresses the page bodies as parquet-rs does (zstd level 1, one-shot), on the compression worker. The bodies
 * are copied into one buffer that is handed over (not cloned), so the caller may reuse them once this returns.
 */
export const compressPages = async (bodies: ReadonlyArray<Uint8Array>): Promise<Array<Uint8Array>> => {
  const sizes = bodies.map((b) => b.length)
  const packed = new Uint8Array(sizes.reduce((a, b) => a + b, 0))
  let at = 0
  for (const b of bodies) {
    packed.set(b, at)
    at += b.length
  }
  const out = await compressor.request({ packed, sizes }, [packed.buffer])
  if (!isBodies(out)) throw new Error("zstd worker: the reply holds no page bodies")
  return out
}

/** The same, on the calling thread. */
export const compressPagesSync = (bodies: ReadonlyArray<Uint8Array>): Array<Uint8Array> =>
  bodies.map((b) => zlib.zstdCompressSync(b, oneShotOptions(b.length)))

const pageHeader = (page: PendingPage, compressedSize: number): Uint8Array => {
  const w = new Writer()
  w.beginStruct()
  w.i32Field(1, page.kind === "data" ? PAGE_DATA : PAGE_DICTIONARY)
  w.i32Field(2, page.body.length)
  w.i32Field(3, compressedSize)
  if (page.kind === "data") {
    w.structField(5)
    w.i32Field(1, page.numValues)
    w.i32Field(2, page.encoding)
    w.i32Field(3, ENC_RLE)
    w.i32Field(4, ENC_RLE)
    w.endStruct()
  } else {
    w.structField(7)
    w.i32Field(1, page.numValues)
    w.i32Field(2, ENC_PLAIN)
    w.boolField(3, false)
    w.endStruct()
  }
  w.endStruct()
  return w.result()
}

const PHYSICAL_TYPE: Readonly<Record<FastColumnType, number>> = {
  int32: TYPE_INT32,
  float32: TYPE_FLOAT,
  float64: TYPE_DOUBLE,
  bool: TYPE_BOOLEAN,
  utf8: TYPE_BYTE_ARRAY
}

/** A row group ready to append at `position`: its bytes and its `RowGroup` Thrift struct (final offsets). */
export interface AssembledRowGroup {
  readonly parts: ReadonlyArray<Uint8Array>
  readonly byteLength: number
  readonly rowGroup: Uint8Array
}

const encoder = new TextEncoder()

/**
 * Puts a prepared row group together with its compressed page bodies (in `pageBodies` order) for the file
 * offset `position`: page headers, column metadata and the `RowGroup` struct as `shiftRowGroup` would leave
 * parquet-wasm's (ColumnChunk `file_offset` is parquet-rs's 0 plus the shift, i.e. `position - 4`).
 */
export const assembleRowGroup = (
  group: PreparedRowGroup,
  compressed: ReadonlyArray<Uint8Array>,
  position: number
): AssembledRowGroup => {
  const parts: Array<Uint8Array> = []
  let at = position
  let next = 0
  const metas: Array<{ chunk: PreparedChunk; dictOffset: number | undefined; dataOffset: number; uncompressed: number; compressedTotal: number }> = []
  for (const chunk of group.chunks) {
    const start = at
    let uncompressed = 0
    let compressedTotal = 0
    let dictOffset: number | undefined
    const put = (page: PendingPage): void => {
      const body = compressed[next++]
      const header = pageHeader(page, body.length)
      parts.push(header, body)
      at += header.length + body.length
      uncompressed += header.length + page.body.length
      compressedTotal += header.length + body.length
    }
    if (chunk.dictionary !== undefined) {
      dictOffset = start
      put(chunk.dictionary)
    }
    const dataOffset = at
    for (const page of chunk.data) put(page)
    metas.push({ chunk, dictOffset, dataOffset, uncompressed, compressedTotal })
  }

  const w = new Writer()
  w.beginStruct()
  w.structListField(1, metas.length)
  for (const m of metas) {
    const { chunk } = m
    w.beginStruct()
    w.i64Field(2, position - 4)
    w.structField(3)
    w.i32Field(1, PHYSICAL_TYPE[chunk.column.type])
    w.intListField(2, chunk.encodings)
    w.binaryListField(3, [encoder.encode(chunk.column.name)])
    w.i32Field(4, CODEC_ZSTD)
    w.i64Field(5, chunk.numValues)
    w.i64Field(6, m.uncompressed)
    w.i64Field(7, m.compressedTotal)
    w.i64Field(9, m.dataOffset)
    if (m.dictOffset !== undefined) w.i64Field(11, m.dictOffset)
    w.structField(12)
    const s = chunk.stats
    // the deprecated min/max only for a signed sort order (parquet-rs: not byte arrays, not booleans)
    const signed = chunk.column.type !== "utf8" && chunk.column.type !== "bool"
    if (signed && s.max !== undefined && s.min !== undefined) {
      w.binaryField(1, s.max)
      w.binaryField(2, s.min)
    }
    w.i64Field(3, chunk.nulls)
    if (s.max !== undefined && s.min !== undefined) {
      w.binaryField(5, s.max)
      w.binaryField(6, s.min)
    }
    w.boolField(7, s.maxExact)
    w.boolField(8, s.minExact)
    w.endStruct()
    w.structListField(13, chunk.encodingStats.length)
    for (const [pageType, encoding, count] of chunk.encodingStats) {
      w.beginStruct()
      w.i32Field(1, pageType)
      w.i32Field(2, encoding)
      w.i32Field(3, count)
      w.endStruct()
    }
    if (chunk.unencodedBytes !== undefined || chunk.defHistogram !== undefined) {
      w.structField(16)
      if (chunk.unencodedBytes !== undefined) w.i64Field(1, chunk.unencodedBytes)
      if (chunk.defHistogram !== undefined) w.intListField(3, chunk.defHistogram, true)
      w.endStruct()
    }
    w.endStruct() // ColumnMetaData
    w.endStruct() // ColumnChunk
  }
  w.i64Field(2, metas.reduce((s, m) => s + m.uncompressed, 0))
  w.i64Field(3, group.rows)
  w.i64Field(5, position)
  w.i64Field(6, metas.reduce((s, m) => s + m.compressedTotal, 0))
  w.endStruct()
  return { parts, byteLength: at - position, rowGroup: w.result() }
}
