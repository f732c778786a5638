/**
 * The compression worker of `parquetWrite.ts`: compresses Parquet page bodies with zstd level 1 off the main thread.
 *
 * Why a worker and not `zlib.zstdCompress`: Node's asynchronous zstd is a stream (the input is fed in pieces, then
 * ended), and zstd's streaming path buffers its input in a window-sized ring, which finds slightly different
 * matches than the one-shot compression parquet-rs does (`ZSTD_compress2`) on pages over ~640 KiB. The synchronous
 * call with an output buffer of at least `ZSTD_compressBound` bytes takes zstd's one-shot shortcut and writes the
 * same frames; here it runs on its own thread, so the main thread reads and lays out the next row group meanwhile.
 * `table.ts` uses it only with `LLINK_ZSTD_WORKER=1`: by default it compresses on the writing thread
 * (`compressPagesSync`), which on the 1M-pair bench cost little time and ~80 MB less peak RSS (bench/results).
 *
 * Protocol: `{ id, packed: Uint8Array, sizes: number[], spare?: Uint8Array }` in (the bodies back to back, and a
 * buffer for the frames, both transferred), `{ id, result: { packed, frames, sizes } }` (the input buffer back, the
 * frames back to back with their sizes, transferred) or `{ id, error }` back (`workerClient.ts`).
 */
import { parentPort, workerData } from "node:worker_threads"
import * as zlib from "node:zlib"

/** `workerData` of the compression worker: this module also loads (as a library) wherever `parquetWrite.ts` does. */
export const ZSTD_WORKER_TAG = "llink-zstd-worker"

/** Options that make Node's zstd write what parquet-rs writes (see the module doc). */
export const oneShotOptions = (size: number): zlib.ZstdOptions => ({
  params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 },
  // ≥ ZSTD_compressBound(size) = size + size/256 + (up to 64): room for the whole frame in one output chunk
  chunkSize: Math.max(64, size + (size >> 8) + 128)
})

const isRequest = (
  m: unknown
): m is { readonly id: number; readonly packed: Uint8Array; readonly sizes: ReadonlyArray<number>; readonly spare?: Uint8Array } =>
  typeof m === "object" && m !== null && "id" in m && typeof m.id === "number" && "packed" in m &&
  m.packed instanceof Uint8Array && "sizes" in m && Array.isArray(m.sizes) && m.sizes.every((n) => typeof n === "number") &&
  (!("spare" in m) || m.spare instanceof Uint8Array)

const port = parentPort
if (port !== null && workerData === ZSTD_WORKER_TAG) {
  port.on("message", (m: unknown) => {
    if (!isRequest(m)) {
      port.postMessage({ id: -1, error: "zstd worker: malformed request" })
      return
    }
    try {
      // the frames go back to back into the caller's spare buffer (grown when they do not fit), and the input
      // buffer goes back with them: both are reused for later row groups
      let frames = m.spare ?? new Uint8Array(Math.max(1 << 16, m.packed.length >> 2))
      let pos = 0
      let at = 0
      const sizes = m.sizes.map((size) => {
        const frame = zlib.zstdCompressSync(m.packed.subarray(at, at + size), oneShotOptions(size))
        at += size
        if (pos + frame.length > frames.length) {
          const bigger = new Uint8Array(Math.max(2 * frames.length, pos + frame.length))
          bigger.set(frames.subarray(0, pos))
          frames = bigger
        }
        frames.set(frame, pos)
        pos += frame.length
        return frame.length
      })
      port.postMessage({ id: m.id, result: { packed: m.packed, frames, sizes } }, [m.packed.buffer as ArrayBuffer, frames.buffer as ArrayBuffer])
    } catch (e) {
      // reported to the caller, which fails the table writer with this message
      port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) })
    }
  })
}
