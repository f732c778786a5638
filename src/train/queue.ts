/**
 * The Stage A hard-negative queue: a FIFO ring buffer of `capacity` (default 32,768) L2-normalised teacher
 * vectors stored as IEEE float16 (a Uint16Array of bit patterns, round-to-nearest-even), plus hard-negative
 * selection against a batch of projections.
 *
 * Storage: `enqueue` normalises each row in float32 (x / max(‖x‖, 1e-12)) and rounds it to float16. (The authors'
 * code casts to fp16 first and normalises in fp16; the stored values can differ by one fp16 ulp.) The oldest rows
 * are overwritten first. A float32 mirror of the decoded values (exactly the fp16 values) is kept by default so
 * that scoring is one matrix product per step instead of a decode of the whole queue; `mirror: false` saves the
 * memory (4·capacity·dim bytes) and decodes block by block instead.
 *
 * Indices returned by `selectHard` and accepted by `gather` are SLOT indices into the ring (0 … capacity−1),
 * valid until the next `enqueue`. `fifoSlot(i)` maps FIFO position i (0 = oldest) to its slot.
 *
 * Hard negatives (`selectHard`), on the batch projections p̂ (normalised here) against every filled slot q:
 * - "per-row": row b gets its own top-k slots by p̂_b·q → indices [B, k] (row-major).
 * - "shared-mean" (the code's rule): each slot scores mean_b p̂_b·q = (mean_b p̂_b)·q, one shared top-k → [k].
 *   (Computed through the mean vector; equal to the mean of the cosines up to float rounding.)
 * Scores use the stored fp16 rows as they are (unit only up to rounding), as the code does.
 * Ordering: higher score first, ties broken by the lower slot index. Nothing is excluded by default (the code
 * excludes nothing). With `exclude: { teachers, minCosine }` (suggested 0.9999), a slot whose cosine to row b's
 * own teacher is ≥ minCosine (a true cosine, divided by the stored row's norm: fp16 rounding moves a row's norm
 * by ~1e-4, which alone would defeat a 0.9999 threshold) is never a negative of row b — in "shared-mean", never a
 * negative of the batch when it matches any row's teacher. Use it when the data can repeat a pair (duplicates, or
 * a queue spanning epochs) so the positive does not also appear as a "negative". The effective k is
 * min(k, candidates left) over the rows.
 */
import { l2NormalizeRows, matMulABtJs, topKIndices } from "./hostMath.ts"
import type { MatMulABt } from "./hostMath.ts"

// ---------------------------------------------------------------------------------------------------------------
// float16 conversion

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/**
 * The IEEE binary16 bit pattern nearest to `x` (as float32 first), round-to-nearest-even; overflow → ±Inf;
 * values below half the smallest subnormal (2^-25) → ±0; NaN → a quiet NaN keeping the top payload bits.
 */
export const f32ToF16Bits = (x: number): number => {
  f32[0] = x
  const bits = u32[0]
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const mant = bits & 0x7fffff
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13)
  if (exp >= 143) return sign | 0x7c00 // ≥ 2^16: beyond any rounding to 65504
  if (exp >= 113) {
    // normal half: exponent 2^-14 … 2^15
    let q = ((exp - 112) << 10) | (mant >>> 13)
    const r = mant & 0x1fff
    if (r > 0x1000 || (r === 0x1000 && (q & 1) === 1)) q++ // a carry into the exponent is correct (→ Inf at top)
    return sign | q
  }
  if (exp < 102) return sign // < 2^-25: rounds to zero (float32 subnormals included)
  // subnormal half: value = sig·2^(exp−150), in units of 2^-24 that is sig >> (126 − exp)
  const sig = mant | 0x800000
  const shift = 126 - exp // 14 … 24
  let q = sig >>> shift
  const r = sig & ((1 << shift) - 1)
  const half = 1 << (shift - 1)
  if (r > half || (r === half && (q & 1) === 1)) q++ // q may become 0x400: the smallest normal, correctly encoded
  return sign | q
}

/** The float value of a binary16 bit pattern (exact in float32/float64). */
export const f16BitsToF32 = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 31) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * (1024 + mant) * 2 ** (exp - 25)
}

/** Decode table for all 65,536 patterns. */
const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32(h)
  return t
})()

/** Rounds every value of `src` to float16 bits. */
export const encodeF16 = (src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length), offset = 0): Uint16Array => {
  for (let i = 0; i < src.length; i++) dst[offset + i] = f32ToF16Bits(src[i])
  return dst
}

/** Decodes float16 bits `src[start … start+n)` to float32. */
export const decodeF16 = (
  src: Uint16Array,
  start = 0,
  n = src.length - start,
  dst: Float32Array = new Float32Array(n)
): Float32Array => {
  for (let i = 0; i < n; i++) dst[i] = F16_TABLE[src[start + i]]
  return dst
}

// ---------------------------------------------------------------------------------------------------------------
// the queue

export type HardNegativeRule = "per-row" | "shared-mean"

export interface SelectHardOptions {
  /** Scores through this product (default: plain JS). */
  readonly matmul?: MatMulABt
  /** Exclude near-copies of each row's own teacher (unnormalised teachers [B, dim] are normalised here). */
  readonly exclude?: { readonly teachers: Float32Array; readonly minCosine: number }
}

export interface HardNegativeSelection {
  readonly rule: HardNegativeRule
  /** The effective k (≤ the k asked for). */
  readonly k: number
  /** Number of batch rows. */
  readonly rows: number
  /** Slot indices: [rows, k] row-major for "per-row", [k] for "shared-mean"; best first. */
  readonly indices: Int32Array
  /** The score of each selected slot, same layout as `indices`. */
  readonly scores: Float32Array
}

/** A checkpointable copy of the queue: the raw fp16 bits of every slot, the write head and the fill count. */
export interface QueueSnapshot {
  readonly capacity: number
  readonly dim: number
  /** The slot the next enqueued row goes to. */
  readonly head: number
  readonly size: number
  readonly bits: Uint16Array
}

export interface QueueOptions {
  /** Keep a float32 copy of the decoded rows for fast scoring (default true). */
  readonly mirror?: boolean
}

const SCORE_BLOCK_ROWS = 1024

export class TeacherQueue {
  readonly capacity: number
  readonly dim: number
  readonly #bits: Uint16Array
  readonly #mirror: Float32Array | null
  #head = 0
  #size = 0

  constructor(capacity: number, dim: number, options?: QueueOptions) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error(`queue: capacity must be > 0, got ${capacity}`)
    if (!Number.isInteger(dim) || dim <= 0) throw new Error(`queue: dim must be > 0, got ${dim}`)
    this.capacity = capacity
    this.dim = dim
    this.#bits = new Uint16Array(capacity * dim)
    this.#mirror = options?.mirror === false ? null : new Float32Array(capacity * dim)
  }

  /** Number of filled slots (≤ capacity). */
  get size(): number {
    return this.#size
  }

  /** The slot the next enqueued row goes to. */
  get head(): number {
    return this.#head
  }

  /** The slot of FIFO position i (0 = oldest, size−1 = newest). */
  fifoSlot(i: number): number {
    if (i < 0 || i >= this.#size) throw new Error(`queue: FIFO position ${i} out of range (size ${this.#size})`)
    return (this.#head - this.#size + i + 2 * this.capacity) % this.capacity
  }

  /** Appends `rows` rows of `x` [rows, dim] (normalised, then rounded to fp16), overwriting the oldest. */
  enqueue(x: Float32Array, rows: number = x.length / this.dim): void {
    if (!Number.isInteger(rows) || x.length < rows * this.dim) {
      throw new Error(`queue: enqueue of ${rows} rows needs ${rows * this.dim} values, got ${x.length}`)
    }
    const unit = l2NormalizeRows(x, rows, this.dim)
    const d = this.dim
    for (let r = 0; r < rows; r++) {
      const slot = this.#head
      encodeF16(unit.subarray(r * d, (r + 1) * d), this.#bits, slot * d)
      if (this.#mirror !== null) decodeF16(this.#bits, slot * d, d, this.#mirror.subarray(slot * d, (slot + 1) * d))
      this.#head = (this.#head + 1) % this.capacity
      this.#size = Math.min(this.capacity, this.#size + 1)
    }
  }

  /** The decoded rows of the given slots, [slots.length, dim]. */
  gather(slots: ArrayLike<number>): Float32Array {
    const d = this.dim
    const out = new Float32Array(slots.length * d)
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]
      if (!this.#isFilled(s)) throw new Error(`queue: slot ${s} is not filled`)
      if (this.#mirror !== null) out.set(this.#mirror.subarray(s * d, (s + 1) * d), i * d)
      else decodeF16(this.#bits, s * d, d, out.subarray(i * d, (i + 1) * d))
    }
    return out
  }

  /** The raw fp16 bits of one slot (a copy). */
  slotBits(slot: number): Uint16Array {
    if (!this.#isFilled(slot)) throw new Error(`queue: slot ${slot} is not filled`)
    return this.#bits.slice(slot * this.dim, (slot + 1) * this.dim)
  }

  /** All filled rows, decoded, oldest first: [size, dim]. */
  fifoRows(): Float32Array {
    const slots = new Int32Array(this.#size)
    for (let i = 0; i < this.#size; i++) slots[i] = this.fifoSlot(i)
    return this.gather(slots)
  }

  /** Filled slots are 0 … size−1 until the ring wraps, then all of them. */
  #isFilled(slot: number): boolean {
    return Number.isInteger(slot) && slot >= 0 && slot < this.#size
  }

  /**
   * Scores [rows, size] of `a` [rows, dim] against every filled slot (slot order), by blocks of slots.
   * While the ring has not wrapped, the filled slots are exactly 0 … size−1; once full, all slots are filled.
   */
  #scores(a: Float32Array, rows: number, matmul: MatMulABt): Float32Array {
    const d = this.dim
    const n = this.#size
    const out = new Float32Array(rows * n)
    if (n === 0) return out
    if (this.#mirror !== null) return matmul(a, rows, this.#mirror.subarray(0, n * d), n, d, out)
    const block = new Float32Array(Math.min(SCORE_BLOCK_ROWS, n) * rows)
    const scratch = new Float32Array(Math.min(SCORE_BLOCK_ROWS, n) * d)
    for (let s0 = 0; s0 < n; s0 += SCORE_BLOCK_ROWS) {
      const m = Math.min(SCORE_BLOCK_ROWS, n - s0)
      const rowsOf = decodeF16(this.#bits, s0 * d, m * d, scratch.subarray(0, m * d))
      const res = matmul(a, rows, rowsOf, m, d, block.subarray(0, rows * m))
      for (let r = 0; r < rows; r++) out.set(res.subarray(r * m, (r + 1) * m), r * n + s0)
    }
    return out
  }

  /** The L2 norm of every filled slot's stored (fp16) row. */
  #slotNorms(): Float64Array {
    const d = this.dim
    const out = new Float64Array(this.#size)
    const row = new Float32Array(d)
    for (let s = 0; s < this.#size; s++) {
      const r = this.#mirror !== null ? this.#mirror.subarray(s * d, (s + 1) * d) : decodeF16(this.#bits, s * d, d, row)
      let acc = 0
      for (let k = 0; k < d; k++) acc += r[k] * r[k]
      out[s] = Math.sqrt(acc)
    }
    return out
  }

  /**
   * Hard negatives for a batch of projections `p` [rows, dim] (normalised here). See the module doc for the rules,
   * the tie order and the exclusion option. With an empty queue, k is 0.
   */
  selectHard(
    p: Float32Array,
    rows: number,
    k: number,
    rule: HardNegativeRule,
    options?: SelectHardOptions
  ): HardNegativeSelection {
    const d = this.dim
    if (p.length < rows * d) throw new Error(`queue: selectHard needs ${rows * d} values, got ${p.length}`)
    const matmul = options?.matmul ?? matMulABtJs
    const n = this.#size
    const pn = l2NormalizeRows(p, rows, d)

    // excluded[b·n + s] = 1 when slot s is a near-copy of row b's teacher
    let excluded: Uint8Array | null = null
    if (options?.exclude !== undefined && n > 0) {
      const { teachers, minCosine } = options.exclude
      if (teachers.length < rows * d) throw new Error(`queue: exclude.teachers needs ${rows * d} values`)
      const tn = l2NormalizeRows(teachers, rows, d)
      const ts = this.#scores(tn, rows, matmul)
      // a true cosine: the stored fp16 rows are only unit up to rounding (‖q‖ − 1 is first-order in the error)
      const norms = this.#slotNorms()
      excluded = new Uint8Array(rows * n)
      for (let b = 0; b < rows; b++) {
        for (let s = 0; s < n; s++) if (ts[b * n + s] >= minCosine * norms[s]) excluded[b * n + s] = 1
      }
    }

    if (rule === "shared-mean") {
      const mean = new Float32Array(d)
      for (let b = 0; b < rows; b++) for (let j = 0; j < d; j++) mean[j] += pn[b * d + j]
      for (let j = 0; j < d; j++) mean[j] /= rows
      const scores = this.#scores(mean, 1, matmul)
      let skip: ((s: number) => boolean) | undefined
      if (excluded !== null) {
        const ex = excluded
        const any = new Uint8Array(n)
        for (let b = 0; b < rows; b++) for (let s = 0; s < n; s++) if (ex[b * n + s] === 1) any[s] = 1
        skip = (s) => any[s] === 1
      }
      const idx = topKIndices(scores, Math.max(0, Math.min(k, n)), 0, n, skip)
      const sc = new Float32Array(idx.length)
      for (let i = 0; i < idx.length; i++) sc[i] = scores[idx[i]]
      return { rule, k: idx.length, rows, indices: idx, scores: sc }
    }

    const scores = this.#scores(pn, rows, matmul)
    const perRow: Int32Array[] = []
    let kEff = Math.max(0, Math.min(k, n))
    for (let b = 0; b < rows; b++) {
      const ex = excluded
      const skip = ex === null ? undefined : (s: number) => ex[b * n + s] === 1
      const idx = topKIndices(scores, kEff, b * n, n, skip)
      perRow.push(idx)
    }
    for (const idx of perRow) kEff = Math.min(kEff, idx.length)
    const indices = new Int32Array(rows * kEff)
    const sc = new Float32Array(rows * kEff)
    for (let b = 0; b < rows; b++) {
      for (let j = 0; j < kEff; j++) {
        indices[b * kEff + j] = perRow[b][j]
        sc[b * kEff + j] = scores[b * n + perRow[b][j]]
      }
    }
    return { rule, k: kEff, rows, indices, scores: sc }
  }

  /** A copy of the state for a checkpoint. */
  snapshot(): QueueSnapshot {
    return { capacity: this.capacity, dim: this.dim, head: this.#head, size: this.#size, bits: this.#bits.slice() }
  }

  /** A queue restored from a snapshot (validated). */
  static restore(s: QueueSnapshot, options?: QueueOptions): TeacherQueue {
    const q = new TeacherQueue(s.capacity, s.dim, options)
    if (s.bits.length !== s.capacity * s.dim) {
      throw new Error(`queue: snapshot has ${s.bits.length} values, expected ${s.capacity * s.dim}`)
    }
    if (!Number.isInteger(s.size) || s.size < 0 || s.size > s.capacity) throw new Error(`queue: bad snapshot size ${s.size}`)
    if (!Number.isInteger(s.head) || s.head < 0 || s.head >= s.capacity) throw new Error(`queue: bad snapshot head ${s.head}`)
    if (s.size < s.capacity && s.head !== s.size) {
      throw new Error(`queue: snapshot head ${s.head} must equal size ${s.size} before the ring is full`)
    }
    q.#bits.set(s.bits)
    if (q.#mirror !== null) decodeF16(q.#bits, 0, q.#bits.length, q.#mirror)
    q.#head = s.head
    q.#size = s.size
    return q
  }
}
