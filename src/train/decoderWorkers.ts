/**
 * Worker threads that compute some of a decoder pretraining step's micro-batches (`pretrainDecoder`,
 * `DecoderSettings.microBatches`), so the step's parts run side by side on the machine's cores.
 *
 * Each worker holds the same compact decoder and the same examples. Before a step, this thread publishes the
 * weights into one shared buffer (`publish`); a worker copies them into its variables when a part arrives, computes
 * that part's gradients exactly as this thread would (`microBatchLoss`, the same backend), and sends them back as one
 * flat array in the variables' order. Nothing is summed here: `pretrainDecoder` adds the parts in order, so the bytes
 * do not depend on how many threads there are.
 *
 * Workers are started with `LLINK_BLAS_THREADS=1`: their products (and this thread's, on the miniature, whose
 * products are all below `PARALLEL_MIN_MACS`) run on one OpenBLAS thread each, so two callers never race over
 * OpenBLAS's process-wide thread count. A worker that fails or exits fails the step with the reason.
 */
import * as tf from "@tensorflow/tfjs"
import { Worker } from "node:worker_threads"
import type { LlamaConfig } from "../models/hfconfig.ts"
import type { LmExample, VariableSet } from "./pretrain.ts"

/** What each worker is started with (`workerData`). */
export interface DecoderWorkerData {
  readonly config: LlamaConfig
  readonly zeroCount: number
  readonly examples: ReadonlyArray<LmExample>
  readonly backend: "blas" | "wasm" | "cpu"
  /** The variables' names and shapes, in order, and the shared buffer of their values laid out in that order. */
  readonly names: ReadonlyArray<string>
  readonly shapes: ReadonlyArray<ReadonlyArray<number>>
  readonly params: SharedArrayBuffer
}

/** A part to compute: example indices and the whole batch's target count. */
export interface PartRequest {
  readonly id: number
  readonly indices: ReadonlyArray<number>
  readonly total: number
}

/** A worker's answer: the part's loss share and its gradients, flat in the variables' order. */
export type PartReply =
  | { readonly id: number; readonly loss: number; readonly grads: Float32Array }
  | { readonly id: number; readonly error: string }
  | { readonly ready: true }

/** Elements of a tensor of `shape`. */
export const sizeOf = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

interface Waiter {
  readonly resolve: (r: { readonly loss: number; readonly grads: Record<string, tf.Tensor> }) => void
  readonly reject: (e: Error) => void
}

export class DecoderWorkers {
  private nextId = 0
  private failure: Error | undefined
  /** Why each worker stopped, once it has (a later part for it fails at once instead of waiting forever). */
  private readonly stopped: ReadonlyArray<{ error: Error | undefined }>

  private readonly workers: ReadonlyArray<Worker>
  private readonly pending: ReadonlyArray<Map<number, Waiter>>
  private readonly params: Float32Array

  private constructor(
    workers: ReadonlyArray<Worker>,
    pending: ReadonlyArray<Map<number, Waiter>>,
    stopped: ReadonlyArray<{ error: Error | undefined }>,
    params: Float32Array
  ) {
    this.workers = workers
    this.pending = pending
    this.stopped = stopped
    this.params = params
  }

  /** `count` workers over `vars` (this thread's variables, already holding the initial weights, which are published). */
  static async start(count: number, data: Omit<DecoderWorkerData, "names" | "shapes" | "params">, vars: VariableSet): Promise<DecoderWorkers> {
    const names = [...vars.vars.keys()]
    const shapes = names.map((n) => [...vars.vars.get(n)!.shape])
    const params = new SharedArrayBuffer(4 * shapes.reduce((a, s) => a + sizeOf(s), 0))
    const full: DecoderWorkerData = { ...data, names, shapes, params }
    const workers: Array<Worker> = []
    const pending: Array<Map<number, Waiter>> = []
    const stopped: Array<{ error: Error | undefined }> = []
    const ready: Array<Promise<void>> = []
    for (let w = 0; w < count; w++) {
      const worker = new Worker(new URL("./decoderWorker.ts", import.meta.url), {
        workerData: full,
        env: { ...process.env, LLINK_BLAS_THREADS: "1", LLINK_WASM_THREADS: "1" }
      })
      const waiting = new Map<number, Waiter>()
      const stop: { error: Error | undefined } = { error: undefined }
      workers.push(worker)
      pending.push(waiting)
      stopped.push(stop)
      ready.push(new Promise<void>((resolve, reject) => {
        const failAll = (e: Error) => {
          stop.error ??= e
          reject(e)
          for (const waiter of waiting.values()) waiter.reject(e)
          waiting.clear()
        }
        worker.on("message", (m: PartReply) => {
          if ("ready" in m) return resolve()
          const waiter = waiting.get(m.id)
          if (waiter === undefined) return
          waiting.delete(m.id)
          if ("error" in m) waiter.reject(new Error(`decoder worker ${w + 1}: ${m.error}`))
          else waiter.resolve({ loss: m.loss, grads: gradsOf(vars, names, shapes, m.grads) })
        })
        worker.on("error", (e) => failAll(new Error(`decoder worker ${w + 1} failed: ${e.message}`)))
        worker.on("exit", (code) => failAll(new Error(`decoder worker ${w + 1} exited with code ${code}`)))
      }))
    }
    const pool = new DecoderWorkers(workers, pending, stopped, new Float32Array(params))
    pool.publish(vars)
    try {
      await Promise.all(ready)
    } catch (cause) {
      await pool.close()
      throw cause
    }
    return pool
  }

  /** Writes the variables' current values where the workers read them (call only when no part is in flight). */
  publish(vars: VariableSet): void {
    let at = 0
    for (const v of vars.vars.values()) {
      const values = v.dataSync() as Float32Array
      this.params.set(values, at)
      at += values.length
    }
  }

  /** The gradients of part `indices` (and its loss share), computed by worker `w`. */
  run(w: number, indices: ReadonlyArray<number>, total: number): Promise<{ readonly loss: number; readonly grads: Record<string, tf.Tensor> }> {
    const why = this.failure ?? this.stopped[w].error
    if (why !== undefined) return Promise.reject(why)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending[w].set(id, { resolve, reject })
      this.workers[w].postMessage({ id, indices: [...indices], total } satisfies PartRequest)
    })
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    this.failure = new Error("the decoder workers were closed")
    for (const p of this.pending) p.clear()
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}

/** A flat gradient array as tensors keyed by this thread's variable names, in the variables' order. */
const gradsOf = (vars: VariableSet, names: ReadonlyArray<string>, shapes: ReadonlyArray<ReadonlyArray<number>>, flat: Float32Array) => {
  const out: Record<string, tf.Tensor> = {}
  let at = 0
  names.forEach((name, i) => {
    const n = sizeOf(shapes[i])
    out[vars.vars.get(name)!.name] = tf.tensor(flat.slice(at, at + n), [...shapes[i]], "float32")
    at += n
  })
  return out
}
