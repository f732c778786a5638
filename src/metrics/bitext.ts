/**
 * Bitext-mining scores beside plain cosine (issue "Evaluation to the field's standard"), for aligned queries Q [N, d]
 * and candidates C [M, d] (M ≥ N; the gold of query i is candidate i), rows L2-normalised:
 *
 * - **cosine**: s(x, y) = cos(x, y);
 * - **ratio margin** (LASER's `xsim`, Artetxe & Schwenk 2019), k = 4: s(x, y) = cos(x, y) / ((r_C(x) + r_Q(y)) / 2),
 *   where r_C(x) is the mean cosine of x's k nearest candidates and r_Q(y) that of y's k nearest queries;
 * - **CSLS** (Conneau et al. 2018), k = 10: s(x, y) = 2 cos(x, y) − r_C(x) − r_Q(y).
 *
 * The neighbourhoods include the gold, as in LASER. Ranks follow `goldRanks`' tie rule (src/metrics/retrieval.ts).
 * The other direction (English → foreign) is the same call with the matrices swapped. The xsim error rate is the
 * share of queries whose best candidate is not the gold (1 − R@1 under margin scoring).
 *
 * Scores are computed in chunks of queries (never N × M at once): one pass for the neighbourhood means (the
 * candidates' top-k kept per column), one for the ranks.
 */
import { l2NormalizeRows, matMulABtJs, type MatMulABt } from "../train/hostMath.ts"

export type Scoring = "cosine" | "margin" | "csls"
export const SCORINGS: ReadonlyArray<Scoring> = ["cosine", "margin", "csls"]

/** The neighbourhood sizes of the standard tools: 4 for LASER's margin, 10 for CSLS. */
export const DEFAULT_K: Readonly<Record<Scoring, number>> = { cosine: 0, margin: 4, csls: 10 }

export interface BitextOptions {
  /** Neighbourhood size (default `DEFAULT_K[scoring]`). */
  readonly k?: number
  readonly matmul?: MatMulABt
  /** L2-normalise copies of both matrices first (default false: unit rows are passed). */
  readonly normalize?: boolean
  /** Queries per chunk (default about 4M scores). */
  readonly chunkRows?: number
}

const CHUNK_SCORES = 1 << 22

/** Adds `v` to a descending top-k list at `top[o … o + k)` holding `count` values; returns the new count. */
const pushTop = (top: Float64Array, o: number, k: number, count: number, v: number): number => {
  if (count === k && v <= top[o + k - 1]) return count
  let i = count === k ? k - 1 : count
  while (i > 0 && top[o + i - 1] < v) {
    top[o + i] = top[o + i - 1]
    i--
  }
  top[o + i] = v
  return count === k ? k : count + 1
}

interface Prepared {
  readonly q: Float32Array
  readonly c: Float32Array
  readonly n: number
  readonly m: number
  readonly chunk: number
  readonly matmul: MatMulABt
}

const prepare = (queries: Float32Array, candidates: Float32Array, d: number, options: BitextOptions | undefined): Prepared => {
  if (!Number.isInteger(d) || d <= 0) throw new Error(`bitext: d must be a positive integer, got ${d}`)
  if (queries.length % d !== 0 || candidates.length % d !== 0) {
    throw new Error(`bitext: matrix sizes ${queries.length}, ${candidates.length} are not multiples of d = ${d}`)
  }
  const n = queries.length / d
  const m = candidates.length / d
  if (m < n) throw new Error(`bitext: ${m} candidates for ${n} queries; the gold of query i is candidate i`)
  const normalize = options?.normalize === true
  return {
    q: normalize ? l2NormalizeRows(queries, n, d) : queries,
    c: normalize ? l2NormalizeRows(candidates, m, d) : candidates,
    n,
    m,
    chunk: Math.max(1, Math.min(n, options?.chunkRows ?? Math.floor(CHUNK_SCORES / Math.max(1, m)))),
    matmul: options?.matmul ?? matMulABtJs
  }
}

/** Calls `f(i0, rows, scores)` for each chunk of queries with their cosines against every candidate. */
const forChunks = (p: Prepared, d: number, f: (i0: number, rows: number, s: Float32Array) => void) => {
  const buf = new Float32Array(p.chunk * p.m)
  for (let i0 = 0; i0 < p.n; i0 += p.chunk) {
    const rows = Math.min(p.chunk, p.n - i0)
    f(i0, rows, p.matmul(p.q.subarray(i0 * d, (i0 + rows) * d), rows, p.c, p.m, d, buf.subarray(0, rows * p.m)))
  }
}

/**
 * r_C(x) for every query (mean cosine of its k nearest candidates) and r_Q(y) for every candidate (mean cosine of its
 * k nearest queries); k is capped by the other side's size.
 */
export const neighbourhoodMeans = (
  queries: Float32Array,
  candidates: Float32Array,
  d: number,
  k: number,
  options?: BitextOptions
): { readonly queries: Float64Array; readonly candidates: Float64Array } => {
  const p = prepare(queries, candidates, d, options)
  return means(p, d, k)
}

const means = (p: Prepared, d: number, k: number) => {
  const kq = Math.max(1, Math.min(k, p.m))
  const kc = Math.max(1, Math.min(k, p.n))
  const rowTop = new Float64Array(kq)
  const colTop = new Float64Array(p.m * kc)
  const colCount = new Int32Array(p.m)
  const rq = new Float64Array(p.n)
  forChunks(p, d, (i0, rows, s) => {
    for (let r = 0; r < rows; r++) {
      let count = 0
      for (let j = 0; j < p.m; j++) {
        const v = s[r * p.m + j]
        count = pushTop(rowTop, 0, kq, count, v)
        colCount[j] = pushTop(colTop, j * kc, kc, colCount[j], v)
      }
      let sum = 0
      for (let t = 0; t < count; t++) sum += rowTop[t]
      rq[i0 + r] = sum / count
    }
  })
  const rc = new Float64Array(p.m)
  for (let j = 0; j < p.m; j++) {
    let sum = 0
    for (let t = 0; t < colCount[j]; t++) sum += colTop[j * kc + t]
    rc[j] = sum / colCount[j]
  }
  return { queries: rq, candidates: rc }
}

/** s(i, j) of query i and candidate j from their cosine, under `scoring` (NaN counts as −∞). */
const scorer = (p: Prepared, d: number, scoring: Scoring, k: number): (i: number, j: number, cos: number) => number => {
  const r = scoring === "cosine" ? undefined : means(p, d, k)
  return (i, j, cos) => {
    if (Number.isNaN(cos)) return Number.NEGATIVE_INFINITY
    if (r === undefined) return cos
    return scoring === "margin" ? cos / ((r.queries[i] + r.candidates[j]) / 2) : 2 * cos - r.queries[i] - r.candidates[j]
  }
}

/** The gold rank of each query (1 = best) under `scoring`. */
export const scoredRanks = (
  queries: Float32Array,
  candidates: Float32Array,
  d: number,
  scoring: Scoring,
  options?: BitextOptions
): Int32Array => {
  const p = prepare(queries, candidates, d, options)
  const score = scorer(p, d, scoring, options?.k ?? DEFAULT_K[scoring])
  const ranks = new Int32Array(p.n)
  forChunks(p, d, (i0, rows, s) => {
    for (let row = 0; row < rows; row++) {
      const i = i0 + row
      const o = row * p.m
      const gold = score(i, i, s[o + i])
      let rank = 1
      for (let j = 0; j < p.m; j++) {
        const v = score(i, j, s[o + j])
        if (v > gold || (v === gold && j < i)) rank++
      }
      ranks[i] = rank
    }
  })
  return ranks
}

/** LASER's xsim error rate: the share of queries whose best candidate is not the gold. */
export const xsimErrorRate = (ranks: ArrayLike<number>): number => {
  if (ranks.length === 0) return 0
  let wrong = 0
  for (let i = 0; i < ranks.length; i++) if (ranks[i] > 1) wrong++
  return wrong / ranks.length
}

/**
 * The best-scoring candidate of each query under `scoring` (what a top-1 mistake retrieved), with the same tie rule
 * (the lower index wins).
 */
export const bestCandidates = (
  queries: Float32Array,
  candidates: Float32Array,
  d: number,
  scoring: Scoring,
  options?: BitextOptions
): Int32Array => {
  const p = prepare(queries, candidates, d, options)
  const score = scorer(p, d, scoring, options?.k ?? DEFAULT_K[scoring])
  const best = new Int32Array(p.n)
  forChunks(p, d, (i0, rows, s) => {
    for (let row = 0; row < rows; row++) {
      const i = i0 + row
      let arg = 0
      let top = Number.NEGATIVE_INFINITY
      for (let j = 0; j < p.m; j++) {
        const v = score(i, j, s[row * p.m + j])
        if (v > top) {
          top = v
          arg = j
        }
      }
      best[i] = arg
    }
  })
  return best
}

/** R@1 with a candidate pool of `pool` pairs: the eval pairs cut into consecutive blocks of `pool` (the last partial
 *  block left out), each block scored on its own; null when there is not one full block. */
export const pooledR1 = (
  queries: Float32Array,
  candidates: Float32Array,
  d: number,
  scoring: Scoring,
  pool: number,
  options?: BitextOptions
): { readonly pool: number; readonly blocks: number; readonly r1: number } | null => {
  const n = queries.length / d
  const blocks = Math.floor(n / pool)
  if (blocks === 0 || pool < 1) return null
  let hits = 0
  for (let b = 0; b < blocks; b++) {
    const part = (x: Float32Array) => x.subarray(b * pool * d, (b + 1) * pool * d)
    const ranks = scoredRanks(part(queries), part(candidates), d, scoring, options)
    for (let i = 0; i < ranks.length; i++) if (ranks[i] === 1) hits++
  }
  return { pool, blocks, r1: hits / (blocks * pool) }
}

export type MistakeKind = "number" | "entity" | "other" | "identical"

const tokens = (text: string): Array<string> => text.normalize("NFC").match(/[\p{L}\p{M}\p{N}]+/gu) ?? []

/**
 * What separates a retrieved English sentence from the gold (xsim++'s breakdown, without its synthetic negatives):
 * the tokens one has and the other lacks (as multisets) are all numbers (`number`), all capitalised words or numbers
 * with at least one word (`entity`: names, places), or anything else (`other`); `identical` when none differ (a
 * duplicate English sentence in the eval set, which no scorer can tell apart).
 */
export const classifyMistake = (gold: string, retrieved: string): MistakeKind => {
  const count = (xs: Array<string>) => {
    const m = new Map<string, number>()
    for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1)
    return m
  }
  const a = count(tokens(gold))
  const b = count(tokens(retrieved))
  const diff: Array<string> = []
  for (const [t, n] of a) for (let i = b.get(t) ?? 0; i < n; i++) diff.push(t)
  for (const [t, n] of b) for (let i = a.get(t) ?? 0; i < n; i++) diff.push(t)
  if (diff.length === 0) return "identical"
  const isNumber = (t: string) => /^\p{N}+$/u.test(t)
  const isName = (t: string) => /^\p{Lu}/u.test(t)
  if (diff.every(isNumber)) return "number"
  if (diff.every((t) => isNumber(t) || isName(t))) return "entity"
  return "other"
}
