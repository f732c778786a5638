/**
 * The tensor backend for the Stage A stages, and the host matrix product they plug into the queue and retrieval.
 *
 * `ensureBackend` starts the backend once per process (`initBackend()` from `src/backend/service.ts`: it honours
 * `LLINK_BACKEND`, else picks the best available, normally `cpu-blas` here). When a backend other than the stock
 * default was already selected (a test or bench that called `initBackend(...)` itself), it is left alone.
 *
 * `hostMatmul()` is OpenBLAS `sgemm` (a·bᵀ, float32 accumulation) while the `cpu-blas` backend is active, else the
 * plain-JS product of `hostMath.ts`.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { loadBlas } from "./blas.ts"
import { BLAS_BACKEND } from "./kernels.ts"
import { initBackend } from "./service.ts"
import { StageError } from "../pipeline/errors.ts"
import { matMulABtJs } from "../train/hostMath.ts"
import type { MatMulABt } from "../train/hostMath.ts"

let started: Promise<string> | undefined

/** The backend name after making sure one was chosen (at most one `initBackend()` per process). */
export const ensureBackend = (stage: string): Effect.Effect<string, StageError> =>
  Effect.tryPromise({
    try: () => {
      if (started === undefined) {
        const current = tf.getBackend()
        started =
          current === BLAS_BACKEND || current === "tensorflow"
            ? Promise.resolve(current)
            : initBackend().then(() => tf.getBackend())
      }
      return started
    },
    catch: (cause) =>
      new StageError({
        stage,
        message: `no tensor backend could start: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })

/** a·bᵀ through OpenBLAS sgemm: a [aRows, d], b [bRows, d] → out [aRows, bRows]. Requires OpenBLAS. */
export const blasMatMulABt = (): MatMulABt => {
  const blas = loadBlas()
  return (a, aRows, b, bRows, d, out) => {
    const res = out ?? new Float32Array(aRows * bRows)
    if (aRows === 0 || bRows === 0) return res
    blas.sgemm(false, true, aRows, bRows, d, 1, a, d, b, d, 0, res, bRows)
    return res
  }
}

/** The fast product when the cpu-blas backend is active, else the plain-JS one. */
export const hostMatmul = (): { readonly matmul: MatMulABt; readonly name: string } =>
  tf.getBackend() === BLAS_BACKEND ? { matmul: blasMatMulABt(), name: "sgemm" } : { matmul: matMulABtJs, name: "js" }
