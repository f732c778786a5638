/**
 * Kernels `@tensorflow/tfjs-backend-wasm` 4.22 lacks but llink's training needs, or runs slowly, registered when the
 * wasm backend starts. `UnsortedSegmentSum` is the gradient of `gather` (the embedding overrides of Stage B's slot positions, and
 * every gather inside `tf.grad`); without it Stage B fails at step 1 with "Kernel 'UnsortedSegmentSum' not
 * registered for backend 'wasm'". It runs on the wasm heap's float32 views with the same loop as cpu-blas
 * (`segmentSumInto`), 1-D segment ids over the first axis, as tfjs's gather gradient produces them.
 */
import * as tf from "@tensorflow/tfjs"
import { segmentSumInto } from "./copy.ts"

/** The slice of BackendWasm these kernels use (see backend_wasm.d.ts). */
interface WasmBackendLike {
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  typedArrayFromHeap(info: tf.TensorInfo): ArrayLike<number> & { fill: (v: number) => unknown }
}

const isWasmBackend = (b: unknown): b is WasmBackendLike =>
  typeof b === "object" && b !== null && "makeOutput" in b && "typedArrayFromHeap" in b

const unsortedSegmentSum: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  if (!isWasmBackend(backend)) throw new Error("UnsortedSegmentSum (llink wasm kernel): not the wasm backend")
  const x = inputs["x"] as tf.TensorInfo
  const segmentIds = inputs["segmentIds"] as tf.TensorInfo
  const numSegments = Number((attrs as { numSegments?: unknown } | undefined)?.numSegments)
  if (x.dtype !== "float32" || segmentIds.shape.length !== 1 || x.shape.length === 0 || segmentIds.shape[0] !== x.shape[0]) {
    throw new Error(
      `UnsortedSegmentSum (llink wasm kernel): supports float32 x with 1-D segment ids over its first axis; got x ${x.dtype} [${x.shape}], ids [${segmentIds.shape}]`
    )
  }
  if (!Number.isInteger(numSegments) || numSegments < 1) throw new Error(`UnsortedSegmentSum: numSegments must be a positive integer, got ${numSegments}`)
  const inner = x.shape.slice(1).reduce((a, b) => a * b, 1)
  const out = backend.makeOutput([numSegments, ...x.shape.slice(1)], "float32")
  segmentSumInto(
    backend.typedArrayFromHeap(x) as Float32Array,
    backend.typedArrayFromHeap(segmentIds),
    numSegments,
    inner,
    backend.typedArrayFromHeap(out) as Float32Array
  )
  return out
}

const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** Marks llink's BatchMatMul, so that registering twice keeps the stock kernel underneath. */
const LLINK_BATCH_MATMUL = Symbol.for("llink/wasm/BatchMatMul")

/**
 * tfjs-wasm's BatchMatMul takes XNNPACK only for an untransposed product of two single matrices; a transposed operand
 * (every `x·Wᵀ`, the LM head's `h·Eᵀ` over the whole vocabulary, most gradients) goes through a scalar loop at
 * ~1 GFLOP/s. Here a transposed operand of a single-matrix product is transposed first (wasm's Transpose, a copy),
 * then the stock kernel runs on XNNPACK. Batched products (attention) keep the stock path.
 */
const batchMatMulVia = (stock: tf.KernelFunc): tf.KernelFunc => (args) => {
  const { inputs, backend, attrs } = args
  const a = inputs["a"] as tf.TensorInfo
  const b = inputs["b"] as tf.TensorInfo
  const { transposeA, transposeB } = attrs as { transposeA?: boolean; transposeB?: boolean }
  const single = size(a.shape.slice(0, -2)) === 1 && size(b.shape.slice(0, -2)) === 1
  if (!single || (transposeA !== true && transposeB !== true) || a.dtype !== "float32" || b.dtype !== "float32") return stock(args)
  const transpose = tf.getKernel("Transpose", "wasm")!.kernelFunc
  const disposable = backend as unknown as { disposeData: (id: tf.DataId) => unknown }
  const temporaries: Array<tf.TensorInfo> = []
  const flip = (x: tf.TensorInfo): tf.TensorInfo => {
    const perm = x.shape.map((_, i) => i)
    const r = perm.length
    ;[perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]]
    const t = transpose({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo
    temporaries.push(t)
    return t
  }
  try {
    return stock({
      inputs: { a: transposeA === true ? flip(a) : a, b: transposeB === true ? flip(b) : b },
      backend,
      attrs: { ...attrs, transposeA: false, transposeB: false }
    })
  } finally {
    for (const t of temporaries) disposable.disposeData(t.dataId)
  }
}

/** Registers the missing and faster kernels for `wasm` (idempotent; after the backend started). */
export const registerWasmKernels = (): void => {
  if (tf.getKernel("UnsortedSegmentSum", "wasm") === undefined) {
    tf.registerKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum })
  }
  const stock = tf.getKernel("BatchMatMul", "wasm")
  if (stock !== undefined && !(LLINK_BATCH_MATMUL in stock.kernelFunc)) {
    tf.unregisterKernel("BatchMatMul", "wasm")
    // the stock kernel's setup (its wasm function) ran when the backend started; its kernelFunc keeps using it
    const kernelFunc = Object.assign(batchMatMulVia(stock.kernelFunc), { [LLINK_BATCH_MATMUL]: true })
    tf.registerKernel({ kernelName: "BatchMatMul", backendName: "wasm", kernelFunc })
  }
}
