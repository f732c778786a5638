/**
 * Retrieval of a Stage A projector: the projected foreign vectors g(z_F) of the first n pairs against their teacher
 * vectors h_E, both L2-normalised (cosine). Used by `stageA` (dev retrieval while training) and `retrieval`.
 */
import * as Projector from "../models/projector.ts"
import type { Matrix } from "../formats/arrow/matrix.ts"
import { l2NormalizeRows, type MatMulABt } from "../train/hostMath.ts"
import { goldRanks, metricsFromRanks, type RetrievalMetrics } from "./retrieval.ts"

/** Projections of the first `n` rows of `z` (evaluation mode, chunked). */
export const projectRows = async (proj: Projector.Projector, z: Matrix, n: number, chunk = 1024): Promise<Float32Array> => {
  const out = new Float32Array(n * proj.config.dOut)
  for (let s = 0; s < n; s += chunk) {
    const e = Math.min(n, s + chunk)
    out.set(await Projector.projectHost(proj, z.data.subarray(s * z.dim, e * z.dim), e - s), s * proj.config.dOut)
  }
  return out
}

/** Gold ranks of the first `n` pairs: projected foreign rows vs teacher rows, both L2-normalised (cosine). */
export const projectorRanks = async (proj: Projector.Projector, z: Matrix, h: Matrix, n: number, matmul: MatMulABt): Promise<Int32Array> => {
  const d = h.dim
  const q = l2NormalizeRows(await projectRows(proj, z, n), n, d)
  const c = l2NormalizeRows(h.data.subarray(0, n * d), n, d)
  return goldRanks(q, c, d, { matmul })
}

/** Retrieval of the first `n` pairs: projected foreign rows vs teacher rows, both L2-normalised (cosine). */
export const devRetrieval = async (proj: Projector.Projector, z: Matrix, h: Matrix, n: number, matmul: MatMulABt): Promise<RetrievalMetrics> =>
  metricsFromRanks(await projectorRanks(proj, z, h, n, matmul), n)
