/**
 * The host matrix product the Stage A queue and the retrieval metrics plug in: OpenBLAS `sgemm` (a·bᵀ, float32
 * accumulation) when the started backend is `cpu-blas`, else the plain-JS product of `hostMath.ts`.
 */
import { loadBlas } from "./blas.ts"
import { BLAS_BACKEND } from "./cpuBlas/shared.ts"
import { matMulABtJs } from "../train/hostMath.ts"
import type { MatMulABt } from "../train/hostMath.ts"

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

/** The fast product when `backend` is cpu-blas (OpenBLAS is loaded), else the plain-JS one. */
export const hostMatmul = (backend: { readonly tfBackend: string }): { readonly matmul: MatMulABt; readonly name: string } =>
  backend.tfBackend === BLAS_BACKEND ? { matmul: blasMatMulABt(), name: "sgemm" } : { matmul: matMulABtJs, name: "js" }
