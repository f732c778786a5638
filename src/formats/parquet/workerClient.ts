/**
 * A client of one helper worker thread (the zstd compressor, the Parquet decoder), shared by the whole process and
 * started on first use: each request carries an `id`, each reply `{ id, result }` or `{ id, error }`. The worker
 * is unref'd while nothing is pending, so it never keeps the process alive; if it dies, every pending request fails
 * with why, and the next request starts a new one.
 */
import { Worker } from "node:worker_threads"

export interface WorkerClient {
  /** Posts `message` (plus its `id`), handing over `transfer`; resolves with the reply's `result`. */
  readonly request: (message: Readonly<Record<string, unknown>>, transfer: ReadonlyArray<ArrayBuffer>) => Promise<unknown>
}

const isReply = (m: unknown): m is { readonly id: number; readonly result?: unknown; readonly error?: string } =>
  typeof m === "object" && m !== null && "id" in m && typeof m.id === "number"

/** A lazily started client of the worker module `url` (`workerData: tag`); `label` names it in errors. */
export const workerClient = (url: URL, tag: string, label: string): WorkerClient => {
  let current:
    | {
      readonly worker: Worker
      readonly pending: Map<number, { readonly resolve: (out: unknown) => void; readonly reject: (e: Error) => void }>
      nextId: number
    }
    | undefined
  const start = () => {
    const worker = new Worker(url, { workerData: tag })
    const p = { worker, pending: new Map<number, { readonly resolve: (out: unknown) => void; readonly reject: (e: Error) => void }>(), nextId: 0 }
    const failAll = (e: Error): void => {
      for (const waiter of p.pending.values()) waiter.reject(e)
      p.pending.clear()
      if (current === p) current = undefined
    }
    worker.on("message", (m: unknown) => {
      if (!isReply(m)) return failAll(new Error(`${label} sent a malformed reply`))
      const waiter = p.pending.get(m.id)
      if (waiter === undefined) return failAll(new Error(`${label}: ${m.error ?? `unknown request ${m.id}`}`))
      p.pending.delete(m.id)
      if (p.pending.size === 0) worker.unref()
      if (m.error === undefined && m.result !== undefined) waiter.resolve(m.result)
      else waiter.reject(new Error(`${label}: ${m.error ?? "no output"}`))
    })
    worker.on("error", (e) => failAll(e))
    worker.on("exit", (code) => failAll(new Error(`${label} exited with code ${code}`)))
    worker.unref()
    return p
  }
  return {
    request: (message, transfer) => {
      const p = (current ??= start())
      const id = p.nextId++
      return new Promise((resolve, reject) => {
        p.pending.set(id, { resolve, reject })
        if (p.pending.size === 1) p.worker.ref()
        p.worker.postMessage({ ...message, id }, [...transfer])
      })
    }
  }
}
