/** Matrix products: the batched GEMM plan behind BatchMatMul and _FusedMatMul (OpenBLAS `cblas_sgemm`). */
import * as tf from "@tensorflow/tfjs"
import type { Blas } from "../blas.ts"
import { sizeOf } from "./shared.ts"

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
export const planGemm = (
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
