/**
 * The `cpu-blas` tensorflow.js backend: the stock CPU backend (a `MathBackendCPU` with every stock kernel copied)
 * whose hot kernels are replaced: matrix products go to OpenBLAS `cblas_sgemm`, and the element-wise, reduction,
 * softmax and transpose kernels that dominate transformer training run as tight Float32Array loops.
 *
 * Sections: the backend class (`BlasBackend`, which pools the large buffers its kernels allocate), matrix
 * products, binary/unary/reduction/transpose loops, the kernel table (`REPLACED_KERNELS`), fused kernels with no
 * stock counterpart (`FUSED_KERNELS`, used by `ops.ts`), and `registerBlasBackend`.
 *
 * The data-movement kernels (Slice, StridedSlice with stride 1, PadV2, Concat, SplitV, GatherV2 with batchDims 0,
 * UnsortedSegmentSum with 1-D ids) copy contiguous runs (loops in `copy.ts`) instead of the stock per-element
 * index arithmetic; binary kernels take any numpy broadcast (general N-d path: `broadcastBlocks`).
 *
 * Every replaced kernel handles float32 and the common shapes; anything else (int32/bool/complex inputs,
 * non-contiguous reduction axes, prelu activations, rank > 5 transposes, strided slices) is passed,
 * per call, to the stock kernel. Results match the stock kernels: the binary and unary loops use the same
 * formulas in the same order (bit-identical), except Erf and Exp, whose exp is a faster inlined one within
 * 1 float32 ulp of Math.exp; sums accumulate in float64 like the stock ones; matrix products differ only by
 * summation order.
 *
 * Autodiff needs nothing here: gradients are registered per kernel name and are built from other kernels.
 * Kernels registered for `cpu` after `registerBlasBackend()` ran are not copied: register them for `cpu-blas` too.
 *
 * Use: `registerBlasBackend()` then `await tf.setBackend(BLAS_BACKEND)` (or `initBackend("blas")` from
 * `service.ts`). Throws `BlasUnavailableError` when OpenBLAS cannot be loaded. `kernelStats` counts fast paths
 * and fallbacks; `kernelTiming` times kernels on demand.
 */
import * as tf from "@tensorflow/tfjs"
import { loadBlas } from "./blas.ts"
import type { Blas } from "./blas.ts"
import { concatInto, copyBox, gatherInto, segmentSumInto, sliceInto, splitFrom } from "./copy.ts"

/** The backend name registered with tensorflow.js. */
export const BLAS_BACKEND = "cpu-blas"

type Cpu = tf.MathBackendCPU
type KernelArgs = Parameters<tf.KernelFunc>[0]
type KernelResult = ReturnType<tf.KernelFunc>

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const cpuOf = (backend: {}): Cpu => {
  if (!(backend instanceof tf.MathBackendCPU)) {
    throw new Error(`${BLAS_BACKEND} kernel called with a backend that is not a MathBackendCPU`)
  }
  return backend
}

/**
 * The float32 values of a tensor, or undefined when it is not float32. The stock Cast kernel turns int32/bool
 * tensors into float32 ones that keep their Int32Array/Uint8Array storage; those are converted (exact below 2^24).
 */
const f32 = (be: Cpu, t: tf.TensorInfo | undefined): Float32Array | undefined => {
  if (t === undefined || t.dtype !== "float32") return undefined
  const v = be.data.get(t.dataId).values
  if (v instanceof Float32Array) return v
  if (v instanceof Int32Array || v instanceof Uint8Array) return Float32Array.from(v)
  return undefined
}

const sizeOf = (shape: ReadonlyArray<number>): number => {
  let n = 1
  for (const d of shape) n *= d
  return n
}

const boolAttr = (args: KernelArgs, name: string): boolean => args.attrs?.[name] === true

const out = (be: Cpu, shape: Array<number>, values: Float32Array): tf.TensorInfo =>
  be.makeTensorInfo(shape, "float32", values)

/** Normalised, sorted, unique axes; undefined when an axis is out of range. */
const parseAxes = (raw: unknown, rank: number): Array<number> | undefined => {
  const list = raw === undefined || raw === null ? [...Array(rank).keys()] : Array.isArray(raw) ? raw : [raw]
  const axes: Array<number> = []
  for (const a of list) {
    if (typeof a !== "number" || !Number.isInteger(a) || a < -rank || a >= Math.max(rank, 1)) return undefined
    const n = a < 0 ? a + rank : a
    if (!axes.includes(n)) axes.push(n)
  }
  return axes.sort((x, y) => x - y)
}

// ---------------------------------------------------------------------------------------------------------------
// The backend: a MathBackendCPU that recycles the large float32 buffers its own kernels allocate

/** Buffers of at least this many elements are pooled (smaller ones are cheap to allocate). */
const POOL_MIN_ELEMENTS = 4096
/** Most bytes kept in the pool; beyond this, freed buffers are left to the garbage collector. */
const POOL_MAX_BYTES = 512 * 1024 * 1024

interface Owned {
  /** The array `alloc` handed out (the pool recycles this exact array). */
  readonly array: Float32Array
  /** How many live dataIds store this buffer or a view of it. */
  users: number
  /** Read out through `readSync`/`read`: the caller may still hold the array, so it is never recycled or
   *  mutated in place. */
  exposed: boolean
}

/**
 * Allocating a fresh multi-megabyte Float32Array costs about as much as one element-wise pass over it (page
 * faults and zeroing), so this backend keeps freed kernel outputs in a pool keyed by length. A buffer is
 * recycled only when (1) one of this backend's kernels allocated it, (2) no live tensor stores it or a view of
 * it, and (3) it was never handed out by `readSync`/`read` (`dataSync()`/`data()` return the stored array on
 * CPU backends). Arrays passed in by users (`tf.tensor(myArray)`) are never recycled or written.
 */
export class BlasBackend extends tf.MathBackendCPU {
  private readonly owned = new WeakMap<ArrayBufferLike, Owned>()
  private readonly pool = new Map<number, Array<Float32Array>>()
  private pooledBytes = 0
  /** Pool counters: hits (recycled), misses (fresh allocations of poolable size). */
  readonly poolStats = { hits: 0, misses: 0 }

  constructor() {
    super()
    // The stock backend prints a "use tfjs-node" banner on first write; this backend is the answer to it.
    Reflect.set(this, "firstUse", false)
  }

  /** A float32 buffer of n elements with unspecified contents (callers overwrite every element). */
  alloc(n: number): Float32Array {
    if (n < POOL_MIN_ELEMENTS) return new Float32Array(n)
    const free = this.pool.get(n)
    let array = free?.pop()
    if (array !== undefined) {
      this.pooledBytes -= array.byteLength
      this.poolStats.hits++
    } else {
      array = new Float32Array(n)
      this.poolStats.misses++
    }
    this.owned.set(array.buffer, { array, users: 0, exposed: false })
    return array
  }

  /** True when the tensor's buffer may be overwritten in place: this backend allocated it, exactly one
   *  tensor reference holds it, no other tensor views it, and it was never read out. */
  canMutate(dataId: tf.DataId): boolean {
    if (!this.data.has(dataId) || this.refCount(dataId) !== 1) return false
    const values = this.data.get(dataId).values
    if (!(values instanceof Float32Array)) return false
    const o = this.owned.get(values.buffer)
    return o !== undefined && o.array === values && o.users === 1 && !o.exposed
  }

  /** Bytes currently held in the pool. */
  pooled(): number {
    return this.pooledBytes
  }

  private track(values: unknown, delta: number): void {
    if (!ArrayBuffer.isView(values)) return
    const o = this.owned.get(values.buffer)
    if (o === undefined) return
    o.users += delta
    if (o.users === 0 && !o.exposed) {
      const n = o.array.length
      if (this.pooledBytes + o.array.byteLength > POOL_MAX_BYTES) return
      const free = this.pool.get(n)
      if (free === undefined) this.pool.set(n, [o.array])
      else free.push(o.array)
      this.pooledBytes += o.array.byteLength
      this.owned.delete(values.buffer)
    }
  }

  private expose(dataId: tf.DataId): void {
    if (!this.data.has(dataId)) return
    const values = this.data.get(dataId).values
    if (!ArrayBuffer.isView(values)) return
    const o = this.owned.get(values.buffer)
    if (o !== undefined) o.exposed = true
  }

  override write(...args: Parameters<tf.MathBackendCPU["write"]>): ReturnType<tf.MathBackendCPU["write"]> {
    this.track(args[0], 1)
    return super.write(...args)
  }

  override move(...args: Parameters<tf.MathBackendCPU["move"]>): void {
    const [dataId, values] = args
    if (this.data.has(dataId)) this.track(this.data.get(dataId).values, -1)
    this.track(values, 1)
    super.move(...args)
  }

  override disposeData(dataId: tf.DataId, force?: boolean): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined
    const done = super.disposeData(dataId, force)
    if (values !== undefined && !this.data.has(dataId)) this.track(values, -1)
    return done
  }

  override readSync(dataId: tf.DataId): ReturnType<tf.MathBackendCPU["readSync"]> {
    this.expose(dataId)
    return super.readSync(dataId)
  }

  override read(dataId: tf.DataId): ReturnType<tf.MathBackendCPU["read"]> {
    this.expose(dataId)
    return super.read(dataId)
  }

  override dispose(): void {
    this.pool.clear()
    this.pooledBytes = 0
    super.dispose()
  }
}

/** A pooled buffer on `BlasBackend`, a fresh one elsewhere. */
const allocFor = (be: Cpu, n: number): Float32Array => (be instanceof BlasBackend ? be.alloc(n) : new Float32Array(n))

// ---------------------------------------------------------------------------------------------------------------
// Matrix products

/** Output batch → (A batch, B batch) under numpy broadcasting of the leading dims. */
const batchIndexMaps = (
  outerA: ReadonlyArray<number>,
  outerB: ReadonlyArray<number>,
  outerOut: ReadonlyArray<number>
): { readonly ia: Int32Array; readonly ib: Int32Array } => {
  const r = outerOut.length
  const pa = [...Array(r - outerA.length).fill(1), ...outerA]
  const pb = [...Array(r - outerB.length).fill(1), ...outerB]
  const n = sizeOf(outerOut)
  const ia = new Int32Array(n)
  const ib = new Int32Array(n)
  const loc = new Array<number>(r).fill(0)
  for (let i = 0; i < n; i++) {
    let xa = 0
    let xb = 0
    for (let d = 0; d < r; d++) {
      xa = xa * pa[d] + (pa[d] === 1 ? 0 : loc[d])
      xb = xb * pb[d] + (pb[d] === 1 ? 0 : loc[d])
    }
    ia[i] = xa
    ib[i] = xb
    for (let d = r - 1; d >= 0; d--) {
      if (++loc[d] < outerOut[d]) break
      loc[d] = 0
    }
  }
  return { ia, ib }
}

interface GemmPlan {
  readonly outShape: Array<number>
  readonly run: (blas: Blas, A: Float32Array, B: Float32Array, C: Float32Array, beta: number) => void
}

/** Plan `op(A)·op(B)` for tfjs BatchMatMul semantics (rank ≥ 2, broadcast leading dims). */
const planGemm = (
  aShape: ReadonlyArray<number>,
  bShape: ReadonlyArray<number>,
  transA: boolean,
  transB: boolean
): GemmPlan => {
  const ar = aShape.length
  const br = bShape.length
  const aRows = aShape[ar - 2]
  const aCols = aShape[ar - 1]
  const bRows = bShape[br - 2]
  const bCols = bShape[br - 1]
  const m = transA ? aCols : aRows
  const k = transA ? aRows : aCols
  const kb = transB ? bCols : bRows
  const n = transB ? bRows : bCols
  if (k !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${aShape} and ${bShape} and ` +
        `transposeA=${transA} and transposeB=${transB} must match.`
    )
  }
  const outerA = aShape.slice(0, -2)
  const outerB = bShape.slice(0, -2)
  const outerOut = tf.broadcast_util.assertAndGetBroadcastShape([...outerA], [...outerB])
  const outShape = [...outerOut, m, n]
  const batch = sizeOf(outerOut)
  const batchA = sizeOf(outerA)
  const batchB = sizeOf(outerB)
  const strideA = aRows * aCols
  const strideB = bRows * bCols
  const strideC = m * n
  return {
    outShape,
    run: (blas, A, B, C, beta) => {
      if (batch === 0 || m === 0 || n === 0) return
      if (k === 0) {
        if (beta === 0) C.fill(0)
        return
      }
      if (batch === 1) {
        blas.sgemm(transA, transB, m, n, k, 1, A, aCols, B, bCols, beta, C, n)
        return
      }
      if (batchB === 1 && !transA && batchA === batch) {
        // B shared by every batch and A's rows contiguous: one GEMM with the batch folded into M.
        blas.sgemm(false, transB, batch * m, n, k, 1, A, aCols, B, bCols, beta, C, n)
        return
      }
      const { ia, ib } = batchIndexMaps(outerA, outerB, outerOut)
      for (let i = 0; i < batch; i++) {
        const a = batchA === 1 ? A : A.subarray(ia[i] * strideA, (ia[i] + 1) * strideA)
        const b = batchB === 1 ? B : B.subarray(ib[i] * strideB, (ib[i] + 1) * strideB)
        blas.sgemm(transA, transB, m, n, k, 1, a, aCols, b, bCols, beta, C.subarray(i * strideC), n)
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Broadcast patterns for binary element-wise kernels

/** How an operand maps onto the output, flattened: `same` (x[i]), `row` (x[i % p], x repeats every p
 *  elements: its non-1 dims are a suffix of the output's), `col` (x[floor(i / p)], each element repeats p
 *  times: its non-1 dims are a prefix), or `other`. A scalar is `col` with p = output size. */
type Pattern =
  | { readonly kind: "same" }
  | { readonly kind: "row"; readonly p: number }
  | { readonly kind: "col"; readonly p: number }
  | { readonly kind: "other" }

const classify = (xShape: ReadonlyArray<number>, outShape: ReadonlyArray<number>): Pattern => {
  const r = outShape.length
  const outSize = sizeOf(outShape)
  const xSize = sizeOf(xShape)
  if (xSize === outSize) return { kind: "same" }
  if (xSize === 1) return { kind: "col", p: outSize }
  const px = [...Array(r - xShape.length).fill(1), ...xShape]
  // suffix: x[d] = 1 for d < s, x[d] = out[d] for d >= s
  let s = r
  while (s > 0 && px[s - 1] === outShape[s - 1]) s--
  let ok = true
  for (let d = 0; d < s; d++) if (px[d] !== 1) ok = false
  if (ok) return { kind: "row", p: xSize }
  // prefix: x[d] = out[d] for d < e, x[d] = 1 for d >= e
  let e = 0
  while (e < r && px[e] === outShape[e]) e++
  ok = true
  for (let d = e; d < r; d++) if (px[d] !== 1) ok = false
  if (ok) return { kind: "col", p: outSize / xSize }
  return { kind: "other" }
}

/** Loop shapes: SS both same; SR a same, b row; SC a same, b col; RS a row, b same; CS a col, b same. */
const SS = 0
const SR = 1
const SC = 2
const RS = 3
const CS = 4

type BinaryLoop = (a: Float32Array, b: Float32Array, o: Float32Array, mode: number, p: number) => void

// One hand-written loop set per op, so every inner loop is monomorphic and inlined.
const addLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] + b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] + b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] + b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] + v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v + b[s + j]
    }
}
const subLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] - b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] - b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] - b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] - v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v - b[s + j]
    }
}
const mulLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] * b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] * b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] * b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] * v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v * b[s + j]
    }
}
const divLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] / b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] / b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] / b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] / v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v / b[s + j]
    }
}
const sqDiffLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS)
    for (let i = 0; i < n; i++) {
      const d = a[i] - b[i]
      o[i] = d * d
    }
  else if (mode === SR)
    for (let s = 0; s < n; s += p)
      for (let j = 0; j < p; j++) {
        const d = a[s + j] - b[j]
        o[s + j] = d * d
      }
  else if (mode === RS)
    for (let s = 0; s < n; s += p)
      for (let j = 0; j < p; j++) {
        const d = a[j] - b[s + j]
        o[s + j] = d * d
      }
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) {
        const d = a[s + j] - v
        o[s + j] = d * d
      }
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) {
        const d = v - b[s + j]
        o[s + j] = d * d
      }
    }
}

const powLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SC && p === n && (b[0] === 0 || b[0] === 1 || b[0] === 2 || b[0] === 3 || b[0] === -1)) {
    // Scalar small-integer exponents (norms and their gradients): Math.pow is ~10× slower than a product.
    const e = b[0]
    if (e === 0) o.fill(1)
    else if (e === 1) o.set(a)
    else if (e === 2) for (let i = 0; i < n; i++) o[i] = a[i] * a[i]
    else if (e === 3) for (let i = 0; i < n; i++) o[i] = a[i] * a[i] * a[i]
    else for (let i = 0; i < n; i++) o[i] = 1 / a[i]
  } else if (mode === SS) for (let i = 0; i < n; i++) o[i] = Math.pow(a[i], b[i])
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = Math.pow(a[s + j], b[j])
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = Math.pow(a[j], b[s + j])
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = Math.pow(a[s + j], v)
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = Math.pow(v, b[s + j])
    }
}

/** Run a binary loop for the given shapes, or return undefined when the broadcast is not a fast pattern. */
const binary = (
  alloc: (n: number) => Float32Array,
  loop: BinaryLoop,
  aShape: ReadonlyArray<number>,
  bShape: ReadonlyArray<number>,
  A: Float32Array,
  B: Float32Array
): { shape: Array<number>; values: Float32Array } | undefined => {
  const shape = tf.broadcast_util.assertAndGetBroadcastShape([...aShape], [...bShape])
  const n = sizeOf(shape)
  const o = alloc(n)
  if (n === 0) return { shape, values: o }
  const pa = classify(aShape, shape)
  const pb = classify(bShape, shape)
  if (pa.kind === "same") {
    if (pb.kind === "same") loop(A, B, o, SS, n)
    else if (pb.kind === "row") loop(A, B, o, SR, pb.p)
    else if (pb.kind === "col") loop(A, B, o, SC, pb.p)
    else return broadcastBlocks(loop, aShape, bShape, shape, A, B, o) ? { shape, values: o } : undefined
  } else if (pb.kind === "same") {
    if (pa.kind === "row") loop(A, B, o, RS, pa.p)
    else if (pa.kind === "col") loop(A, B, o, CS, pa.p)
    else return broadcastBlocks(loop, aShape, bShape, shape, A, B, o) ? { shape, values: o } : undefined
  } else return broadcastBlocks(loop, aShape, bShape, shape, A, B, o) ? { shape, values: o } : undefined
  return { shape, values: o }
}

/** An operand's pattern over the trailing block of merged dims [k, r): which mode letter and period it has. */
const blockPattern = (
  bcast: ReadonlyArray<boolean>,
  dims: ReadonlyArray<number>,
  k: number
): { readonly kind: "same" | "row" | "col"; readonly p: number } | undefined => {
  const r = dims.length
  // same: nothing broadcast; row: broadcast dims then kept dims; col: kept dims then broadcast dims.
  let j = k
  while (j < r && bcast[j]) j++
  let i = j
  while (i < r && !bcast[i]) i++
  if (i === r) {
    if (j === k) return { kind: "same", p: 0 }
    let p = 1
    for (let d = j; d < r; d++) p *= dims[d]
    return { kind: "row", p }
  }
  if (j !== k) return undefined
  let m = i
  while (m < r && bcast[m]) m++
  if (m !== r) return undefined
  let p = 1
  for (let d = i; d < r; d++) p *= dims[d]
  return { kind: "col", p }
}

/**
 * General N-d broadcasting for a binary loop: squeeze the output's size-1 dims, merge adjacent dims on which both
 * operands behave alike (both kept or both broadcast), then pick the largest trailing block over which the
 * operands form a pattern the loops handle (same/row/col on one side, same on the other, or a scalar) and run
 * the loop once per block with an odometer over the leading dims. False when no pattern fits (never expected:
 * a single trailing dim always fits).
 */
const broadcastBlocks = (
  loop: BinaryLoop,
  aShape: ReadonlyArray<number>,
  bShape: ReadonlyArray<number>,
  outShape: ReadonlyArray<number>,
  A: Float32Array,
  B: Float32Array,
  o: Float32Array
): boolean => {
  const r0 = outShape.length
  const pa = [...Array(r0 - aShape.length).fill(1), ...aShape]
  const pb = [...Array(r0 - bShape.length).fill(1), ...bShape]
  // Squeeze and merge.
  const dims: Array<number> = []
  const ab: Array<boolean> = []
  const bb: Array<boolean> = []
  for (let d = 0; d < r0; d++) {
    const n = outShape[d]
    if (n === 1) continue
    const xa = pa[d] === 1
    const xb = pb[d] === 1
    const last = dims.length - 1
    if (last >= 0 && ab[last] === xa && bb[last] === xb) dims[last] *= n
    else {
      dims.push(n)
      ab.push(xa)
      bb.push(xb)
    }
  }
  const r = dims.length
  if (r === 0) {
    loop(A, B, o, SS, 1)
    return true
  }
  // Element strides of each operand over the merged dims (0 where broadcast).
  const sa = new Array<number>(r).fill(0)
  const sb = new Array<number>(r).fill(0)
  let accA = 1
  let accB = 1
  for (let d = r - 1; d >= 0; d--) {
    if (!ab[d]) {
      sa[d] = accA
      accA *= dims[d]
    }
    if (!bb[d]) {
      sb[d] = accB
      accB *= dims[d]
    }
  }
  for (let k = 0; k < r; k++) {
    const xa = blockPattern(ab, dims, k)
    const xb = blockPattern(bb, dims, k)
    if (xa === undefined || xb === undefined) continue
    let mode: number
    let p: number
    if (xa.kind === "same" && xb.kind === "same") [mode, p] = [SS, 0]
    else if (xa.kind === "same" && xb.kind === "row") [mode, p] = [SR, xb.p]
    else if (xa.kind === "same" && xb.kind === "col") [mode, p] = [SC, xb.p]
    else if (xa.kind === "row" && xb.kind === "same") [mode, p] = [RS, xa.p]
    else if (xa.kind === "col" && xb.kind === "same") [mode, p] = [CS, xa.p]
    else continue
    let block = 1
    let lenA = 1
    let lenB = 1
    for (let d = k; d < r; d++) {
      block *= dims[d]
      if (!ab[d]) lenA *= dims[d]
      if (!bb[d]) lenB *= dims[d]
    }
    if (mode === SS) p = block
    if (k === 0) {
      loop(A, B, o, mode, p)
      return true
    }
    const outer = o.length / block
    const loc = new Array<number>(k).fill(0)
    let oa = 0
    let ob = 0
    for (let i = 0; i < outer; i++) {
      const os = i * block
      loop(A.subarray(oa, oa + lenA), B.subarray(ob, ob + lenB), o.subarray(os, os + block), mode, p)
      for (let d = k - 1; d >= 0; d--) {
        if (++loc[d] < dims[d]) {
          oa += sa[d]
          ob += sb[d]
          break
        }
        oa -= (dims[d] - 1) * sa[d]
        ob -= (dims[d] - 1) * sb[d]
        loc[d] = 0
      }
    }
    return true
  }
  return false
}

// ---------------------------------------------------------------------------------------------------------------
// Unary loops (the stock kernels' formulas; `exp` inside Erf/Exp/GELU is the inlined fast version below)

const ERF_P = 0.3275911
const ERF_A1 = 0.254829592
const ERF_A2 = -0.284496736
const ERF_A3 = 1.421413741
const ERF_A4 = -1.453152027
const ERF_A5 = 1.061405429

/*
 * Fast exp for float32 results, written out inline where used (V8 does not inline it reliably as a function):
 *   z = clamp(x, -104, 89); k = floor(z·log2e + ½); r = z − k·ln2 (two-part ln2);
 *   exp(x) ≈ (Taylor degree 7 of e^r) · 2^k (table).
 * Relative error < 1e-8 before rounding to float32, so results are within 1 ulp of Math.exp's; NaN stays NaN,
 * below −104 gives 0 and above 89 gives Infinity once stored as float32. About 2× faster than Math.exp here.
 */
const LOG2E = 1.4426950408889634
const LN2_HI = 0.6931471803691238
const LN2_LO = 1.9082149292705877e-10
const POW2 = new Float64Array(301).map((_, i) => 2 ** (i - 150))
const C3 = 1 / 6
const C4 = 1 / 24
const C5 = 1 / 120
const C6 = 1 / 720
const C7 = 1 / 5040

type UnaryLoop = (x: Float32Array, o: Float32Array, attrs: tf.NamedAttrMap | undefined) => void

const unaryLoops: ReadonlyArray<readonly [string, UnaryLoop]> = [
  [
    "Erf",
    (x, o) => {
      for (let i = 0; i < x.length; i++) {
        const xi = x[i]
        const v = Math.abs(xi)
        const t = 1.0 / (1.0 + ERF_P * v)
        let z = -v * v
        z = z < -104 ? -104 : z
        const k = Math.floor(z * LOG2E + 0.5)
        const r = z - k * LN2_HI - k * LN2_LO
        const e = (1 + r * (1 + r * (0.5 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))))) * POW2[(k | 0) + 150]
        // sign(x)·y without a data-dependent branch (random signs mispredict): 0 for ±0, NaN for NaN
        const sign = +(xi > 0) - +(xi < 0)
        o[i] = sign * (1.0 - ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t * e)
      }
    }
  ],
  [
    "Exp",
    (x, o) => {
      for (let i = 0; i < x.length; i++) {
        let z = x[i]
        z = z < -104 ? -104 : z > 89 ? 89 : z
        const k = Math.floor(z * LOG2E + 0.5)
        const r = z - k * LN2_HI - k * LN2_LO
        o[i] = (1 + r * (1 + r * (0.5 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))))) * POW2[(k | 0) + 150]
      }
    }
  ],
  ["Log", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = Math.log(x[i]) }],
  ["Sqrt", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = Math.sqrt(x[i]) }],
  ["Rsqrt", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = 1 / Math.sqrt(x[i]) }],
  ["Square", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = x[i] * x[i] }],
  ["Neg", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = -x[i] }],
  ["Abs", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = Math.abs(x[i]) }],
  ["Reciprocal", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = 1 / x[i] }],
  ["Tanh", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = Math.tanh(x[i]) }],
  ["Sigmoid", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = 1 / (1 + Math.exp(-x[i])) }],
  ["Relu", (x, o) => { for (let i = 0; i < x.length; i++) o[i] = Math.max(0, x[i]) }],
  [
    "Step",
    (x, o, attrs) => {
      const alpha = typeof attrs?.alpha === "number" ? attrs.alpha : 0
      for (let i = 0; i < x.length; i++) {
        const v = x[i]
        const pos = +(v > 0)
        o[i] = pos + (1 - pos) * alpha
        if (v !== v) o[i] = NaN
      }
    }
  ]
]

// ---------------------------------------------------------------------------------------------------------------
// Reductions over one contiguous block of axes: x viewed as [outer, R, inner]

type ReduceKind = "sum" | "mean" | "max" | "min"

const reduce = (
  alloc: (n: number) => Float32Array,
  kind: ReduceKind,
  shape: ReadonlyArray<number>,
  X: Float32Array,
  axes: ReadonlyArray<number>,
  keepDims: boolean
): { shape: Array<number>; values: Float32Array } | undefined => {
  const rank = shape.length
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[0] + i) return undefined
  const outShape: Array<number> = []
  for (let d = 0; d < rank; d++) {
    if (!axes.includes(d)) outShape.push(shape[d])
    else if (keepDims) outShape.push(1)
  }
  if (axes.length === 0) return { shape: outShape, values: X.slice() }
  const first = axes[0]
  const last = axes[axes.length - 1]
  const outer = sizeOf(shape.slice(0, first))
  const R = sizeOf(shape.slice(first, last + 1))
  const inner = sizeOf(shape.slice(last + 1))
  const o = alloc(outer * inner)
  if (o.length === 0) return { shape: outShape, values: o }
  if (R === 0) {
    o.fill(kind === "max" ? -Infinity : kind === "min" ? Infinity : kind === "mean" ? NaN : 0)
    return { shape: outShape, values: o }
  }
  if (inner === 1) {
    for (let r = 0; r < outer; r++) {
      const s = r * R
      if (kind === "sum" || kind === "mean") {
        let acc = 0
        for (let j = 0; j < R; j++) acc += X[s + j]
        o[r] = kind === "mean" ? acc / R : acc
      } else if (kind === "max") {
        let m = X[s]
        for (let j = 0; j < R; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v > m) m = v
        }
        o[r] = m
      } else {
        let m = X[s]
        for (let j = 0; j < R; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v < m) m = v
        }
        o[r] = m
      }
    }
    return { shape: outShape, values: o }
  }
  const acc = new Float64Array(inner)
  for (let r = 0; r < outer; r++) {
    const base = r * R * inner
    acc.set(X.subarray(base, base + inner))
    for (let q = 1; q < R; q++) {
      const s = base + q * inner
      if (kind === "sum" || kind === "mean") for (let j = 0; j < inner; j++) acc[j] += X[s + j]
      else if (kind === "max")
        for (let j = 0; j < inner; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v > acc[j]) acc[j] = v
        }
      else
        for (let j = 0; j < inner; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v < acc[j]) acc[j] = v
        }
    }
    const ob = r * inner
    if (kind === "mean") for (let j = 0; j < inner; j++) o[ob + j] = acc[j] / R
    else for (let j = 0; j < inner; j++) o[ob + j] = acc[j]
  }
  return { shape: outShape, values: o }
}

// ---------------------------------------------------------------------------------------------------------------
// Transpose: squeeze size-1 dims, merge dims that stay adjacent, then a blocked 2-D or strided N-D copy.

type Numeric = Float32Array | Int32Array

const transposeValues = (
  X: Numeric,
  shape: ReadonlyArray<number>,
  perm: ReadonlyArray<number>,
  O: Numeric
): boolean => {
  // Drop size-1 dims.
  const keep = shape.map((d) => d !== 1)
  const remap = new Map<number, number>()
  const dims: Array<number> = []
  shape.forEach((d, i) => {
    if (keep[i]) {
      remap.set(i, dims.length)
      dims.push(d)
    }
  })
  let p = perm.filter((a) => keep[a]).map((a) => remap.get(a) ?? 0)
  // Merge runs: output-adjacent axes that are also input-adjacent and in order.
  const groups: Array<Array<number>> = []
  for (const a of p) {
    const g = groups[groups.length - 1]
    if (g !== undefined && g[g.length - 1] + 1 === a) g.push(a)
    else groups.push([a])
  }
  const order = [...groups].sort((x, y) => x[0] - y[0])
  const gdims = order.map((g) => sizeOf(g.map((a) => dims[a])))
  p = groups.map((g) => order.indexOf(g))
  const r = gdims.length
  if (r <= 1) {
    O.set(X)
    return true
  }
  const strides = new Array<number>(r)
  strides[r - 1] = 1
  for (let d = r - 2; d >= 0; d--) strides[d] = strides[d + 1] * gdims[d + 1]
  if (r === 2) {
    const rows = gdims[0]
    const cols = gdims[1]
    const B = 32
    for (let i0 = 0; i0 < rows; i0 += B) {
      const i1 = Math.min(i0 + B, rows)
      for (let j0 = 0; j0 < cols; j0 += B) {
        const j1 = Math.min(j0 + B, cols)
        for (let j = j0; j < j1; j++) {
          const ob = j * rows
          for (let i = i0; i < i1; i++) O[ob + i] = X[i * cols + j]
        }
      }
    }
    return true
  }
  if (r > 5) return false
  // Pad to 5 dims (leading size-1 dims) and walk the output in order.
  const od = [1, 1, 1, 1, 1]
  const is = [0, 0, 0, 0, 0]
  for (let d = 0; d < r; d++) {
    od[5 - r + d] = gdims[p[d]]
    is[5 - r + d] = strides[p[d]]
  }
  const [d0, d1, d2, d3, d4] = od
  const [s0, s1, s2, s3, s4] = is
  let w = 0
  for (let a = 0; a < d0; a++)
    for (let b = 0; b < d1; b++)
      for (let c = 0; c < d2; c++)
        for (let e = 0; e < d3; e++) {
          const base = a * s0 + b * s1 + c * s2 + e * s3
          if (s4 === 1) {
            O.set(X.subarray(base, base + d4), w)
            w += d4
          } else for (let f = 0; f < d4; f++) O[w++] = X[base + f * s4]
        }
  return true
}

// ---------------------------------------------------------------------------------------------------------------
// Kernel table

const activate = (
  o: Float32Array,
  activation: string,
  leakyAlpha: number
): boolean => {
  const n = o.length
  switch (activation) {
    case "linear":
      return true
    case "relu":
      for (let i = 0; i < n; i++) o[i] = Math.max(0, o[i])
      return true
    case "relu6":
      for (let i = 0; i < n; i++) o[i] = Math.min(Math.max(0, o[i]), 6)
      return true
    case "elu":
      for (let i = 0; i < n; i++) {
        const v = o[i]
        o[i] = v >= 0 ? v : Math.exp(v) - 1
      }
      return true
    case "leakyrelu":
      for (let i = 0; i < n; i++) {
        const v = o[i]
        o[i] = v < 0 ? leakyAlpha * v : v
      }
      return true
    case "sigmoid":
      for (let i = 0; i < n; i++) o[i] = 1 / (1 + Math.exp(-o[i]))
      return true
    default:
      return false
  }
}

/** Kernel names this backend replaces (all other kernels are the stock CPU ones). */
export const REPLACED_KERNELS: ReadonlyArray<string> = [
  "BatchMatMul",
  "_FusedMatMul",
  "Add",
  "Sub",
  "Multiply",
  "RealDiv",
  "SquaredDifference",
  "Pow",
  ...unaryLoops.map(([name]) => name),
  "Sum",
  "Mean",
  "Max",
  "Min",
  "Softmax",
  "Transpose",
  "Slice",
  "StridedSlice",
  "PadV2",
  "Concat",
  "SplitV",
  "GatherV2",
  "UnsortedSegmentSum"
]

/** Counters of how often each replaced kernel took its fast path or fell back (for tests and the doctor). */
export const kernelStats: Record<string, { fast: number; fallback: number }> = {}

/**
 * Opt-in wall-clock time per kernel on `cpu-blas` (set `kernelTiming.enabled = true`, read `kernelTiming.byKernel`).
 * Unlike `tf.profile`, it does not read every output back (which would defeat the buffer pool).
 */
export const kernelTiming: { enabled: boolean; byKernel: Record<string, { calls: number; ms: number }> } = {
  enabled: false,
  byKernel: {}
}
const timed = (name: string, f: tf.KernelFunc): tf.KernelFunc => (args) => {
  if (!kernelTiming.enabled) return f(args)
  const t0 = performance.now()
  const r = f(args)
  const s = (kernelTiming.byKernel[name] ??= { calls: 0, ms: 0 })
  s.calls++
  s.ms += performance.now() - t0
  return r
}
const hit = (name: string, fast: boolean): void => {
  const s = (kernelStats[name] ??= { fast: 0, fallback: 0 })
  if (fast) s.fast++
  else s.fallback++
}

const makeKernels = (blas: Blas, stock: (name: string) => tf.KernelFunc): Map<string, tf.KernelFunc> => {
  const k = new Map<string, tf.KernelFunc>()
  const fallback = (name: string, args: KernelArgs): KernelResult => {
    hit(name, false)
    return stock(name)(args)
  }

  k.set("BatchMatMul", (args) => {
    const be = cpuOf(args.backend)
    const { a, b } = args.inputs
    const A = f32(be, a)
    const B = f32(be, b)
    if (a === undefined || b === undefined || A === undefined || B === undefined) return fallback("BatchMatMul", args)
    const plan = planGemm(a.shape, b.shape, boolAttr(args, "transposeA"), boolAttr(args, "transposeB"))
    const C = allocFor(be, sizeOf(plan.outShape))
    plan.run(blas, A, B, C, 0)
    hit("BatchMatMul", true)
    return out(be, plan.outShape, C)
  })

  k.set("_FusedMatMul", (args) => {
    const be = cpuOf(args.backend)
    const { a, b, bias, preluActivationWeights } = args.inputs
    const A = f32(be, a)
    const B = f32(be, b)
    const activation = typeof args.attrs?.activation === "string" ? args.attrs.activation : "linear"
    const leaky = typeof args.attrs?.leakyreluAlpha === "number" ? args.attrs.leakyreluAlpha : 0.2
    if (a === undefined || b === undefined || A === undefined || B === undefined) return fallback("_FusedMatMul", args)
    if (preluActivationWeights !== undefined || activation === "prelu") return fallback("_FusedMatMul", args)
    const Bias = bias === undefined ? undefined : f32(be, bias)
    if (bias !== undefined && Bias === undefined) return fallback("_FusedMatMul", args)
    const plan = planGemm(a.shape, b.shape, boolAttr(args, "transposeA"), boolAttr(args, "transposeB"))
    const C = allocFor(be, sizeOf(plan.outShape))
    let beta = 0
    if (bias !== undefined && Bias !== undefined && C.length > 0) {
      const shape = tf.broadcast_util.assertAndGetBroadcastShape(plan.outShape, [...bias.shape])
      if (sizeOf(shape) !== C.length) return fallback("_FusedMatMul", args)
      const pat = classify(bias.shape, plan.outShape)
      if (pat.kind === "same") C.set(Bias)
      else if (pat.kind === "row") for (let s = 0; s < C.length; s += pat.p) C.set(Bias, s)
      else if (pat.kind === "col") for (let r = 0, s = 0; s < C.length; r++, s += pat.p) C.fill(Bias[r], s, s + pat.p)
      else return fallback("_FusedMatMul", args)
      beta = 1
    }
    plan.run(blas, A, B, C, beta)
    if (!activate(C, activation, leaky)) return fallback("_FusedMatMul", args)
    hit("_FusedMatMul", true)
    return out(be, plan.outShape, C)
  })

  const binaries: ReadonlyArray<readonly [string, BinaryLoop]> = [
    ["Add", addLoop],
    ["Sub", subLoop],
    ["Multiply", mulLoop],
    ["RealDiv", divLoop],
    ["SquaredDifference", sqDiffLoop],
    ["Pow", powLoop]
  ]
  for (const [name, loop] of binaries) {
    k.set(name, (args) => {
      const be = cpuOf(args.backend)
      const { a, b } = args.inputs
      const A = f32(be, a)
      const B = f32(be, b)
      if (a === undefined || b === undefined || A === undefined || B === undefined) return fallback(name, args)
      const r = binary((n) => allocFor(be, n), loop, a.shape, b.shape, A, B)
      if (r === undefined) return fallback(name, args)
      hit(name, true)
      return out(be, r.shape, r.values)
    })
  }

  for (const [name, loop] of unaryLoops) {
    k.set(name, (args) => {
      const be = cpuOf(args.backend)
      const { x } = args.inputs
      const X = f32(be, x)
      if (x === undefined || X === undefined) return fallback(name, args)
      const o = allocFor(be, X.length)
      loop(X, o, args.attrs)
      hit(name, true)
      return out(be, [...x.shape], o)
    })
  }

  const reductions: ReadonlyArray<readonly [string, ReduceKind, string]> = [
    ["Sum", "sum", "axis"],
    ["Mean", "mean", "axis"],
    ["Max", "max", "reductionIndices"],
    ["Min", "min", "axis"]
  ]
  for (const [name, kind, axisAttr] of reductions) {
    k.set(name, (args) => {
      const be = cpuOf(args.backend)
      const { x } = args.inputs
      const X = f32(be, x)
      if (x === undefined || X === undefined) return fallback(name, args)
      const axes = parseAxes(args.attrs?.[axisAttr], x.shape.length)
      if (axes === undefined) return fallback(name, args)
      const r = reduce((n) => allocFor(be, n), kind, x.shape, X, axes, boolAttr(args, "keepDims"))
      if (r === undefined) return fallback(name, args)
      hit(name, true)
      return out(be, r.shape, r.values)
    })
  }

  k.set("Softmax", (args) => {
    const be = cpuOf(args.backend)
    const { logits } = args.inputs
    const X = f32(be, logits)
    const dim = args.attrs?.dim
    if (logits === undefined || X === undefined) return fallback("Softmax", args)
    const rank = logits.shape.length
    if (rank === 0 || (dim !== -1 && dim !== rank - 1)) return fallback("Softmax", args)
    const n = logits.shape[rank - 1]
    const o = allocFor(be, X.length)
    for (let s = 0; s < X.length; s += n) {
      let m = X[s]
      for (let j = 1; j < n; j++) if (X[s + j] > m || Number.isNaN(X[s + j])) m = X[s + j]
      let sum = 0
      for (let j = 0; j < n; j++) {
        const e = Math.exp(X[s + j] - m)
        o[s + j] = e
        sum += Math.fround(e)
      }
      for (let j = 0; j < n; j++) o[s + j] = o[s + j] / sum
    }
    hit("Softmax", true)
    return out(be, [...logits.shape], o)
  })

  k.set("Transpose", (args) => {
    const be = cpuOf(args.backend)
    const { x } = args.inputs
    const perm = args.attrs?.perm
    if (x === undefined || !Array.isArray(perm) || perm.length !== x.shape.length) return fallback("Transpose", args)
    const axes: Array<number> = []
    for (const a of perm) if (typeof a === "number") axes.push(a)
    if (axes.length !== perm.length) return fallback("Transpose", args)
    const X = be.data.get(x.dataId).values
    if (!(X instanceof Float32Array || X instanceof Int32Array) || (x.dtype !== "float32" && x.dtype !== "int32")) {
      return fallback("Transpose", args)
    }
    const shape = axes.map((a) => x.shape[a])
    const O = X instanceof Float32Array ? allocFor(be, X.length) : new Int32Array(X.length)
    if (!transposeValues(X, x.shape, axes, O)) return fallback("Transpose", args)
    hit("Transpose", true)
    return be.makeTensorInfo(shape, x.dtype, O)
  })

  layoutKernels(k, fallback, stock)
  return k
}

// ---------------------------------------------------------------------------------------------------------------
// Data-movement kernels: strided copies (Slice, StridedSlice, PadV2, Concat, SplitV), GatherV2 and
// UnsortedSegmentSum. Contiguous slices and splits stay zero-copy views (the stock kernels already do that).

const nums = (v: unknown): Array<number> | undefined => {
  if (!Array.isArray(v)) return undefined
  const r: Array<number> = []
  for (const x of v) {
    if (typeof x !== "number") return undefined
    r.push(x)
  }
  return r
}
const numAttr = (args: KernelArgs, name: string, dflt: number): number => {
  const v = args.attrs?.[name]
  return typeof v === "number" ? v : dflt
}
const allInRange = (idx: ArrayLike<number>, n: number): boolean => {
  for (let i = 0; i < idx.length; i++) if (!(idx[i] >= 0 && idx[i] < n)) return false
  return true
}

const layoutKernels = (
  k: Map<string, tf.KernelFunc>,
  fallback: (name: string, args: KernelArgs) => KernelResult,
  stock: (name: string) => tf.KernelFunc
): void => {
  /** The stock kernel for cases it already does as well (zero-copy views); counted as fast. */
  const viewOf = (name: string, args: KernelArgs): KernelResult => {
    hit(name, true)
    return stock(name)(args)
  }

  /** Slice x[begin : begin + size] into a fresh buffer, or the stock zero-copy view when contiguous. */
  const sliceFast = (
    name: string,
    args: KernelArgs,
    x: tf.TensorInfo,
    begin: Array<number>,
    size: Array<number>,
    outShape: Array<number>
  ): KernelResult => {
    const be = cpuOf(args.backend)
    const X = f32(be, x)
    if (X === undefined) return fallback(name, args)
    const o = allocFor(be, sizeOf(size))
    sliceInto(X, x.shape, begin, size, o)
    hit(name, true)
    return out(be, outShape, o)
  }

  k.set("Slice", (args) => {
    const { x } = args.inputs
    const rawBegin = args.attrs?.begin
    const rawSize = args.attrs?.size
    if (x === undefined || x.dtype !== "float32") return fallback("Slice", args)
    const begin = typeof rawBegin === "number" ? rawBegin : nums(rawBegin)
    const size = rawSize === undefined || typeof rawSize === "number" ? rawSize : nums(rawSize)
    if (begin === undefined) return fallback("Slice", args)
    const [b, z] = tf.slice_util.parseSliceParams(x, begin, size)
    tf.slice_util.assertParamsValid(x, b, z)
    if (tf.slice_util.isSliceContinous(x.shape, b, z)) return viewOf("Slice", args)
    return sliceFast("Slice", args, x, b, z, z)
  })

  k.set("StridedSlice", (args) => {
    const { x } = args.inputs
    const begin = nums(args.attrs?.begin)
    const end = nums(args.attrs?.end)
    const strides = nums(args.attrs?.strides)
    if (x === undefined || x.dtype !== "float32" || begin === undefined || end === undefined || strides === undefined) {
      return fallback("StridedSlice", args)
    }
    const info = tf.slice_util.sliceInfo(
      x.shape,
      begin,
      end,
      strides,
      numAttr(args, "beginMask", 0),
      numAttr(args, "endMask", 0),
      numAttr(args, "ellipsisMask", 0),
      numAttr(args, "newAxisMask", 0),
      numAttr(args, "shrinkAxisMask", 0)
    )
    if (info.isIdentity || !info.isSimpleSlice || info.begin.length !== x.shape.length) {
      return fallback("StridedSlice", args)
    }
    const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides)
    if (size.some((d, i) => d < 0 || info.begin[i] < 0 || info.begin[i] + d > x.shape[i])) {
      return fallback("StridedSlice", args)
    }
    if (sizeOf(size) !== sizeOf(info.finalShape)) return fallback("StridedSlice", args)
    if (tf.slice_util.isSliceContinous(x.shape, info.begin, size)) return viewOf("StridedSlice", args)
    return sliceFast("StridedSlice", args, x, info.begin, size, info.finalShape)
  })

  k.set("PadV2", (args) => {
    const be = cpuOf(args.backend)
    const { x } = args.inputs
    const X = f32(be, x)
    const raw = args.attrs?.paddings
    const value = numAttr(args, "constantValue", 0)
    if (x === undefined || X === undefined || !Array.isArray(raw) || raw.length !== x.shape.length) {
      return fallback("PadV2", args)
    }
    const before: Array<number> = []
    const outShape: Array<number> = []
    for (let d = 0; d < raw.length; d++) {
      const p = nums(raw[d])
      if (p === undefined || p.length !== 2 || p[0] < 0 || p[1] < 0) return fallback("PadV2", args)
      before.push(p[0])
      outShape.push(p[0] + x.shape[d] + p[1])
    }
    const o = allocFor(be, sizeOf(outShape))
    o.fill(value)
    copyBox(X, x.shape, new Array<number>(x.shape.length).fill(0), o, outShape, before, x.shape)
    hit("PadV2", true)
    return out(be, outShape, o)
  })

  k.set("Concat", (args) => {
    const be = cpuOf(args.backend)
    const list: Array<tf.TensorInfo> = []
    for (const t of Object.values(args.inputs)) if (t !== undefined) list.push(t)
    if (list.length === 0 || list[0].shape.length === 0) return fallback("Concat", args)
    const parts: Array<{ values: Float32Array; shape: Array<number> }> = []
    for (const t of list) {
      const v = f32(be, t)
      if (v === undefined) return fallback("Concat", args)
      parts.push({ values: v, shape: [...t.shape] })
    }
    const axis = tf.util.parseAxisParam(numAttr(args, "axis", 0), list[0].shape)[0]
    const shapes = parts.map((p) => p.shape)
    tf.backend_util.assertParamsConsistent(shapes, axis)
    const outShape = tf.backend_util.computeOutShape(shapes, axis)
    const o = allocFor(be, sizeOf(outShape))
    concatInto(parts, axis, o)
    hit("Concat", true)
    return out(be, outShape, o)
  })

  k.set("SplitV", (args) => {
    const be = cpuOf(args.backend)
    const { x } = args.inputs
    const raw = args.attrs?.numOrSizeSplits
    const splits = typeof raw === "number" ? raw : nums(raw)
    if (x === undefined || x.dtype !== "float32" || splits === undefined || x.shape.length === 0) {
      return fallback("SplitV", args)
    }
    const axis = tf.util.parseAxisParam(numAttr(args, "axis", 0), x.shape)[0]
    const sizes = tf.backend_util.prepareSplitSize(x, splits, axis)
    const outer = sizeOf(x.shape.slice(0, axis))
    // With one row the pieces are contiguous: the stock kernel returns views.
    if (outer <= 1) return viewOf("SplitV", args)
    const X = f32(be, x)
    if (X === undefined) return fallback("SplitV", args)
    const inner = sizeOf(x.shape.slice(axis + 1))
    const outs = sizes.map((s) => allocFor(be, outer * s * inner))
    splitFrom(X, outer, outs)
    hit("SplitV", true)
    return outs.map((o, i) => {
      const shape = [...x.shape]
      shape[axis] = sizes[i]
      return out(be, shape, o)
    })
  })

  k.set("GatherV2", (args) => {
    const be = cpuOf(args.backend)
    const { x, indices } = args.inputs
    const X = f32(be, x)
    if (x === undefined || indices === undefined || X === undefined || numAttr(args, "batchDims", 0) !== 0) {
      return fallback("GatherV2", args)
    }
    const idx = be.data.get(indices.dataId).values
    if (!(idx instanceof Int32Array) || x.shape.length === 0) return fallback("GatherV2", args)
    const axis = tf.util.parseAxisParam(numAttr(args, "axis", 0), x.shape)[0]
    const dim = x.shape[axis]
    // Out-of-range indices: the stock kernel raises the error.
    if (!allInRange(idx, dim)) return fallback("GatherV2", args)
    const outer = sizeOf(x.shape.slice(0, axis))
    const inner = sizeOf(x.shape.slice(axis + 1))
    const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)]
    const o = allocFor(be, sizeOf(outShape))
    gatherInto(X, outer, dim, inner, idx, o)
    hit("GatherV2", true)
    return out(be, outShape, o)
  })

  k.set("UnsortedSegmentSum", (args) => {
    const be = cpuOf(args.backend)
    const { x, segmentIds } = args.inputs
    const X = f32(be, x)
    const numSegments = numAttr(args, "numSegments", 0)
    if (x === undefined || segmentIds === undefined || X === undefined) return fallback("UnsortedSegmentSum", args)
    const ids = be.data.get(segmentIds.dataId).values
    // Segment ids of rank > 1 (the stock kernel sums only their first axis) and odd counts fall back.
    if (
      !(ids instanceof Int32Array) ||
      segmentIds.shape.length !== 1 ||
      x.shape.length === 0 ||
      segmentIds.shape[0] !== x.shape[0] ||
      !Number.isInteger(numSegments) ||
      numSegments < 1
    ) {
      return fallback("UnsortedSegmentSum", args)
    }
    const inner = sizeOf(x.shape.slice(1))
    const outShape = [numSegments, ...x.shape.slice(1)]
    const o = allocFor(be, numSegments * inner)
    segmentSumInto(X, ids, numSegments, inner, o)
    hit("UnsortedSegmentSum", true)
    return out(be, outShape, o)
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Fused kernels with no stock counterpart (used through `ops.ts`: `gelu`, `layerNorm`)

/** Kernel names of the fused ops; registered on `cpu-blas` only (other backends use composite ops). */
export const FUSED_KERNELS = {
  gelu: "LlinkGelu",
  geluGrad: "LlinkGeluGrad",
  layerNorm: "LlinkLayerNorm",
  layerNormGrad: "LlinkLayerNormGrad"
} as const

const INV_SQRT2 = Math.SQRT1_2
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI)

const need = (be: Cpu, t: tf.TensorInfo | undefined, what: string): Float32Array => {
  const v = f32(be, t)
  if (v === undefined) throw new Error(`${what}: expected a float32 tensor`)
  return v
}

/** GELU(x) = ½x(1 + erf(x/√2)), erf as in the Erf kernel. With `dy`, writes dGELU/dx · dy instead. */
const geluLoop = (X: Float32Array, o: Float32Array, DY: Float32Array | undefined): void => {
  for (let i = 0; i < X.length; i++) {
    const xi = X[i]
    const v = Math.abs(xi) * INV_SQRT2
    const t = 1.0 / (1.0 + ERF_P * v)
    let z = -v * v
    z = z < -104 ? -104 : z
    const k = Math.floor(z * LOG2E + 0.5)
    const r = z - k * LN2_HI - k * LN2_LO
    const e = (1 + r * (1 + r * (0.5 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))))) * POW2[(k | 0) + 150]
    const sign = +(xi > 0) - +(xi < 0)
    const erf = sign * (1.0 - ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t * e)
    if (DY === undefined) o[i] = 0.5 * xi * (1 + erf)
    else o[i] = DY[i] * (0.5 * (1 + erf) + xi * e * INV_SQRT_2PI)
  }
}

/** Row statistics of x viewed as [rows, d]: mean and 1/sqrt(biased variance + eps), two-pass in float64. */
const rowStats = (X: Float32Array, s: number, d: number, eps: number): readonly [number, number] => {
  let sum = 0
  for (let j = 0; j < d; j++) sum += X[s + j]
  const mean = sum / d
  let sq = 0
  for (let j = 0; j < d; j++) {
    const c = X[s + j] - mean
    sq += c * c
  }
  return [mean, 1 / Math.sqrt(sq / d + eps)]
}

const fusedKernels = (): Map<string, tf.KernelFunc> => {
  const k = new Map<string, tf.KernelFunc>()
  k.set(FUSED_KERNELS.gelu, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "gelu x")
    const o = allocFor(be, X.length)
    geluLoop(X, o, undefined)
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.geluGrad, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "geluGrad x")
    const DY = need(be, args.inputs.dy, "geluGrad dy")
    const o = allocFor(be, X.length)
    geluLoop(X, o, DY)
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.layerNorm, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "layerNorm x")
    const G = need(be, args.inputs.gamma, "layerNorm gamma")
    const Bt = need(be, args.inputs.beta, "layerNorm beta")
    const eps = typeof args.attrs?.epsilon === "number" ? args.attrs.epsilon : 1e-5
    const d = G.length
    if (Bt.length !== d || (d > 0 && X.length % d !== 0)) throw new Error("layerNorm: gamma/beta must match x's last dim")
    const o = allocFor(be, X.length)
    for (let s = 0; s < X.length; s += d) {
      const [mean, rstd] = rowStats(X, s, d, eps)
      for (let j = 0; j < d; j++) o[s + j] = (X[s + j] - mean) * rstd * G[j] + Bt[j]
    }
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.layerNormGrad, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const gamma = args.inputs.gamma
    const X = need(be, x, "layerNormGrad x")
    const DY = need(be, args.inputs.dy, "layerNormGrad dy")
    const G = need(be, gamma, "layerNormGrad gamma")
    const eps = typeof args.attrs?.epsilon === "number" ? args.attrs.epsilon : 1e-5
    const d = G.length
    const dx = allocFor(be, X.length)
    const dg = new Float64Array(d)
    const db = new Float64Array(d)
    for (let s = 0; s < X.length; s += d) {
      const [mean, rstd] = rowStats(X, s, d, eps)
      // g = dy·gamma; dx = rstd·(g − mean(g) − x̂·mean(g·x̂))
      let sg = 0
      let sgx = 0
      for (let j = 0; j < d; j++) {
        const dyj = DY[s + j]
        const xh = (X[s + j] - mean) * rstd
        const g = dyj * G[j]
        sg += g
        sgx += g * xh
        dg[j] += dyj * xh
        db[j] += dyj
      }
      const mg = sg / d
      const mgx = sgx / d
      for (let j = 0; j < d; j++) {
        const xh = (X[s + j] - mean) * rstd
        dx[s + j] = rstd * (DY[s + j] * G[j] - mg - xh * mgx)
      }
    }
    const gShape = [...(gamma?.shape ?? [d])]
    return [
      out(be, [...(x?.shape ?? [])], dx),
      out(be, gShape, Float32Array.from(dg)),
      out(be, [...gShape], Float32Array.from(db))
    ]
  })
  return k
}

const single = (dy: tf.Tensor | Array<tf.Tensor>): tf.Tensor => (Array.isArray(dy) ? dy[0] : dy)

let gradientsRegistered = false
const registerFusedGradients = (): void => {
  if (gradientsRegistered) return
  gradientsRegistered = true
  tf.registerGradient({
    kernelName: FUSED_KERNELS.gelu,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => {
      const [x] = saved
      return { x: () => tf.engine().runKernel<tf.Tensor>(FUSED_KERNELS.geluGrad, { dy: single(dy), x }) }
    }
  })
  tf.registerGradient({
    kernelName: FUSED_KERNELS.layerNorm,
    inputsToSave: ["x", "gamma"],
    gradFunc: (dy, saved, attrs) => {
      const [x, gamma] = saved
      // One pass computes all three; the tape calls each thunk in its own tidy, so compute eagerly here.
      const [dx, dgamma, dbeta] = tf.engine().runKernel<Array<tf.Tensor>>(
        FUSED_KERNELS.layerNormGrad,
        { dy: single(dy), x, gamma },
        attrs
      )
      return { x: () => dx, gamma: () => dgamma, beta: () => dbeta }
    }
  })
}

let registered: Blas | undefined

/**
 * Register the `cpu-blas` backend (idempotent): load OpenBLAS, copy every stock `cpu` kernel, replace the hot
 * ones. Does not switch backends. Throws `BlasUnavailableError` when OpenBLAS is missing.
 */
export const registerBlasBackend = (): Blas => {
  if (registered !== undefined) return registered
  const blas = loadBlas()
  const stockConfigs = tf.getKernelsForBackend("cpu")
  const stockByName = new Map(stockConfigs.map((c) => [c.kernelName, c.kernelFunc]))
  const stock = (name: string): tf.KernelFunc => {
    const f = stockByName.get(name)
    if (f === undefined) throw new Error(`no stock cpu kernel '${name}' to fall back to`)
    return f
  }
  const fast = makeKernels(blas, stock)
  if (tf.findBackendFactory(BLAS_BACKEND) === null || tf.findBackendFactory(BLAS_BACKEND) === undefined) {
    tf.registerBackend(
      BLAS_BACKEND,
      () => new BlasBackend(),
      0
    )
  }
  const existing = new Set(tf.getKernelsForBackend(BLAS_BACKEND).map((c) => c.kernelName))
  for (const c of stockConfigs) {
    if (existing.has(c.kernelName)) tf.unregisterKernel(c.kernelName, BLAS_BACKEND)
    const kernelFunc = timed(c.kernelName, fast.get(c.kernelName) ?? c.kernelFunc)
    const config: tf.KernelConfig = { kernelName: c.kernelName, backendName: BLAS_BACKEND, kernelFunc }
    if (c.setupFunc !== undefined) config.setupFunc = c.setupFunc
    if (c.disposeFunc !== undefined) config.disposeFunc = c.disposeFunc
    tf.registerKernel(config)
  }
  for (const name of fast.keys()) {
    if (!stockByName.has(name)) throw new Error(`replaced kernel '${name}' has no stock cpu kernel`)
  }
  for (const [kernelName, kernelFunc] of fusedKernels()) {
    if (tf.getKernel(kernelName, BLAS_BACKEND) !== undefined) tf.unregisterKernel(kernelName, BLAS_BACKEND)
    tf.registerKernel({ kernelName, backendName: BLAS_BACKEND, kernelFunc: timed(kernelName, kernelFunc) })
  }
  registerFusedGradients()
  registered = blas
  return blas
}
