/**
 * Byte sources: a corpus file read as a stream of Buffers, transparently decompressed when it is gzip (`.gz`) or
 * xz (`.xz`, via the WebAssembly decoder of `xz-decompress`). Compression is recognised by magic bytes, not by the
 * file name. Nothing here holds more than one chunk (64 KiB) in memory.
 *
 * Failures inside the stream are thrown as `InputFileError` naming the file and the compressed byte offset reached,
 * so a truncated `.gz`/`.xz` fails the stage with a message that says where.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Readable } from "node:stream"
import type { ReadableStream as WebReadableStream } from "node:stream/web"
import * as zlib from "node:zlib"
import { Effect } from "effect"
import xzDecompress from "xz-decompress"
import { InputFileError } from "../pipeline/errors.ts"
import { describeError } from "../errors/describe.ts"

export type Compression = "none" | "gzip" | "xz"
export type Container = Compression | "zip" | "parquet"

/** A readable stream of bytes with a label for messages (`file.zip!entry`, `file.gz`). */
export interface ByteSource {
  /** The file on disk. */
  readonly file: string
  /** Short name used in quarantine rows and origins: the base name, plus `!entry` inside an archive. */
  readonly label: string
  /**
   * Opens a fresh stream of the (decompressed) bytes, in chunks of about `chunkSize` bytes (default 64 KiB; the
   * byte-level TSV reader asks for 1 MiB, which costs far fewer reads).
   */
  readonly open: (chunkSize?: number) => AsyncIterable<Buffer>
  /**
   * Plain (uncompressed) files only: the bytes read into one reused buffer, each chunk valid only until the next
   * is asked for (no garbage per chunk). The byte-level TSV reader copies what it keeps.
   */
  readonly openTransient?: (chunkSize: number) => AsyncIterable<Buffer>
}

const CHUNK = 1 << 16

/** Converts anything thrown while reading `file` into an `InputFileError` (an `InputFileError` passes through). */
export const toInputFileError = (file: string, cause: unknown, what = "read failed"): InputFileError =>
  cause instanceof InputFileError ? cause : new InputFileError({ file, message: `${what}: ${describeError(cause)}` })

/** The first `n` bytes of a file (fewer when it is shorter). */
export const readHead = Effect.fn("bytes.readHead")(function*(file: string, n = 4096) {
  return yield* Effect.try({
    try: () => {
      const fd = fs.openSync(file, "r")
      try {
        const buf = Buffer.alloc(n)
        const got = fs.readSync(fd, buf, 0, n, 0)
        return buf.subarray(0, got)
      } finally {
        fs.closeSync(fd)
      }
    },
    catch: (cause) => toInputFileError(file, cause, "cannot open corpus file")
  })
})

/** What the first bytes say the file is. */
export const sniffContainer = (head: Uint8Array): Container => {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip"
  if (
    head.length >= 6 && head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 &&
    head[4] === 0x5a && head[5] === 0x00
  ) return "xz"
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05)) return "zip"
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x41 && head[2] === 0x52 && head[3] === 0x31) {
    return "parquet"
  }
  return "none"
}

/** Counts the bytes flowing through a Node stream (for error positions). */
const countingRead = (file: string, start?: number, end?: number, chunkSize = CHUNK) => {
  const counter = { bytes: 0 }
  const stream = fs.createReadStream(file, { highWaterMark: chunkSize, start, end })
  stream.on("data", (chunk: string | Buffer) => {
    counter.bytes += chunk.length
  })
  return { stream, counter }
}

/** Decompresses a Node byte stream of `compression` into Buffers; errors name `label` and the byte offset. */
export async function* decompress(
  file: string,
  label: string,
  input: Readable,
  counter: { readonly bytes: number },
  compression: Compression,
  chunkSize = CHUNK
): AsyncGenerator<Buffer> {
  if (compression === "none") {
    try {
      for await (const chunk of input) yield chunk as Buffer
    } catch (cause) {
      throw new InputFileError({ file, message: `${label}: read failed: ${describeError(cause)}`, byte: counter.bytes })
    }
    return
  }
  let out: Readable
  if (compression === "gzip") {
    const gunzip = zlib.createGunzip({ chunkSize })
    input.on("error", (e) => gunzip.destroy(e))
    out = input.pipe(gunzip)
  } else {
    const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>
    const xz = new xzDecompress.XzReadableStream(web)
    out = Readable.fromWeb(xz as unknown as WebReadableStream<Uint8Array>)
  }
  let produced = 0
  try {
    for await (const chunk of out) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array)
      produced += buf.length
      yield buf
    }
  } catch (cause) {
    const kind = compression === "gzip" ? "gzip" : "xz"
    throw new InputFileError({
      file,
      message: `${label}: truncated or corrupt ${kind} stream after ${counter.bytes} compressed bytes ` +
        `(${produced} bytes decompressed): ${describeError(cause)}`,
      byte: counter.bytes
    })
  } finally {
    input.destroy()
  }
}

/** Reads a plain file into one reused buffer (see `ByteSource.openTransient`); errors name the file and byte. */
async function* readTransient(file: string, label: string, chunkSize: number): AsyncGenerator<Buffer> {
  let fh: fs.promises.FileHandle | undefined
  let at = 0
  try {
    fh = await fs.promises.open(file, "r")
    const buf = Buffer.allocUnsafeSlow(chunkSize)
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, chunkSize, at)
      if (bytesRead === 0) return
      at += bytesRead
      yield buf.subarray(0, bytesRead)
    }
  } catch (cause) {
    throw new InputFileError({ file, message: `${label}: read failed: ${describeError(cause)}`, byte: at })
  } finally {
    await fh?.close()
  }
}

/** A byte source for a plain, gzip or xz file (recognised by its magic bytes). */
export const fileSource = Effect.fn("bytes.fileSource")(function*(file: string) {
  const head = yield* readHead(file, 8)
  const container = sniffContainer(head)
  if (container === "zip" || container === "parquet") {
    return yield* new InputFileError({ file, message: `${path.basename(file)} is a ${container} file, not a text stream` })
  }
  const compression: Compression = container
  const source: ByteSource = {
    file,
    label: path.basename(file),
    open: (chunkSize = CHUNK) => {
      const { stream, counter } = countingRead(file, undefined, undefined, chunkSize)
      return decompress(file, path.basename(file), stream, counter, compression, chunkSize)
    },
    ...(compression === "none" ? { openTransient: (chunkSize: number) => readTransient(file, path.basename(file), chunkSize) } : {})
  }
  return source
})

/** Opens a raw byte range of a file (used by the zip reader) with a byte counter. */
export const openRange = (file: string, start: number, endInclusive: number) => countingRead(file, start, endInclusive)
