/**
 * Raw float32 files: the values of a Float32Array, little-endian, no header (scratch batches and shard outputs of
 * the matrix jobs, retrievalFull's shard vectors). Only little-endian hosts read and write them.
 */
import * as fs from "node:fs"
import * as os from "node:os"

export const requireLittleEndian = (file: string): void => {
  if (os.endianness() !== "LE") throw new Error(`${file}: only little-endian hosts are supported`)
}

/** The bytes of a typed array, without copying. */
export const bytesOf = (a: Float32Array | Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

/** Writes `values` to `file` (throws on an I/O error or a big-endian host). */
export const writeF32File = (file: string, values: Float32Array): void => {
  requireLittleEndian(file)
  fs.writeFileSync(file, bytesOf(values))
}

/** The `count` values of `file`; throws if it holds another number of bytes. */
export const readF32File = (file: string, count: number): Float32Array => {
  requireLittleEndian(file)
  const b = fs.readFileSync(file)
  if (b.byteLength !== count * 4) throw new Error(`${file}: ${b.byteLength} bytes, expected ${count * 4}`)
  const a = new Float32Array(count)
  bytesOf(a).set(b)
  return a
}
