/**
 * The Stage A hard-negative queue on a device backend (WebGPU, tfjs-node-gpu): the same FIFO of fp16 teacher rows
 * as `TeacherQueue` — which stays the source of truth for the bits, the write head and checkpoints — mirrored in
 * device memory as float32 blocks holding exactly the decoded fp16 values, so that scoring, top-k selection and the
 * gather of the negatives run on the device inside the training step, with no read-back.
 *
 * Selection follows `TeacherQueue.selectHard`: "shared-mean" scores every filled slot by (mean_b p̂_b)·q and takes
 * one top-k for the batch; "per-row" takes a top-k per row of p̂·qᵀ. Unfilled slots are never chosen (k is capped
 * by the fill count, known on the host). With `exclude`, a slot whose true cosine to a row's own teacher reaches
 * `minCosine` is not that row's negative: instead of shrinking k (which needs the candidate count on the host), its
 * logit gets a bias of −1e9 (`HardNegatives.bias`), which is the same in float32: exp(−1e9 − max) is exactly 0 in
 * the softmax, so the loss and its gradient equal the host queue's with that negative left out.
 *
 * Ties in the top-k follow the backend's sort; the host queue breaks them by the lower slot index. Scores are
 * products of unit vectors in float32, so an exact tie is rare; a near-tie may pick the other of two negatives.
 */
import * as tf from "@tensorflow/tfjs"
import type { HardNegativeRule } from "./queue.ts"
import { TeacherQueue } from "./queue.ts"
import type { HardNegatives } from "./stageALoss.ts"

/** Device rows per block: enqueueing rewrites one or two blocks, never the whole queue. */
const BLOCK_ROWS = 1024
const EXCLUDED = -1e9

export interface DeviceSelectOptions {
  /** Each row's own teacher [rows, dim] (unnormalised) and the cosine from which a slot counts as a copy of it. */
  readonly exclude?: { readonly teachers: tf.Tensor2D; readonly minCosine: number }
}

export class DeviceQueue {
  readonly host: TeacherQueue
  readonly #blockRows: number
  readonly #blocks: Array<tf.Tensor2D>

  /** Mirrors `host` (its current rows are uploaded once). */
  constructor(host: TeacherQueue) {
    this.host = host
    this.#blockRows = Math.min(BLOCK_ROWS, host.capacity)
    const nBlocks = Math.ceil(host.capacity / this.#blockRows)
    this.#blocks = []
    const d = host.dim
    for (let i = 0; i < nBlocks; i++) {
      const rows = Math.min(this.#blockRows, host.capacity - i * this.#blockRows)
      const data = new Float32Array(rows * d)
      const filled = Math.max(0, Math.min(rows, host.size - i * this.#blockRows))
      if (filled > 0) {
        const slots = Int32Array.from({ length: filled }, (_, r) => i * this.#blockRows + r)
        data.set(host.gather(slots))
      }
      this.#blocks.push(tf.keep(tf.tensor2d(data, [rows, d])))
    }
  }

  get size(): number {
    return this.host.size
  }

  get dim(): number {
    return this.host.dim
  }

  /** Appends rows to the host queue (fp16 rounding there) and writes their decoded values into the device blocks. */
  enqueue(x: Float32Array, rows: number = x.length / this.host.dim): void {
    const start = this.host.head
    this.host.enqueue(x, rows)
    const cap = this.host.capacity
    const d = this.host.dim
    // the slots written, as runs within one block
    let done = 0
    while (done < rows) {
      const slot = (start + done) % cap
      const block = Math.floor(slot / this.#blockRows)
      const offset = slot - block * this.#blockRows
      const blockLen = this.#blocks[block].shape[0]
      const n = Math.min(rows - done, blockLen - offset, cap - slot)
      const values = this.host.gather(Int32Array.from({ length: n }, (_, r) => slot + r))
      const old = this.#blocks[block]
      const next = tf.tidy(() => {
        const parts: Array<tf.Tensor2D> = []
        if (offset > 0) parts.push(tf.slice(old, [0, 0], [offset, d]))
        parts.push(tf.tensor2d(values, [n, d]))
        if (offset + n < blockLen) parts.push(tf.slice(old, [offset + n, 0], [blockLen - offset - n, d]))
        return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D)
      })
      this.#blocks[block] = tf.keep(next)
      old.dispose()
      done += n
    }
  }

  /** Scores [m, size] of `a` [m, dim] against the filled slots, in slot order (the filled slots are 0 … size−1
   *  until the ring wraps, then all). Not tidied: call inside a tidy / variableGrads. */
  #scores(a: tf.Tensor2D): tf.Tensor2D {
    const n = this.host.size
    const parts: Array<tf.Tensor2D> = []
    for (let i = 0; i * this.#blockRows < n; i++) {
      const filled = Math.min(this.#blocks[i].shape[0], n - i * this.#blockRows)
      const block = filled === this.#blocks[i].shape[0] ? this.#blocks[i] : (tf.slice(this.#blocks[i], [0, 0], [filled, this.host.dim]) as tf.Tensor2D)
      parts.push(tf.matMul(a, block, false, true))
    }
    return parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D)
  }

  /** The stored rows of the filled slots, [size, dim] (not tidied). */
  #rows(): tf.Tensor2D {
    const n = this.host.size
    const parts: Array<tf.Tensor2D> = []
    for (let i = 0; i * this.#blockRows < n; i++) {
      const filled = Math.min(this.#blocks[i].shape[0], n - i * this.#blockRows)
      parts.push(filled === this.#blocks[i].shape[0] ? this.#blocks[i] : (tf.slice(this.#blocks[i], [0, 0], [filled, this.host.dim]) as tf.Tensor2D))
    }
    return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D)
  }

  /**
   * Hard negatives for projections `p` [rows, dim] (normalised here): the stored rows of the chosen slots, and the
   * −1e9 logit bias of excluded ones. Null with an empty queue. Not tidied: call inside the step's variableGrads.
   */
  hardNegatives(p: tf.Tensor2D, k: number, rule: HardNegativeRule, options?: DeviceSelectOptions): HardNegatives | null {
    const n = this.host.size
    const kEff = Math.max(0, Math.min(k, n))
    if (kEff === 0) return null
    const [rows] = p.shape
    const unit = (x: tf.Tensor2D) => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), 1e-12)) as tf.Tensor2D
    // excluded [rows, n] as 0/1: a true cosine, divided by the stored row's norm (fp16 moves it by ~1e-4)
    let excluded: tf.Tensor2D | null = null
    if (options?.exclude !== undefined) {
      const stored = this.#rows()
      const norms = tf.sqrt(tf.sum(tf.square(stored), -1)) // [n]
      const ts = this.#scores(unit(options.exclude.teachers))
      excluded = tf.cast(tf.greaterEqual(ts, tf.mul(norms, options.exclude.minCosine)), "float32") as tf.Tensor2D
    }
    const table = this.#rows()
    const pn = unit(p)
    if (rule === "shared-mean") {
      const mean = tf.mean(pn, 0, true) as tf.Tensor2D // [1, d]
      let scores = this.#scores(mean) // [1, n]
      let any: tf.Tensor1D | null = null
      if (excluded !== null) {
        any = tf.max(excluded, 0) as tf.Tensor1D // [n]
        scores = tf.add(scores, tf.mul(any, EXCLUDED)) as tf.Tensor2D
      }
      const { indices } = tf.topk(tf.reshape(scores, [n]), kEff)
      const vectors = tf.gather(table, indices) as tf.Tensor2D
      const bias = any === null ? undefined : (tf.mul(tf.gather(any, indices), EXCLUDED) as tf.Tensor1D)
      return { kind: "shared", vectors, ...(bias === undefined ? {} : { bias }) }
    }
    let scores = this.#scores(pn) // [rows, n]
    if (excluded !== null) scores = tf.add(scores, tf.mul(excluded, EXCLUDED)) as tf.Tensor2D
    const { indices } = tf.topk(scores, kEff) // [rows, k]
    const flat = tf.reshape(indices, [rows * kEff])
    const vectors = tf.reshape(tf.gather(table, flat), [rows, kEff, this.host.dim]) as tf.Tensor3D
    if (excluded === null) return { kind: "per-row", vectors }
    const rowOf = tf.floorDiv(tf.range(0, rows * kEff, 1, "int32"), tf.scalar(kEff, "int32"))
    const picked = tf.gather(tf.reshape(excluded, [rows * n]), tf.add(flat, tf.mul(rowOf, tf.scalar(n, "int32"))))
    const bias = tf.reshape(tf.mul(picked, EXCLUDED), [rows, kEff]) as tf.Tensor2D
    return { kind: "per-row", vectors, bias }
  }

  dispose(): void {
    for (const b of this.#blocks) b.dispose()
    this.#blocks.length = 0
  }
}
