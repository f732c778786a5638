/**
 * Whether a change between two runs is real: a 95% percentile-bootstrap interval of the difference of a statistic
 * computed over per-example values (`llink compare`).
 *
 * - **Paired**, when both runs scored the same examples (equal id sets): one resample of the shared examples, the
 *   statistic on run B's values minus run A's on the same resampled examples. This removes the between-example
 *   variance the two runs share, which is most of it: two runs that differ in one parameter often agree on which
 *   examples are hard.
 * - **Unpaired**, when the eval sets differ: each run resampled on its own (independent streams), the difference of
 *   the two statistics.
 *
 * A change is `real` when the interval excludes 0 and `noise` when it covers it. The statistic gets the columns and
 * the resampled indices, so ratios (a judge's wins / (wins + losses)) are resampled as ratios, not as means of
 * per-example ratios.
 */
import { deriveSeed, makeRng } from "../models/rng.ts"
import type { Interval } from "../schemas/bootstrap.ts"
import { BOOTSTRAP_LEVEL, percentileInterval } from "./bootstrap.ts"

/** Per-example values of one run: `ids[i]` names example i, each column holds one value per example. */
export interface ExampleTable {
  readonly ids: ReadonlyArray<string>
  readonly columns: Readonly<Record<string, Float64Array>>
}

/** A statistic of the examples at `idx` (repeats allowed); null where undefined (e.g. a ratio with 0 / 0). */
export type ExampleStatistic = (columns: Readonly<Record<string, Float64Array>>, idx: ArrayLike<number>) => number | null

/** One metric's per-example values in one run, with the statistic that turns them into the metric. */
export interface MetricExamples {
  /** The metric's dotted name in results.json. */
  readonly name: string
  readonly table: ExampleTable
  readonly statistic: ExampleStatistic
}

export type ChangeVerdict = "real" | "noise" | "n/a"

export interface Difference {
  /** Whether the examples were paired (equal id sets) or each run was resampled alone. */
  readonly paired: boolean
  /** Examples in run A (paired: shared by both). */
  readonly n: number
  /** Statistic(B) − statistic(A) on all examples; null when either is undefined. */
  readonly delta: number | null
  readonly ci: Interval | null
  readonly verdict: ChangeVerdict
}

export interface DifferenceOptions {
  readonly resamples?: number
  readonly seed?: number
  /** Names the random stream (e.g. the metric). */
  readonly label?: string
  readonly level?: number
}

/** The mean of one column: the statistic of R@1, MRR, sentence chrF. */
export const meanOf = (column: string): ExampleStatistic => (cols, idx) => {
  const v = cols[column]
  if (idx.length === 0) return null
  let s = 0
  for (let i = 0; i < idx.length; i++) s += v[idx[i]]
  return s / idx.length
}

/** sum(num) / sum(den) over the examples: null when the denominator is 0. */
export const ratioOf = (num: string, den: string): ExampleStatistic => (cols, idx) => {
  const a = cols[num]
  const b = cols[den]
  let s = 0
  let t = 0
  for (let i = 0; i < idx.length; i++) {
    s += a[idx[i]]
    t += b[idx[i]]
  }
  return t === 0 ? null : s / t
}

const all = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i)

const verdictOf = (ci: Interval | null): ChangeVerdict => (ci === null ? "n/a" : ci.lo > 0 || ci.hi < 0 ? "real" : "noise")

/** The difference statistic(B) − statistic(A) with its bootstrap interval (see the module doc). */
export const bootstrapDifference = (
  a: ExampleTable,
  b: ExampleTable,
  statistic: ExampleStatistic,
  options: DifferenceOptions = {}
): Difference => {
  const resamples = options.resamples ?? 1000
  const level = options.level ?? BOOTSTRAP_LEVEL
  const rng = makeRng(deriveSeed(options.seed ?? 0, `compare:${options.label ?? ""}`))
  const statA = statistic(a.columns, all(a.ids.length))
  const statB = statistic(b.columns, all(b.ids.length))
  const delta = statA === null || statB === null ? null : statB - statA
  const indexInB = new Map(b.ids.map((id, i) => [id, i]))
  const paired = a.ids.length > 0 && a.ids.length === b.ids.length && new Set(a.ids).size === a.ids.length &&
    a.ids.every((id) => indexInB.has(id))
  const values = new Array<number | null>(resamples)
  if (paired) {
    const n = a.ids.length
    const toB = Int32Array.from(a.ids, (id) => indexInB.get(id)!)
    const idxA = new Int32Array(n)
    const idxB = new Int32Array(n)
    for (let r = 0; r < resamples; r++) {
      for (let i = 0; i < n; i++) {
        idxA[i] = Math.floor(rng.uniform() * n)
        idxB[i] = toB[idxA[i]]
      }
      const sa = statistic(a.columns, idxA)
      const sb = statistic(b.columns, idxB)
      values[r] = sa === null || sb === null ? null : sb - sa
    }
  } else {
    const idxA = new Int32Array(a.ids.length)
    const idxB = new Int32Array(b.ids.length)
    for (let r = 0; r < resamples; r++) {
      for (let i = 0; i < idxA.length; i++) idxA[i] = Math.floor(rng.uniform() * idxA.length)
      for (let i = 0; i < idxB.length; i++) idxB[i] = Math.floor(rng.uniform() * idxB.length)
      const sa = idxA.length === 0 ? null : statistic(a.columns, idxA)
      const sb = idxB.length === 0 ? null : statistic(b.columns, idxB)
      values[r] = sa === null || sb === null ? null : sb - sa
    }
  }
  const ci = percentileInterval(values, level)
  return { paired, n: a.ids.length, delta, ci, verdict: verdictOf(ci) }
}
