/**
 * The `cpu-blas` tensorflow.js backend: the stock CPU backend (a `MathBackendCPU` with every stock kernel copied)
 * whose hot kernels are replaced: matrix products go to OpenBLAS `cblas_sgemm`, and the element-wise, reduction,
 * softmax and transpose kernels that dominate transformer training run as tight Float32Array loops.
 *
 * This file registers it (`registerBlasBackend`); the rest of `src/backend/cpuBlas/` holds the parts: the backend
 * class (`backend.ts`: `BlasBackend`, which pools the large buffers its kernels allocate), matrix products
 * (`matmul.ts`), binary/unary/reduction/transpose loops, the kernel table (`table.ts`: `REPLACED_KERNELS`), the
 * data-movement kernels (`dataMovement.ts`) and fused kernels with no stock counterpart (`fused.ts`:
 * `FUSED_KERNELS`, used by `ops.ts`).
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
 * `../select.ts`). Throws `BlasUnavailableError` when OpenBLAS cannot be loaded. `kernelStats` counts fast paths
 * and fallbacks; `kernelTiming` times kernels on demand.
 */
import * as tf from "@tensorflow/tfjs"
import { loadBlas } from "../blas.ts"
import type { Blas } from "../blas.ts"
import { BlasBackend } from "./backend.ts"
import { fusedKernels, registerFusedGradients } from "./fused.ts"
import { BLAS_BACKEND } from "./shared.ts"
import { makeKernels, timed } from "./table.ts"

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
