/**
 * One system's retrieval to the field's standard (issue "Evaluation to the field's standard"), from its query vectors
 * and the teacher vectors of the whole holdout (both in holdout order; the eval slice is the first `n` rows):
 *
 * - the grid: foreign → English and English → foreign, each under cosine, ratio margin (k 4) and CSLS (k 10), on the
 *   eval slice, with R@1/5/10, MRR and their bootstrap intervals as Table 1, plus LASER's xsim error rate;
 * - the pool curve: R@1 with candidate pools of `pools` pairs and of the whole holdout, cosine and margin, both ways;
 * - the top-1 mistakes of margin scoring, foreign → English, by what separates the retrieved English from the gold.
 */
import type { BootstrapConfig } from "../schemas/bootstrap.ts"
import type { BitextDirection, BitextSuiteDoc } from "../schemas/retrieval.ts"
import { l2NormalizeRows, type MatMulABt } from "../train/hostMath.ts"
import { bestCandidates, classifyMistake, DEFAULT_K, pooledR1, type Scoring, SCORINGS, scoredRanks, xsimErrorRate } from "./bitext.ts"
import { withIntervals } from "./retrieval.ts"

export interface BitextSuiteOptions {
  readonly pools: ReadonlyArray<number>
  readonly bootstrap: BootstrapConfig
  readonly matmul?: MatMulABt
  /** Mistakes kept as examples (default 5). */
  readonly examples?: number
}

export const bitextSuite = (
  system: string,
  queries: Float32Array,
  teacher: Float32Array,
  d: number,
  n: number,
  english: ReadonlyArray<string>,
  options: BitextSuiteOptions
): BitextSuiteDoc => {
  const all = Math.min(queries.length, teacher.length) / d
  if (n > all) throw new Error(`bitext suite: an eval slice of ${n} rows from ${all}`)
  const q = l2NormalizeRows(queries.subarray(0, all * d), all, d)
  const c = l2NormalizeRows(teacher.subarray(0, all * d), all, d)
  const head = (x: Float32Array) => x.subarray(0, n * d)
  const sides: ReadonlyArray<readonly [BitextDirection, Float32Array, Float32Array]> = [
    ["foreign→english", q, c],
    ["english→foreign", c, q]
  ]
  const opts = options.matmul === undefined ? {} : { matmul: options.matmul }
  const grid = sides.flatMap(([direction, a, b]) =>
    SCORINGS.map((scoring) => {
      const ranks = scoredRanks(head(a), head(b), d, scoring, opts)
      return {
        direction,
        scoring,
        k: DEFAULT_K[scoring],
        // Table 1's own cell (foreign → English, cosine) resamples the same stream, so its interval is Table 1's
        metrics: withIntervals(ranks, n, options.bootstrap, direction === "foreign→english" && scoring === "cosine" ? system : `${system}:${direction}:${scoring}`),
        xsimError: xsimErrorRate(ranks)
      }
    })
  )
  const pools = [...new Set([...options.pools.filter((x) => x < all), all])].sort((x, y) => x - y)
  const pool = sides.flatMap(([direction, a, b]) =>
    (["cosine", "margin"] as ReadonlyArray<Scoring>).flatMap((scoring) =>
      pools.flatMap((size) => {
        const point = pooledR1(a, b, d, scoring, size, opts)
        return point === null ? [] : [{ direction, scoring, ...point }]
      })
    )
  )
  const best = bestCandidates(head(q), head(c), d, "margin", opts)
  const counts = { number: 0, entity: 0, other: 0, identical: 0 }
  const examples: Array<{ gold: string; retrieved: string; kind: "number" | "entity" | "other" | "identical" }> = []
  let total = 0
  for (let i = 0; i < n; i++) {
    if (best[i] === i) continue
    total++
    const gold = english[i] ?? ""
    const retrieved = english[best[i]] ?? ""
    const kind = classifyMistake(gold, retrieved)
    counts[kind]++
    if (examples.length < (options.examples ?? 5)) examples.push({ gold, retrieved, kind })
  }
  return { system, grid, pool, mistakes: { direction: "foreign→english", scoring: "margin", total, ...counts, examples } }
}
