/**
 * The compression worker of `write.ts`: compresses Parquet page bodies with zstd level 1 off the main thread.
 *
 * Why a worker and not `zlib.zstdCompress`: Node's asynchronous zstd is a stream (the input is fed in pieces, then
 * ended), and zstd's streaming path buffers its input in a window-sized ring, which finds slightly different
 * matches than the one-shot compression parquet-rs does (`ZSTD_compress2`) on pages over ~640 KiB. The synchronous
 * call with an output buffer of at least `ZSTD_compressBound` bytes takes zstd's one-shot shortcut and writes the
 * same frames; here it runs on its own thread, so the main thread reads and lays out the next row group meanwhile.
 * `table.ts` uses it only with `LLINK_ZSTD_WORKER=1`: by default it compresses on the writing thread
 * (`compressPagesSync`), which on the 1M-pair bench cost little time and ~80 MB less peak RSS (bench/results).
 *
 * Protocol: `{ id, packed: Uint8Array, sizes: number[] }` in (the bodies back to back, transferred),
 * `{ id, result: Uint8Array[] }` (transferred) or `{ id, error }` back (`workerClient.ts`).
 */
import { parentPort, workerData } from "node:worker_threads"
import * as zlib from "node:zlib"
import { describeError } from "../../errors/describe.ts"

/** `workerData` of the compression worker: this module also loads (as a library) wherever `write.ts` does. */
export const ZSTD_WORKER_TAG = "llink-zstd-worker"

/** Options that make Node's zstd write what parquet-rs writes (see the module doc). */
export const oneShotOptions = (size: number): zlib.ZstdOptions => ({
  params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 },
  // ≥ ZSTD_compressBound(size) = size + size/256 + (up to 64): room for the whole frame in one output chunk
  chunkSize: Math.max(64, size + (size >> 8) + 128)
})

/** A fresh ArrayBuffer holding exactly `b` (transferable without detaching anything else). */
const own = (b: Uint8Array): Uint8Array<ArrayBuffer> => {
  const copy = new Uint8Array(b.length)
  copy.set(b)
  return copy
}

const isRequest = (m: unknown): m is { readonly id: number; readonly packed: Uint8Array; readonly sizes: ReadonlyArray<number> } =>
  typeof m === "object" && m !== null && "id" in m && typeof m.id === "number" && "packed" in m &&
  m.packed instanceof Uint8Array && "sizes" in m && Array.isArray(m.sizes) && m.sizes.every((n) => typeof n === "number")

const port = parentPort
if (port !== null && workerData === ZSTD_WORKER_TAG) {
  port.on("message", (m: unknown) => {
    if (!isRequest(m)) {
      port.postMessage({ id: -1, error: "zstd worker: malformed request" })
      return
    }
    try {
      let at = 0
      const out = m.sizes.map((size) => {
        const body = m.packed.subarray(at, at + size)
        at += size
        return own(zlib.zstdCompressSync(body, oneShotOptions(size)))
      })
      port.postMessage({ id: m.id, result: out }, out.map((o) => o.buffer))
    } catch (e) {
      // reported to the caller, which fails the table writer with this message
      port.postMessage({ id: m.id, error: describeError(e) })
    }
  })
}
