/**
 * Layout loops behind the `cpu-blas` data-movement kernels (Slice, StridedSlice, PadV2, SplitV, Concat, GatherV2,
 * UnsortedSegmentSum): strided box copies done as contiguous runs, row gathers and a single-pass segment sum.
 * Pure functions on Float32Arrays; the kernel wiring (argument parsing, fallbacks, buffer pool) is in `cpuBlas/dataMovement.ts`.
 */

/** Runs shorter than this are copied with a plain loop (a `subarray` view costs more than copying a few floats). */
const SHORT_RUN = 48

const copyRun = (src: Float32Array, so: number, dst: Float32Array, d: number, run: number): void => {
  if (run < SHORT_RUN) for (let j = 0; j < run; j++) dst[d + j] = src[so + j]
  else dst.set(src.subarray(so, so + run), d)
}

const stridesOf = (shape: ReadonlyArray<number>): Array<number> => {
  const s = new Array<number>(shape.length)
  let acc = 1
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc
    acc *= shape[d]
  }
  return s
}

/**
 * Copy the box `size` starting at `srcBegin` of the row-major tensor `src` (shape `srcShape`) to `dstBegin` of
 * the row-major tensor `dst` (shape `dstShape`, same rank). Trailing dims that are whole in both tensors are
 * merged into one contiguous run; the rest is walked with an odometer.
 */
export const copyBox = (
  src: Float32Array,
  srcShape: ReadonlyArray<number>,
  srcBegin: ReadonlyArray<number>,
  dst: Float32Array,
  dstShape: ReadonlyArray<number>,
  dstBegin: ReadonlyArray<number>,
  size: ReadonlyArray<number>
): void => {
  const r = size.length
  let total = 1
  for (const d of size) total *= d
  if (total === 0) return
  const ss = stridesOf(srcShape)
  const ds = stridesOf(dstShape)
  let so = 0
  let d0 = 0
  for (let d = 0; d < r; d++) {
    so += srcBegin[d] * ss[d]
    d0 += dstBegin[d] * ds[d]
  }
  if (r === 0) {
    dst[d0] = src[so]
    return
  }
  // Merge the innermost dims into one run while the dims below are whole in both tensors.
  let j = r - 1
  let run = size[j]
  while (j > 0 && size[j] === srcShape[j] && size[j] === dstShape[j]) {
    j--
    run *= size[j]
  }
  // dims 0..j-1 are walked; dim j and below form the run.
  if (j === 0) {
    copyRun(src, so, dst, d0, run)
    return
  }
  const outer = total / run
  const loc = new Array<number>(j).fill(0)
  let s = so
  let t = d0
  for (let i = 0; i < outer; i++) {
    copyRun(src, s, dst, t, run)
    for (let d = j - 1; d >= 0; d--) {
      if (++loc[d] < size[d]) {
        s += ss[d]
        t += ds[d]
        break
      }
      s -= (size[d] - 1) * ss[d]
      t -= (size[d] - 1) * ds[d]
      loc[d] = 0
    }
  }
}

/** `x[begin : begin + size]` of a row-major tensor into a fresh contiguous `o` (o.length = prod(size)). */
export const sliceInto = (
  X: Float32Array,
  shape: ReadonlyArray<number>,
  begin: ReadonlyArray<number>,
  size: ReadonlyArray<number>,
  o: Float32Array
): void => copyBox(X, shape, begin, o, size, new Array<number>(size.length).fill(0), size)

/**
 * Concatenate along `axis`: each input viewed as [outer, inner_i] (inner_i = prod(shape_i[axis:])), the output
 * as [outer, Σ inner_i]; row r of input i goes to columns [off_i, off_i + inner_i) of output row r.
 */
export const concatInto = (
  parts: ReadonlyArray<{ readonly values: Float32Array; readonly shape: ReadonlyArray<number> }>,
  axis: number,
  o: Float32Array
): void => {
  if (parts.length === 0 || o.length === 0) return
  let outer = 1
  for (let d = 0; d < axis; d++) outer *= parts[0].shape[d]
  if (outer === 0) return
  const width = o.length / outer
  let off = 0
  for (const p of parts) {
    const inner = p.values.length / outer
    if (inner > 0) for (let r = 0; r < outer; r++) copyRun(p.values, r * inner, o, r * width + off, inner)
    off += inner
  }
}

/** The inverse of `concatInto`: split X (viewed as [outer, Σ inner_i]) into the given outputs. */
export const splitFrom = (
  X: Float32Array,
  outer: number,
  outs: ReadonlyArray<Float32Array>
): void => {
  if (outer === 0) return
  const width = X.length / outer
  let off = 0
  for (const o of outs) {
    const inner = o.length / outer
    if (inner > 0) for (let r = 0; r < outer; r++) copyRun(X, r * width + off, o, r * inner, inner)
    off += inner
  }
}

/**
 * Gather along one axis (batchDims 0): X viewed as [outer, dim, inner], `idx` flat indices (all in [0, dim)),
 * output [outer, idx.length, inner].
 */
export const gatherInto = (
  X: Float32Array,
  outer: number,
  dim: number,
  inner: number,
  idx: ArrayLike<number>,
  o: Float32Array
): void => {
  const n = idx.length
  let w = 0
  for (let a = 0; a < outer; a++) {
    const base = a * dim * inner
    if (inner === 1) for (let i = 0; i < n; i++) o[w++] = X[base + idx[i]]
    else
      for (let i = 0; i < n; i++) {
        copyRun(X, base + idx[i] * inner, o, w, inner)
        w += inner
      }
  }
}

/**
 * out[s, :] = Σ_{i : ids[i] = s} X[i, :] for X viewed as [ids.length, inner], out as [numSegments, inner]; ids
 * outside [0, numSegments) are skipped (as the stock kernel does). One pass over X; sums accumulate in float64 in
 * row order (as the stock kernel's Sum does), only for the segments that occur. `o` may be dirty: it is zeroed.
 * One deliberate difference: the stock kernel computes mask·x, so a NaN/±Infinity in any row turns that column
 * into NaN in every segment; here it only reaches its own segment.
 */
export const segmentSumInto = (
  X: Float32Array,
  ids: ArrayLike<number>,
  numSegments: number,
  inner: number,
  o: Float32Array
): void => {
  o.fill(0)
  const n = ids.length
  if (inner === 0 || n === 0) return
  // slot[s]: row of `acc` for segment s, or -1.
  const slot = new Int32Array(numSegments).fill(-1)
  const order: Array<number> = []
  for (let i = 0; i < n; i++) {
    const s = ids[i]
    if (s >= 0 && s < numSegments && slot[s] === -1) {
      slot[s] = order.length
      order.push(s)
    }
  }
  const acc = new Float64Array(order.length * inner)
  for (let i = 0; i < n; i++) {
    const s = ids[i]
    if (!(s >= 0 && s < numSegments)) continue
    const a = slot[s] * inner
    const x = i * inner
    for (let j = 0; j < inner; j++) acc[a + j] += X[x + j]
  }
  for (let k = 0; k < order.length; k++) {
    const a = k * inner
    const t = order[k] * inner
    for (let j = 0; j < inner; j++) o[t + j] = acc[a + j]
  }
}
