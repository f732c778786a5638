/**
 * The decoding worker of `table.ts`: turns one row group (a self-contained Parquet file: its bytes and a footer
 * for it alone) into an Arrow IPC stream with parquet-wasm's synchronous reader, off the main thread, so a reader of
 * a large table decodes the next row group while it processes this one (`readTableBatches`).
 *
 * Protocol: `{ id, file: Uint8Array, batchSize }` in (the file transferred), `{ id, result: Uint8Array }` (the
 * IPC stream, transferred) or `{ id, error }` back (`workerClient.ts`).
 */
import { parentPort, workerData } from "node:worker_threads"
import * as pq from "parquet-wasm"
import { describeError } from "../../errors/describe.ts"

/** `workerData` of the decoding worker: this module also loads (as a library) wherever `table.ts` does. */
export const PARQUET_READ_WORKER_TAG = "llink-parquet-read-worker"

const isRequest = (m: unknown): m is { readonly id: number; readonly file: Uint8Array; readonly batchSize: number } =>
  typeof m === "object" && m !== null && "id" in m && typeof m.id === "number" && "file" in m &&
  m.file instanceof Uint8Array && "batchSize" in m && typeof m.batchSize === "number"

const port = parentPort
if (port !== null && workerData === PARQUET_READ_WORKER_TAG) {
  port.on("message", (m: unknown) => {
    if (!isRequest(m)) {
      port.postMessage({ id: -1, error: "parquet read worker: malformed request" })
      return
    }
    try {
      const out = pq.readParquet(m.file, { batchSize: m.batchSize }).intoIPCStream()
      // a buffer of its own, so that handing it over detaches nothing else
      const ipc = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : out.slice()
      port.postMessage({ id: m.id, result: ipc }, [ipc.buffer as ArrayBuffer])
    } catch (e) {
      // reported to the caller, which fails the read naming the row group and the file
      port.postMessage({ id: m.id, error: describeError(e) })
    }
  })
}
