/**
 * Bilingual retrieval metrics (paper §5.2, Table 1): queries Q [N, d] (projected foreign vectors) against
 * candidates C [M, d] (teacher English vectors, M ≥ N, normally M = N); the gold candidate of query i is row i.
 * Scores are dot products, so pass L2-normalised rows for cosine (`l2NormalizeRows`, or `normalize: true` which
 * normalises copies first).
 *
 * Rank (1 = best) of query i: 1 + #{j : s_ij > s_ii} + #{j < i : s_ij = s_ii}. Ties are broken by candidate index:
 * an equal-scoring candidate with a lower index ranks ahead of the gold, one with a higher index behind it — the
 * order a stable sort by descending score gives. (The authors' `torch.argsort` leaves ties unspecified.) NaN
 * scores count as −∞.
 *
 * Rows are scored in chunks of `chunkRows` queries, so only chunkRows·M scores exist at a time (N×M is never
 * materialised): 40,000 × 40,000 with the default chunk holds about 4M floats. The gold score comes from the same
 * chunk product as its competitors, so ties are decided consistently whatever the matmul's rounding.
 *
 * Returns R@1/5/10, MRR (mean of 1/rank), the mean rank, and the chance level of R@1 (1/M); `withIntervals` adds
 * 95% percentile-bootstrap intervals of R@1 and MRR over queries (src/metrics/bootstrap.ts).
 */
import { l2NormalizeRows, matMulABtJs } from "../train/hostMath.ts"
import type { MatMulABt } from "../train/hostMath.ts"
import type { BootstrapConfig, Interval } from "../schemas/bootstrap.ts"
import { bootstrapIntervals } from "./bootstrap.ts"

export interface RetrievalMetrics {
  readonly n: number
  readonly r1: number
  readonly r5: number
  readonly r10: number
  readonly mrr: number
  readonly meanRank: number
  /** R@1 of a random ranking: 1 / (number of candidates). */
  readonly chanceR1: number
}

export interface RetrievalOptions {
  /** Queries per chunk (default: about 4M scores per chunk, at least 1). */
  readonly chunkRows?: number
  /** The product used per chunk (default: plain JS). Plug the fast backend's sgemm in here. */
  readonly matmul?: MatMulABt
  /** L2-normalise copies of both matrices first (default false: the caller passes unit rows). */
  readonly normalize?: boolean
}

const DEFAULT_CHUNK_SCORES = 1 << 22

/** The rank of each query's gold candidate (1 = best), with the tie rule of the module doc. */
export const goldRanks = (
  queries: Float32Array,
  candidates: Float32Array,
  d: number,
  options?: RetrievalOptions
): Int32Array => {
  if (!Number.isInteger(d) || d <= 0) throw new Error(`retrieval: d must be a positive integer, got ${d}`)
  if (queries.length % d !== 0 || candidates.length % d !== 0) {
    throw new Error(`retrieval: matrix sizes ${queries.length}, ${candidates.length} are not multiples of d = ${d}`)
  }
  const n = queries.length / d
  const m = candidates.length / d
  if (m < n) throw new Error(`retrieval: ${m} candidates for ${n} queries; the gold of query i is candidate i`)
  const q = options?.normalize === true ? l2NormalizeRows(queries, n, d) : queries
  const c = options?.normalize === true ? l2NormalizeRows(candidates, m, d) : candidates
  const matmul = options?.matmul ?? matMulABtJs
  const chunk = Math.max(1, Math.min(n, options?.chunkRows ?? Math.floor(DEFAULT_CHUNK_SCORES / Math.max(1, m))))
  const ranks = new Int32Array(n)
  const buf = new Float32Array(chunk * m)
  const val = (x: number): number => (Number.isNaN(x) ? Number.NEGATIVE_INFINITY : x)
  for (let i0 = 0; i0 < n; i0 += chunk) {
    const rows = Math.min(chunk, n - i0)
    const s = matmul(q.subarray(i0 * d, (i0 + rows) * d), rows, c, m, d, buf.subarray(0, rows * m))
    for (let r = 0; r < rows; r++) {
      const i = i0 + r
      const o = r * m
      const gold = val(s[o + i])
      let rank = 1
      for (let j = 0; j < m; j++) {
        const v = val(s[o + j])
        if (v > gold || (v === gold && j < i)) rank++
      }
      ranks[i] = rank
    }
  }
  return ranks
}

/** The metrics of a list of gold ranks among `numCandidates` candidates (default: as many as ranks). */
export const metricsFromRanks = (ranks: ArrayLike<number>, numCandidates: number = ranks.length): RetrievalMetrics => {
  const n = ranks.length
  if (n === 0) return { n: 0, r1: 0, r5: 0, r10: 0, mrr: 0, meanRank: 0, chanceR1: 0 }
  let r1 = 0
  let r5 = 0
  let r10 = 0
  let rr = 0
  let sum = 0
  for (let i = 0; i < n; i++) {
    const r = ranks[i]
    if (r <= 1) r1++
    if (r <= 5) r5++
    if (r <= 10) r10++
    rr += 1 / r
    sum += r
  }
  return { n, r1: r1 / n, r5: r5 / n, r10: r10 / n, mrr: rr / n, meanRank: sum / n, chanceR1: 1 / numCandidates }
}

/** The metrics of gold ranks with 95% bootstrap intervals of R@1 and MRR over queries (resampled with replacement;
 *  the stream is named by `label`, e.g. the system). */
export const withIntervals = (
  ranks: ArrayLike<number>,
  numCandidates: number,
  bootstrap: BootstrapConfig,
  label: string
): RetrievalMetrics & { readonly r1CI: Interval | null; readonly mrrCI: Interval | null } => {
  const n = ranks.length
  const hit = Float64Array.from({ length: n }, (_, i) => (ranks[i] <= 1 ? 1 : 0))
  const rr = Float64Array.from({ length: n }, (_, i) => 1 / ranks[i])
  const meanOf = (values: Float64Array) => (idx: Int32Array) => {
    let sum = 0
    for (let i = 0; i < idx.length; i++) sum += values[idx[i]]
    return sum / idx.length
  }
  const ci = bootstrapIntervals(n, { r1: meanOf(hit), mrr: meanOf(rr) }, { ...bootstrap, label: `retrieval:${label}` })
  return { ...metricsFromRanks(ranks, numCandidates), r1CI: ci.r1, mrrCI: ci.mrr }
}

/** Recall@1/5/10, MRR, mean rank and chance R@1 of queries [N, d] against candidates [M ≥ N, d]. */
export const retrievalMetrics = (
  queries: Float32Array,
  candidates: Float32Array,
  d: number,
  options?: RetrievalOptions
): RetrievalMetrics => metricsFromRanks(goldRanks(queries, candidates, d, options), candidates.length / d)
