/**
 * A minimal random-access zip reader: reads the central directory (zip64 included), then streams any entry with
 * `zlib.createInflateRaw` (deflate) or as-is (stored), checking its CRC-32 and size at the end. Random access lets
 * the Moses reader stream two entries (`X.en`, `X.km`) side by side without unpacking either to disk or memory.
 *
 * Anything structurally wrong (no end-of-central-directory record, a bad signature, an encrypted entry, an
 * unsupported method, a CRC mismatch) is an `InputFileError` naming the archive, the entry and the byte offset.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { Effect } from "effect"
import { InputFileError } from "../pipeline/errors.ts"
import { describeError } from "../errors/describe.ts"
import { type ByteSource, openRange, toInputFileError } from "./bytes.ts"

export interface ZipEntry {
  readonly name: string
  readonly method: number
  readonly crc32: number
  readonly compressedSize: number
  readonly uncompressedSize: number
  readonly localHeaderOffset: number
  readonly encrypted: boolean
}

const EOCD_SIG = 0x06054b50
const ZIP64_LOCATOR_SIG = 0x07064b50
const ZIP64_EOCD_SIG = 0x06064b50
const CENTRAL_SIG = 0x02014b50
const LOCAL_SIG = 0x04034b50

const readAt = (fd: number, position: number, length: number): Buffer => {
  const buf = Buffer.alloc(length)
  const got = fs.readSync(fd, buf, 0, length, position)
  return buf.subarray(0, got)
}

class ZipFormatError extends Error {
  readonly byte: number
  constructor(message: string, byte: number) {
    super(message)
    this.byte = byte
  }
}

const u64 = (buf: Buffer, at: number): number => Number(buf.readBigUInt64LE(at))

const parseCentralDirectory = (fd: number, size: number): Array<ZipEntry> => {
  const tailLength = Math.min(size, 65_557)
  const tailStart = size - tailLength
  const tail = readAt(fd, tailStart, tailLength)
  let eocd = -1
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) {
      eocd = i
      break
    }
  }
  if (eocd < 0) {
    throw new ZipFormatError("no end-of-central-directory record (not a zip archive, or truncated)", size)
  }
  let count = tail.readUInt16LE(eocd + 10)
  let cdSize = tail.readUInt32LE(eocd + 12)
  let cdOffset = tail.readUInt32LE(eocd + 16)
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locatorAt = tailStart + eocd - 20
    const locator = locatorAt >= 0 ? readAt(fd, locatorAt, 20) : Buffer.alloc(0)
    if (locator.length < 20 || locator.readUInt32LE(0) !== ZIP64_LOCATOR_SIG) {
      throw new ZipFormatError("zip64 end-of-central-directory locator missing", Math.max(0, locatorAt))
    }
    const z64At = u64(locator, 8)
    const z64 = readAt(fd, z64At, 56)
    if (z64.length < 56 || z64.readUInt32LE(0) !== ZIP64_EOCD_SIG) {
      throw new ZipFormatError("bad zip64 end-of-central-directory record", z64At)
    }
    count = u64(z64, 32)
    cdSize = u64(z64, 40)
    cdOffset = u64(z64, 48)
  }
  if (cdOffset + cdSize > size) {
    throw new ZipFormatError(`central directory (offset ${cdOffset}, ${cdSize} bytes) lies past the end of the file`, cdOffset)
  }
  const cd = readAt(fd, cdOffset, cdSize)
  const entries: Array<ZipEntry> = []
  let at = 0
  for (let k = 0; k < count; k++) {
    if (at + 46 > cd.length || cd.readUInt32LE(at) !== CENTRAL_SIG) {
      throw new ZipFormatError(`bad central directory entry #${k + 1}`, cdOffset + at)
    }
    const flags = cd.readUInt16LE(at + 8)
    const method = cd.readUInt16LE(at + 10)
    const crc32 = cd.readUInt32LE(at + 16)
    let compressedSize = cd.readUInt32LE(at + 20)
    let uncompressedSize = cd.readUInt32LE(at + 24)
    const nameLength = cd.readUInt16LE(at + 28)
    const extraLength = cd.readUInt16LE(at + 30)
    const commentLength = cd.readUInt16LE(at + 32)
    let localHeaderOffset = cd.readUInt32LE(at + 42)
    const name = cd.toString(flags & 0x800 ? "utf8" : "latin1", at + 46, at + 46 + nameLength)
    // zip64 extended information: only the fields that are 0xFFFFFFFF in the record are present, in this order.
    let extra = at + 46 + nameLength
    const extraEnd = extra + extraLength
    while (extra + 4 <= extraEnd) {
      const id = cd.readUInt16LE(extra)
      const len = cd.readUInt16LE(extra + 2)
      if (id === 0x0001) {
        let p = extra + 4
        if (uncompressedSize === 0xffffffff) {
          uncompressedSize = u64(cd, p)
          p += 8
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(cd, p)
          p += 8
        }
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(cd, p)
      }
      extra += 4 + len
    }
    entries.push({ name, method, crc32, compressedSize, uncompressedSize, localHeaderOffset, encrypted: (flags & 1) !== 0 })
    at = extraEnd + commentLength
  }
  return entries
}

/** The entries of a zip archive (files only, folders left out). */
export const listZip = Effect.fn("zip.list")(function*(file: string) {
  return yield* Effect.try({
    try: () => {
      const fd = fs.openSync(file, "r")
      try {
        const size = fs.fstatSync(fd).size
        return parseCentralDirectory(fd, size).filter((e) => !e.name.endsWith("/"))
      } finally {
        fs.closeSync(fd)
      }
    },
    catch: (cause) =>
      cause instanceof ZipFormatError
        ? new InputFileError({ file, message: `unreadable zip archive ${path.basename(file)}: ${cause.message}`, byte: cause.byte })
        : toInputFileError(file, cause, `unreadable zip archive ${path.basename(file)}`)
  })
})

async function* entryBytes(file: string, entry: ZipEntry, label: string): AsyncGenerator<Buffer> {
  if (entry.encrypted) throw new InputFileError({ file, message: `${label}: encrypted zip entries are not supported` })
  if (entry.method !== 0 && entry.method !== 8) {
    throw new InputFileError({ file, message: `${label}: unsupported zip compression method ${entry.method} (only stored and deflate)` })
  }
  let dataStart: number
  try {
    const fd = fs.openSync(file, "r")
    try {
      const local = readAt(fd, entry.localHeaderOffset, 30)
      if (local.length < 30 || local.readUInt32LE(0) !== LOCAL_SIG) {
        throw new InputFileError({ file, message: `${label}: bad local file header`, byte: entry.localHeaderOffset })
      }
      dataStart = entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28)
    } finally {
      fs.closeSync(fd)
    }
  } catch (cause) {
    throw toInputFileError(file, cause, `${label}: cannot read the archive`)
  }
  let crc = 0
  let total = 0
  if (entry.compressedSize === 0) {
    // an empty entry: nothing to stream
  } else {
    const { stream, counter } = openRange(file, dataStart, dataStart + entry.compressedSize - 1)
    const bytes = entry.method === 0 ? stream : stream.pipe(zlib.createInflateRaw({ chunkSize: 1 << 16 }))
    if (entry.method === 8) stream.on("error", (e) => bytes.destroy(e))
    try {
      for await (const raw of bytes) {
        const chunk = raw as Buffer
        crc = zlib.crc32(chunk, crc)
        total += chunk.length
        yield chunk
      }
    } catch (cause) {
      throw new InputFileError({
        file,
        message: `${label}: corrupt zip entry data after ${counter.bytes} compressed bytes: ${describeError(cause)}`,
        byte: dataStart + counter.bytes
      })
    } finally {
      stream.destroy()
    }
  }
  if (total !== entry.uncompressedSize || (crc >>> 0) !== (entry.crc32 >>> 0)) {
    throw new InputFileError({
      file,
      message: `${label}: corrupt zip entry (expected ${entry.uncompressedSize} bytes with CRC ${entry.crc32.toString(16)}, ` +
        `got ${total} bytes with CRC ${(crc >>> 0).toString(16)})`,
      byte: dataStart
    })
  }
}

/** A byte source for one entry of a zip archive. */
export const zipEntrySource = (file: string, entry: ZipEntry): ByteSource => {
  const label = `${path.basename(file)}!${entry.name}`
  return { file, label, open: () => entryBytes(file, entry, label) }
}
