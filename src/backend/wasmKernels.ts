/**
 * Kernels `@tensorflow/tfjs-backend-wasm` 4.22 lacks but llink's training needs, registered when the wasm backend
 * starts. `UnsortedSegmentSum` is the gradient of `gather` (the embedding overrides of Stage B's slot positions, and
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

/** Registers the missing kernels for `wasm` (idempotent). */
export const registerWasmKernels = (): void => {
  if (tf.getKernel("UnsortedSegmentSum", "wasm") === undefined) {
    tf.registerKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum })
  }
}
