/**
 * safetensors: the checkpoint format of Hugging Face snapshots, read and written without any Python.
 *
 * Layout: an 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { key: string } }`, then the raw
 * little-endian tensor bytes (offsets are relative to the first byte after the header).
 *
 * Every tensor comes back as a `HostTensor` (row-major `Float32Array`), whatever its stored dtype (F32, F16 and
 * BF16 are the ones seen in checkpoints; F64 and the integer types are converted too, e.g. an old `position_ids`
 * buffer). Reading never holds the file in memory: the header is read first, then each tensor's byte range is read
 * with `fs.readSync` — straight into the `Float32Array`'s own buffer for F32, in small reused chunks for 16-bit
 * types — so a 2.5 GB checkpoint costs its float32 size and nothing more.
 *
 * The reader validates before it allocates: header length against the file size, every `data_offsets` inside the
 * data section and equal to `prod(shape) × bytes(dtype)`, no two tensors overlapping. A truncated file or a header
 * that lies fails with a `CheckpointError` naming the file and the tensor.
 *
 * Writers produce what `safetensors`/`transformers` read: the header padded with spaces to a multiple of 8 bytes,
 * tensors in name order (so the same tensors give the same bytes), `__metadata__.format = "pt"` by default, written
 * to a temporary name, fsynced and renamed into place. Rounding to F16/BF16 is round-to-nearest-even.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { CheckpointError } from "./errors.ts"
import { describeError } from "../errors/describe.ts"

/** A tensor in host memory: row-major float32 values and the shape they fill. */
export interface HostTensor {
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

/** The dtypes this module writes. */
export type SafetensorsDtype = "F32" | "F16" | "BF16"

/** One tensor of a safetensors header; `begin`/`end` are byte offsets relative to the start of the data section. */
export interface TensorEntry {
  readonly name: string
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly begin: number
  readonly end: number
}

/** A parsed safetensors header. `dataStart` is the absolute file offset of the data section (8 + N). */
export interface SafetensorsHeader {
  readonly entries: ReadonlyArray<TensorEntry>
  readonly metadata: Readonly<Record<string, string>>
  readonly dataStart: number
}

/** The file holding a single-file checkpoint inside a snapshot folder. */
export const SINGLE_FILE = "model.safetensors"
/** The index of a sharded checkpoint: `{ metadata: { total_size }, weight_map: { tensor: shard file } }`. */
export const INDEX_FILE = "model.safetensors.index.json"

/** Bytes per element of every dtype the reader accepts. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1
}

/** The safetensors format caps the header at 100 MB; anything larger is a corrupt length field. */
const MAX_HEADER_BYTES = 100_000_000
/** Chunk used to stream 16-bit tensors (elements are converted chunk by chunk). */
const CHUNK_BYTES = 8 * 1024 * 1024
/** Node's single read/write limit is 2 GiB − 1; stay well below. */
const MAX_IO_BYTES = 1024 * 1024 * 1024

const fail = (file: string, message: string, tensor?: string): CheckpointError =>
  new CheckpointError(tensor === undefined ? { file, message } : { file, tensor, message })

/** Run a synchronous body, turning anything it throws into a `CheckpointError` for `file`. */
const attempt = <A>(file: string, body: () => A): Effect.Effect<A, CheckpointError> =>
  Effect.try({
    try: body,
    catch: (e) => (e instanceof CheckpointError ? e : fail(file, describeError(e)))
  })

const assertLittleEndian = (file: string): void => {
  if (os.endianness() !== "LE") throw fail(file, "safetensors data is little-endian; this host is big-endian")
}

const product = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

// ---------------------------------------------------------------------------------------------------------------
// Number conversion (exported for tests and for callers that hold raw 16-bit data)

const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const frac = h & 0x3ff
    if (exp === 0) t[h] = sign * frac * 2 ** -24
    else if (exp === 31) t[h] = frac === 0 ? sign * Infinity : NaN
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15)
  }
  return t
})()

/** The float value of an IEEE binary16 bit pattern. */
export const f16BitsToF32 = (bits: number): number => F16_TABLE[bits & 0xffff]

/** The float value of a bfloat16 bit pattern. */
export const bf16BitsToF32 = (bits: number): number => {
  const u = new Uint32Array([(bits & 0xffff) << 16])
  return new Float32Array(u.buffer)[0]
}

const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

/** The binary16 bit pattern nearest to `x` (round to nearest, ties to even; overflow to ±Infinity, NaN kept). */
export const f32ToF16Bits = (x: number): number => {
  scratchF32[0] = x
  return f32BitsToF16Bits(scratchU32[0])
}

/** `f32ToF16Bits` on the raw float32 bit pattern `f` (an unsigned 32-bit integer). */
const f32BitsToF16Bits = (f: number): number => {
  const sign = (f >>> 16) & 0x8000
  const exp = (f >>> 23) & 0xff
  const mant = f & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  // Unbiased exponent, rebiased for binary16.
  const e = exp - 127 + 15
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    // Subnormal half (or zero): value = m × 2^-24 with m an integer in [0, 1024].
    if (e < -10) return sign
    const m = mant | 0x800000 // implicit leading 1
    const shift = 14 - e // 24-bit significand → half subnormal units
    const half = 1 << (shift - 1)
    let r = m >>> shift
    const rem = m & ((1 << shift) - 1)
    if (rem > half || (rem === half && (r & 1) === 1)) r += 1
    return sign | r // r may reach 0x400: that is the smallest normal, which is the right encoding
  }
  let h = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1 // a carry into the exponent is correct (up to Inf)
  return sign | h
}

/** The bfloat16 bit pattern nearest to `x` (round to nearest, ties to even; NaN stays a quiet NaN). */
export const f32ToBf16Bits = (x: number): number => {
  scratchF32[0] = x
  return f32BitsToBf16Bits(scratchU32[0])
}

/** `f32ToBf16Bits` on the raw float32 bit pattern `f`. */
const f32BitsToBf16Bits = (f: number): number => {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) return ((f >>> 16) & 0x8000) | 0x7fc0
  const lsb = (f >>> 16) & 1
  return ((f + 0x7fff + lsb) >>> 16) & 0xffff
}

/** Convert `count` little-endian elements of `dtype` from `src` (8-byte aligned) into `dst` from element `at`. */
const convertInto = (dtype: string, src: Buffer, count: number, dst: Float32Array, at: number): void => {
  switch (dtype) {
    case "F16": {
      const in16 = new Uint16Array(src.buffer, src.byteOffset, count)
      for (let i = 0; i < count; i++) dst[at + i] = F16_TABLE[in16[i]]
      return
    }
    case "BF16": {
      const in16 = new Uint16Array(src.buffer, src.byteOffset, count)
      const out = new Uint32Array(dst.buffer, dst.byteOffset + at * 4, count)
      for (let i = 0; i < count; i++) out[i] = in16[i] << 16
      return
    }
    case "F32":
      for (let i = 0; i < count; i++) dst[at + i] = src.readFloatLE(4 * i)
      return
    case "F64":
      for (let i = 0; i < count; i++) dst[at + i] = src.readDoubleLE(8 * i)
      return
    case "I64":
      for (let i = 0; i < count; i++) dst[at + i] = Number(src.readBigInt64LE(8 * i))
      return
    case "I32":
      for (let i = 0; i < count; i++) dst[at + i] = src.readInt32LE(4 * i)
      return
    case "I16":
      for (let i = 0; i < count; i++) dst[at + i] = src.readInt16LE(2 * i)
      return
    case "I8":
      for (let i = 0; i < count; i++) dst[at + i] = src.readInt8(i)
      return
    case "U8":
    case "BOOL":
      for (let i = 0; i < count; i++) dst[at + i] = src[i]
      return
    default:
      throw new Error(`unsupported dtype ${dtype}`)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

/** Read exactly `length` bytes at `position` into `target[offset..]`, or throw naming the file/tensor. */
const readExactly = (
  fd: number,
  file: string,
  target: Uint8Array,
  offset: number,
  length: number,
  position: number,
  tensor?: string
): void => {
  let done = 0
  while (done < length) {
    const want = Math.min(length - done, MAX_IO_BYTES)
    const n = fs.readSync(fd, target, offset + done, want, position + done)
    if (n === 0) {
      throw fail(file, `unexpected end of file at byte ${position + done} (wanted ${length - done} more bytes)`, tensor)
    }
    done += n
  }
}

const isNonNegativeInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0

/** Parse and validate the header of an open file. */
const readHeaderFd = (fd: number, file: string): SafetensorsHeader => {
  const size = fs.fstatSync(fd).size
  if (size < 8) throw fail(file, `not a safetensors file: ${size} bytes, shorter than the 8-byte header length`)
  const lenBuf = Buffer.alloc(8)
  readExactly(fd, file, lenBuf, 0, 8, 0)
  const n64 = lenBuf.readBigUInt64LE(0)
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw fail(file, `header length ${n64} exceeds the safetensors limit of ${MAX_HEADER_BYTES} bytes (corrupt file?)`)
  }
  const n = Number(n64)
  if (8 + n > size) {
    throw fail(file, `header length ${n} runs past the end of the file (${size} bytes): the file is truncated`)
  }
  const headerBuf = Buffer.alloc(n)
  readExactly(fd, file, headerBuf, 0, n, 8)
  let parsed: unknown
  try {
    parsed = JSON.parse(headerBuf.toString("utf8"))
  } catch (e) {
    throw fail(file, `header is not valid JSON: ${describeError(e)}`)
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw fail(file, "header is not a JSON object")
  }
  const dataStart = 8 + n
  const dataLength = size - dataStart
  const entries: Array<TensorEntry> = []
  let metadata: Record<string, string> = {}
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw fail(file, "__metadata__ is not an object")
      const md: Record<string, string> = {}
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw fail(file, `__metadata__.${k} is not a string`)
        md[k] = v
      }
      metadata = md
      continue
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw fail(file, "header entry is not an object", name)
    const { dtype, shape, data_offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    if (typeof dtype !== "string" || DTYPE_BYTES[dtype] === undefined) {
      throw fail(file, `unsupported dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`, name)
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      throw fail(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name)
    }
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every(isNonNegativeInt)) {
      throw fail(file, `data_offsets ${JSON.stringify(data_offsets)} is not a pair of non-negative integers`, name)
    }
    const [begin, end] = data_offsets as [number, number]
    if (end < begin) throw fail(file, `data_offsets [${begin}, ${end}] end before they begin`, name)
    const expected = product(shape as Array<number>) * DTYPE_BYTES[dtype]
    if (end - begin !== expected) {
      throw fail(
        file,
        `header says ${end - begin} bytes (data_offsets [${begin}, ${end}]) but ${dtype}${JSON.stringify(shape)} needs ${expected}`,
        name
      )
    }
    if (end > dataLength) {
      throw fail(
        file,
        `data ends at byte ${dataStart + end} but the file has ${size} bytes: the file is truncated or the header lies`,
        name
      )
    }
    entries.push({ name, dtype, shape: shape as Array<number>, begin, end })
  }
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]
    const cur = byOffset[i]
    if (cur.begin < prev.end && cur.end > cur.begin) {
      throw fail(file, `data [${cur.begin}, ${cur.end}) overlaps tensor ${prev.name} [${prev.begin}, ${prev.end})`, cur.name)
    }
  }
  return { entries, metadata, dataStart }
}

/** Read one tensor's bytes and convert them to float32. */
const readTensorFd = (fd: number, file: string, header: SafetensorsHeader, entry: TensorEntry): HostTensor => {
  const count = product(entry.shape)
  const data = new Float32Array(count)
  const bytes = DTYPE_BYTES[entry.dtype]
  const position = header.dataStart + entry.begin
  if (entry.dtype === "F32") {
    readExactly(fd, file, new Uint8Array(data.buffer, data.byteOffset, count * 4), 0, count * 4, position, entry.name)
  } else {
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / bytes))
    // A fresh (not pooled) buffer: its offset is 0, so typed views of any element size are aligned.
    const chunk = Buffer.from(new ArrayBuffer(Math.min(count, perChunk) * bytes))
    for (let at = 0; at < count; at += perChunk) {
      const k = Math.min(perChunk, count - at)
      readExactly(fd, file, chunk, 0, k * bytes, position + at * bytes, entry.name)
      convertInto(entry.dtype, chunk, k, data, at)
    }
  }
  return { shape: [...entry.shape], data }
}

const withFd = <A>(file: string, flags: string, body: (fd: number) => A): A => {
  let fd: number
  try {
    fd = fs.openSync(file, flags)
  } catch (e) {
    throw fail(file, `cannot open: ${describeError(e)}`)
  }
  try {
    return body(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Synchronous core of `readSafetensorsHeader`; throws `CheckpointError`. */
export const readSafetensorsHeaderSync = (file: string): SafetensorsHeader => withFd(file, "r", (fd) => readHeaderFd(fd, file))

/** Synchronous core of `readSafetensorsFile`; throws `CheckpointError`. */
export const readSafetensorsFileSync = (
  file: string,
  options?: { readonly names?: ReadonlyArray<string> }
): Map<string, HostTensor> => {
  assertLittleEndian(file)
  return withFd(file, "r", (fd) => {
    const header = readHeaderFd(fd, file)
    const byName = new Map(header.entries.map((e) => [e.name, e]))
    let wanted: ReadonlyArray<TensorEntry>
    if (options?.names !== undefined) {
      const missing = options.names.filter((n) => !byName.has(n))
      if (missing.length > 0) {
        throw fail(file, `tensor not in checkpoint (missing: ${missing.join(", ")})`, missing[0])
      }
      wanted = [...new Set(options.names)].map((n) => byName.get(n) as TensorEntry)
    } else {
      wanted = header.entries
    }
    const out = new Map<string, HostTensor>()
    for (const entry of wanted) out.set(entry.name, readTensorFd(fd, file, header, entry))
    return out
  })
}

/** The header of a safetensors file: tensor entries (in header order), `__metadata__`, and where the data starts. */
export const readSafetensorsHeader = (
  file: string
): Effect.Effect<SafetensorsHeader, CheckpointError> => attempt(file, () => readSafetensorsHeaderSync(file))

/**
 * All tensors of one safetensors file as float32, or only `names` (each must exist). Peak memory is the float32
 * size of what is loaded plus one 8 MB chunk.
 */
export const readSafetensorsFile = (
  file: string,
  options?: { readonly names?: ReadonlyArray<string> }
): Effect.Effect<Map<string, HostTensor>, CheckpointError> => attempt(file, () => readSafetensorsFileSync(file, options))

/** Read and check `model.safetensors.index.json`: tensor name → shard file name. */
const readIndex = (indexPath: string): Map<string, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(fs.readFileSync(indexPath, "utf8"))
  } catch (e) {
    throw fail(indexPath, `cannot read the shard index: ${describeError(e)}`)
  }
  const weightMap =
    parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? (parsed as { weight_map?: unknown }).weight_map
      : undefined
  if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
    throw fail(indexPath, "the shard index has no weight_map object")
  }
  const out = new Map<string, string>()
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== "string" || shard.length === 0 || shard.includes("/") || shard.includes("\\")) {
      throw fail(indexPath, `weight_map entry is not a plain shard file name: ${JSON.stringify(shard)}`, name)
    }
    out.set(name, shard)
  }
  return out
}

/** Synchronous core of `loadSafetensorsDir`; throws `CheckpointError`. */
export const loadSafetensorsDirSync = (
  dir: string,
  options?: { readonly names?: ReadonlyArray<string> }
): Map<string, HostTensor> => {
  const single = path.join(dir, SINGLE_FILE)
  if (fs.existsSync(single)) return readSafetensorsFileSync(single, options)
  const indexPath = path.join(dir, INDEX_FILE)
  if (!fs.existsSync(indexPath)) {
    throw fail(dir, `no checkpoint in this folder: neither ${SINGLE_FILE} nor ${INDEX_FILE} exists`)
  }
  const weightMap = readIndex(indexPath)
  const names = options?.names ?? [...weightMap.keys()]
  const byShard = new Map<string, Array<string>>()
  for (const name of names) {
    const shard = weightMap.get(name)
    if (shard === undefined) throw fail(indexPath, "tensor not in the shard index's weight_map", name)
    const list = byShard.get(shard)
    if (list === undefined) byShard.set(shard, [name])
    else list.push(name)
  }
  for (const [shard, shardNames] of byShard) {
    const shardPath = path.join(dir, shard)
    if (!fs.existsSync(shardPath)) {
      throw fail(shardPath, `shard named by ${INDEX_FILE} is missing (it should hold ${shardNames.length} tensors)`, shardNames[0])
    }
  }
  const out = new Map<string, HostTensor>()
  for (const [shard, shardNames] of [...byShard].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const part = readSafetensorsFileSync(path.join(dir, shard), { names: shardNames })
    for (const [k, v] of part) out.set(k, v)
  }
  // Keep the caller's order (or the index's) rather than the shard order.
  return new Map(names.map((n) => [n, out.get(n) as HostTensor]))
}

/**
 * The checkpoint of a Hugging Face snapshot folder: `model.safetensors` if present, else the shards listed by
 * `model.safetensors.index.json` (only the shards holding the requested `names` are opened). A missing shard or a
 * name absent from the index is a `CheckpointError` naming it.
 */
export const loadSafetensorsDir = (
  dir: string,
  options?: { readonly names?: ReadonlyArray<string> }
): Effect.Effect<Map<string, HostTensor>, CheckpointError> => attempt(dir, () => loadSafetensorsDirSync(dir, options))

// ---------------------------------------------------------------------------------------------------------------
// Writing

const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const dtypeBytes = (dtype: SafetensorsDtype): number => DTYPE_BYTES[dtype]

const checkTensor = (file: string, name: string, t: HostTensor): void => {
  if (name === "__metadata__") throw fail(file, "a tensor cannot be called __metadata__", name)
  if (!t.shape.every(isNonNegativeInt)) throw fail(file, `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`, name)
  if (product(t.shape) !== t.data.length) {
    throw fail(file, `shape ${JSON.stringify(t.shape)} holds ${product(t.shape)} values but the data has ${t.data.length}`, name)
  }
}

/** Serialise the header JSON, padded with spaces so the data section starts at a multiple of 8. */
const encodeHeader = (
  names: ReadonlyArray<string>,
  tensors: ReadonlyMap<string, HostTensor>,
  dtype: SafetensorsDtype,
  metadata: Readonly<Record<string, string>>
): Buffer => {
  const header: Record<string, unknown> = {}
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata
  let offset = 0
  for (const name of names) {
    const t = tensors.get(name) as HostTensor
    const size = t.data.length * dtypeBytes(dtype)
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + size] }
    offset += size
  }
  const json = Buffer.from(JSON.stringify(header), "utf8")
  const padded = Math.ceil(json.length / 8) * 8
  const out = Buffer.alloc(8 + padded, 0x20)
  out.writeBigUInt64LE(BigInt(padded), 0)
  json.copy(out, 8)
  return out
}

const writeAll = (fd: number, buf: Uint8Array): void => {
  let done = 0
  while (done < buf.length) {
    done += fs.writeSync(fd, buf, done, Math.min(buf.length - done, MAX_IO_BYTES))
  }
}

/** Write one tensor's data in `dtype`. */
const writeTensorData = (fd: number, t: HostTensor, dtype: SafetensorsDtype): void => {
  const n = t.data.length
  if (dtype === "F32") {
    writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, n * 4))
    return
  }
  const perChunk = CHUNK_BYTES / 2
  const out16 = new Uint16Array(Math.min(n, perChunk))
  const bytes = new Uint8Array(out16.buffer)
  const in32 = new Uint32Array(t.data.buffer, t.data.byteOffset, n)
  const toBits = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits
  for (let at = 0; at < n; at += perChunk) {
    const k = Math.min(perChunk, n - at)
    for (let i = 0; i < k; i++) out16[i] = toBits(in32[at + i])
    writeAll(fd, bytes.subarray(0, k * 2))
  }
}

/** Write `names` of `tensors` to `file` atomically (temporary name, fsync, rename). */
const writeFileSync = (
  file: string,
  names: ReadonlyArray<string>,
  tensors: ReadonlyMap<string, HostTensor>,
  dtype: SafetensorsDtype,
  metadata: Readonly<Record<string, string>>
): void => {
  assertLittleEndian(file)
  for (const name of names) checkTensor(file, name, tensors.get(name) as HostTensor)
  const tmp = `${file}.tmp-${process.pid}`
  try {
    withFd(tmp, "w", (fd) => {
      writeAll(fd, encodeHeader(names, tensors, dtype, metadata))
      for (const name of names) writeTensorData(fd, tensors.get(name) as HostTensor, dtype)
      fs.fsyncSync(fd)
    })
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e instanceof CheckpointError ? e : fail(file, `cannot write: ${describeError(e)}`)
  }
}

const checkDtype = (file: string, dtype: string): SafetensorsDtype => {
  if (dtype === "F32" || dtype === "F16" || dtype === "BF16") return dtype
  throw fail(file, `cannot write dtype ${dtype} (supported: F32, F16, BF16)`)
}

/**
 * Write `tensors` to one safetensors file in `dtype` (default F32). Tensors are stored in name order; the header
 * carries `metadata` merged over `{ format: "pt" }` (what `transformers` expects).
 */
export const writeSafetensorsFile = (
  file: string,
  tensors: ReadonlyMap<string, HostTensor>,
  options?: { readonly dtype?: SafetensorsDtype; readonly metadata?: Readonly<Record<string, string>> }
): Effect.Effect<void, CheckpointError> =>
  attempt(file, () => {
    const dtype = checkDtype(file, options?.dtype ?? "F32")
    const names = [...tensors.keys()].sort(compareNames)
    writeFileSync(file, names, tensors, dtype, { format: "pt", ...options?.metadata })
  })

const SHARD_PATTERN = /^model-\d{5}-of-\d{5}\.safetensors$/

/**
 * Write `tensors` into `dir` the way `save_pretrained` does: one `model.safetensors` when everything fits in
 * `maxShardBytes`, otherwise `model-0000i-of-0000n.safetensors` shards (filled greedily in name order; a tensor larger
 * than the limit gets a shard of its own) plus `model.safetensors.index.json`. Checkpoint files of an earlier layout
 * left in `dir` are removed, so the folder always holds exactly one checkpoint.
 */
export const writeShardedSafetensors = (
  dir: string,
  tensors: ReadonlyMap<string, HostTensor>,
  options: { readonly maxShardBytes: number; readonly dtype?: SafetensorsDtype }
): Effect.Effect<void, CheckpointError> =>
  attempt(dir, () => {
    const dtype = checkDtype(dir, options.dtype ?? "F32")
    if (!(options.maxShardBytes > 0)) throw fail(dir, `maxShardBytes must be positive (got ${options.maxShardBytes})`)
    fs.mkdirSync(dir, { recursive: true })
    const names = [...tensors.keys()].sort(compareNames)
    const shards: Array<Array<string>> = []
    let current: Array<string> = []
    let currentBytes = 0
    let totalSize = 0
    for (const name of names) {
      const t = tensors.get(name) as HostTensor
      checkTensor(dir, name, t)
      const size = t.data.length * dtypeBytes(dtype)
      totalSize += size
      if (current.length > 0 && currentBytes + size > options.maxShardBytes) {
        shards.push(current)
        current = []
        currentBytes = 0
      }
      current.push(name)
      currentBytes += size
    }
    if (current.length > 0 || shards.length === 0) shards.push(current)

    const written = new Set<string>()
    if (shards.length === 1) {
      writeFileSync(path.join(dir, SINGLE_FILE), shards[0], tensors, dtype, { format: "pt" })
      written.add(SINGLE_FILE)
    } else {
      const weightMap: Record<string, string> = {}
      const n = shards.length
      shards.forEach((shardNames, i) => {
        const shardFile = `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`
        writeFileSync(path.join(dir, shardFile), shardNames, tensors, dtype, { format: "pt" })
        written.add(shardFile)
        for (const name of shardNames) weightMap[name] = shardFile
      })
      const index = { metadata: { total_size: totalSize }, weight_map: weightMap }
      const indexPath = path.join(dir, INDEX_FILE)
      const tmp = `${indexPath}.tmp-${process.pid}`
      withFd(tmp, "w", (fd) => {
        writeAll(fd, Buffer.from(`${JSON.stringify(index, null, 2)}\n`, "utf8"))
        fs.fsyncSync(fd)
      })
      fs.renameSync(tmp, indexPath)
      written.add(INDEX_FILE)
    }
    for (const entry of fs.readdirSync(dir)) {
      const stale = entry === SINGLE_FILE || entry === INDEX_FILE || SHARD_PATTERN.test(entry)
      if (stale && !written.has(entry)) fs.rmSync(path.join(dir, entry), { force: true })
    }
  })
