/**
 * Small host-side (plain Float32Array) numerics shared by the Stage A queue and the retrieval metrics:
 * the `HostTensor` shape, a pluggable `a·bᵀ` matrix product, row L2 norms and a partial top-k selection.
 *
 * Everything here is row-major and allocation-light; nothing touches tfjs, so the fast backend can be plugged in
 * through `MatMulABt` without this module knowing about it.
 */

/** A dense float32 tensor on the host (the type `src/models/safetensors.ts` reads and writes). */
export type { HostTensor } from "../models/safetensors.ts"

/**
 * `out[i·bRows + j] = Σ_k a[i·d + k] · b[j·d + k]` — the product a·bᵀ of two row-major matrices a [aRows, d] and
 * b [bRows, d]. Implementations may accumulate in float32 (BLAS sgemm) or float64. `out`, when given, has at least
 * aRows·bRows elements and is overwritten; the return value is the array written.
 */
export type MatMulABt = (
  a: Float32Array,
  aRows: number,
  b: Float32Array,
  bRows: number,
  d: number,
  out?: Float32Array
) => Float32Array

/** The default `MatMulABt`: a cache-blocked loop in plain JS with float64 accumulation (exact enough, not fast). */
export const matMulABtJs: MatMulABt = (a, aRows, b, bRows, d, out) => {
  const res = out ?? new Float32Array(aRows * bRows)
  const BLOCK = 32
  for (let j0 = 0; j0 < bRows; j0 += BLOCK) {
    const j1 = Math.min(bRows, j0 + BLOCK)
    for (let i = 0; i < aRows; i++) {
      const ai = i * d
      for (let j = j0; j < j1; j++) {
        const bj = j * d
        let s0 = 0
        let s1 = 0
        let s2 = 0
        let s3 = 0
        let k = 0
        for (; k + 3 < d; k += 4) {
          s0 += a[ai + k] * b[bj + k]
          s1 += a[ai + k + 1] * b[bj + k + 1]
          s2 += a[ai + k + 2] * b[bj + k + 2]
          s3 += a[ai + k + 3] * b[bj + k + 3]
        }
        for (; k < d; k++) s0 += a[ai + k] * b[bj + k]
        res[i * bRows + j] = s0 + s1 + s2 + s3
      }
    }
  }
  return res
}

/** The L2 norm of each row of a [rows, d] matrix (float64 accumulation). */
export const rowNorms = (x: Float32Array, rows: number, d: number): Float64Array => {
  const out = new Float64Array(rows)
  for (let i = 0; i < rows; i++) {
    let s = 0
    const o = i * d
    for (let k = 0; k < d; k++) s += x[o + k] * x[o + k]
    out[i] = Math.sqrt(s)
  }
  return out
}

/**
 * A copy of x [rows, d] with every row divided by max(‖row‖, eps) — the same rule as PyTorch `F.normalize`
 * (eps 1e-12), so an all-zero row stays zero.
 */
export const l2NormalizeRows = (x: Float32Array, rows: number, d: number, eps = 1e-12): Float32Array => {
  const out = new Float32Array(rows * d)
  const norms = rowNorms(x, rows, d)
  for (let i = 0; i < rows; i++) {
    const inv = 1 / Math.max(norms[i], eps)
    const o = i * d
    for (let k = 0; k < d; k++) out[o + k] = x[o + k] * inv
  }
  return out
}

/**
 * The indices of the k largest values of `scores[offset … offset+n)` (indices relative to `offset`), best first,
 * by a bounded min-heap: O(n log k), no full sort. Order: higher score first; equal scores → lower index first;
 * NaN counts as −∞. Indices for which `skip(i)` is true are never selected. Returns fewer than k when fewer
 * candidates remain.
 */
export const topKIndices = (
  scores: ArrayLike<number>,
  k: number,
  offset = 0,
  n = scores.length - offset,
  skip?: (i: number) => boolean
): Int32Array => {
  if (k <= 0 || n <= 0) return new Int32Array(0)
  const heapIdx = new Int32Array(k)
  const heapVal = new Float64Array(k)
  let size = 0
  const val = (i: number): number => {
    const v = scores[offset + i]
    return Number.isNaN(v) ? Number.NEGATIVE_INFINITY : v
  }
  // "worse(a, b)": a ranks below b (lower score, or equal score and higher index). The heap root is the worst kept.
  const worse = (va: number, ia: number, vb: number, ib: number): boolean => va < vb || (va === vb && ia > ib)
  const siftDown = (pos: number): void => {
    let p = pos
    for (;;) {
      const l = 2 * p + 1
      if (l >= size) return
      const r = l + 1
      let w = l
      if (r < size && worse(heapVal[r], heapIdx[r], heapVal[l], heapIdx[l])) w = r
      if (!worse(heapVal[w], heapIdx[w], heapVal[p], heapIdx[p])) return
      const ti = heapIdx[p]
      const tv = heapVal[p]
      heapIdx[p] = heapIdx[w]
      heapVal[p] = heapVal[w]
      heapIdx[w] = ti
      heapVal[w] = tv
      p = w
    }
  }
  const siftUp = (pos: number): void => {
    let c = pos
    while (c > 0) {
      const p = (c - 1) >> 1
      if (!worse(heapVal[c], heapIdx[c], heapVal[p], heapIdx[p])) return
      const ti = heapIdx[p]
      const tv = heapVal[p]
      heapIdx[p] = heapIdx[c]
      heapVal[p] = heapVal[c]
      heapIdx[c] = ti
      heapVal[c] = tv
      c = p
    }
  }
  for (let i = 0; i < n; i++) {
    if (skip !== undefined && skip(i)) continue
    const v = val(i)
    if (size < k) {
      heapIdx[size] = i
      heapVal[size] = v
      size++
      siftUp(size - 1)
    } else if (worse(heapVal[0], heapIdx[0], v, i)) {
      heapIdx[0] = i
      heapVal[0] = v
      siftDown(0)
    }
  }
  // Pop the heap worst-first into the tail of the output, so the result is best-first.
  const out = new Int32Array(size)
  for (let pos = size - 1; pos >= 0; pos--) {
    out[pos] = heapIdx[0]
    size--
    if (size > 0) {
      heapIdx[0] = heapIdx[size]
      heapVal[0] = heapVal[size]
      siftDown(0)
    }
  }
  return out
}
