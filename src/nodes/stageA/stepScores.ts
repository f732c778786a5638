/**
 * One matrix product for all of an optimizer step's hard-negative queries.
 *
 * Within a Stage A step the projector's weights do not change, so the projections p of every micro-batch are known
 * before the first selection. `TeacherQueue.selectHard` scores its query — the mean of the normalised p rows
 * ("shared-mean") or the normalised rows themselves ("per-row") — against every filled slot through the `matmul`
 * it is given; with a 32,768 × 2,048 queue that is a matrix–vector product over 256 MB per micro-batch, 16 times per
 * step, bound by memory bandwidth. `StepScores` computes all micro-batches' queries against the queue at once
 * (one sgemm with 16 rows instead of 16 with one) on the first selection of the step, and answers each later
 * selection from that block, recomputing only the slots that micro-batches enqueued since (8 per micro-batch).
 *
 * It is a drop-in `MatMulABt`: a call whose left operand is not, bit for bit, the query registered for the current
 * micro-batch (or whose right operand is not the whole filled queue) is passed to the plain product (`fallbacks`
 * counts those), so selections are always those of `selectHard` itself, up to the rounding of the block product.
 * The result depends only on the step's inputs, so runs (and resumed runs) repeat exactly.
 */
import { l2NormalizeRows } from "../../train/hostMath.ts"
import type { MatMulABt } from "../../train/hostMath.ts"
import type { HardNegativeRule, TeacherQueue } from "../../train/queue.ts"

/** The query `selectHard` scores for projections `p` [rows, d], computed exactly as it does. */
export const selectionQuery = (p: Float32Array, rows: number, d: number, rule: HardNegativeRule): Float32Array => {
  const pn = l2NormalizeRows(p, rows, d)
  if (rule === "per-row") return pn
  const mean = new Float32Array(d)
  for (let b = 0; b < rows; b++) for (let j = 0; j < d; j++) mean[j] += pn[b * d + j]
  for (let j = 0; j < d; j++) mean[j] /= rows
  return mean
}

const sameBits = (a: Float32Array, b: Float32Array, n: number): boolean => {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false
  return true
}

export class StepScores {
  readonly queue: TeacherQueue
  readonly base: MatMulABt
  /** Calls answered from the block (or its patch). */
  hits = 0
  /** Calls passed to the plain product. */
  fallbacks = 0
  #queries: ReadonlyArray<Float32Array> = []
  #offsets: Array<number> = []
  #micro = -1
  #enqueued = 0
  // the block: scores [totalRows, n0] against the queue as it was when first needed
  #block: Float32Array | undefined
  #n0 = 0
  #headAtFill = 0
  #enqueuedAtFill = 0

  constructor(queue: TeacherQueue, base: MatMulABt) {
    this.queue = queue
    this.base = base
  }

  /** Starts a step: `queries[k]` is what micro-batch k's selection will score (see `selectionQuery`). */
  begin(queries: ReadonlyArray<Float32Array>): void {
    this.#queries = queries
    this.#offsets = []
    let rows = 0
    for (const q of queries) {
      this.#offsets.push(rows)
      rows += q.length / this.queue.dim
    }
    this.#micro = -1
    this.#enqueued = 0
    this.#block = undefined
  }

  /** Micro-batch k is about to select; returns the product to hand to `selectHard`. */
  forMicro(k: number): MatMulABt {
    this.#micro = k
    return this.matmul
  }

  /** `rows` teachers entered the queue (call after each `enqueue` during the step). */
  enqueued(rows: number): void {
    this.#enqueued += rows
  }

  readonly matmul: MatMulABt = (a, aRows, b, bRows, d, out) => {
    const q = this.#queries[this.#micro]
    const n = this.queue.size
    if (q === undefined || d !== this.queue.dim || aRows * d !== q.length || bRows !== n || b.length < n * d || !sameBits(a, q, q.length)) {
      this.fallbacks++
      return this.base(a, aRows, b, bRows, d, out)
    }
    const res = out ?? new Float32Array(aRows * bRows)
    if (this.#block === undefined) {
      let total = 0
      for (const x of this.#queries) total += x.length
      const all = new Float32Array(total)
      let at = 0
      for (const x of this.#queries) {
        all.set(x, at)
        at += x.length
      }
      this.#block = this.base(all, total / d, b, n, d)
      this.#n0 = n
      this.#headAtFill = this.queue.head
      this.#enqueuedAtFill = this.#enqueued
    }
    const written = this.#enqueued - this.#enqueuedAtFill
    if (written >= this.queue.capacity) {
      this.fallbacks++
      return this.base(a, aRows, b, bRows, d, out)
    }
    const block = this.#block
    const n0 = this.#n0
    const off = this.#offsets[this.#micro]
    for (let r = 0; r < aRows; r++) res.set(block.subarray((off + r) * n0, (off + r + 1) * n0), r * bRows)
    // slots written since the block was computed (the queue grew into [n0, n) or overwrote the oldest)
    for (let i = 0; i < written; i++) {
      const slot = (this.#headAtFill + i) % this.queue.capacity
      if (slot >= n) continue
      const bo = slot * d
      for (let r = 0; r < aRows; r++) {
        const ao = r * d
        let s = 0
        for (let j = 0; j < d; j++) s += a[ao + j] * b[bo + j]
        res[r * bRows + slot] = s
      }
    }
    this.hits++
    return res
  }
}
