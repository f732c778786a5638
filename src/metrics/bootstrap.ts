/**
 * The percentile bootstrap, seeded (what FastChat's MT-bench/Arena-Hard and AlpacaEval report as 95% intervals).
 *
 * `bootstrapIntervals(n, statistics, options)` draws `resamples` samples of n unit indices with replacement
 * (uniformly, from `makeRng(deriveSeed(seed, label))`: the same seed and label give the same draws everywhere, and
 * each label has its own stream), evaluates every statistic on each sample (all statistics see the same samples),
 * and returns per statistic the percentile interval at `level` (default 0.95):
 *
 *   lo = the ⌈m·α/2⌉-th smallest value, hi = the ⌈m·(1 − α/2)⌉-th smallest value, α = 1 − level,
 *
 * over the m samples on which the statistic is defined (a statistic returns null where it is undefined, e.g. a
 * preference W/(W+L) on a sample with neither; those samples are left out). This is the inverse of the empirical
 * distribution function, so an interval's ends are always values the statistic took. An interval is null when the
 * statistic is undefined on every sample (or n = 0).
 */
import { deriveSeed, makeRng } from "../models/rng.ts"
import type { BootstrapConfig, BootstrapSettings, Interval } from "../schemas/bootstrap.ts"

export const BOOTSTRAP_LEVEL = 0.95

/** A statistic of a resample: `idx` holds n unit indices in [0, n) (a reused buffer: read it, do not keep it). */
export type Statistic = (idx: Int32Array) => number | null

export interface BootstrapOptions {
  readonly resamples: number
  readonly seed: number
  /** Names this interval's random stream (e.g. "judge:vsBase:content"). */
  readonly label?: string
  readonly level?: number
}

/** The k-th smallest (1-based, clamped to [1, m]) of sorted values. */
const kth = (sorted: Float64Array, k: number): number => sorted[Math.min(sorted.length, Math.max(1, k)) - 1]

/** Percentile interval of already computed bootstrap values (nulls left out). */
export const percentileInterval = (values: ArrayLike<number | null>, level: number = BOOTSTRAP_LEVEL): Interval | null => {
  const defined: Array<number> = []
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (v !== null && Number.isFinite(v)) defined.push(v)
  }
  const m = defined.length
  if (m === 0) return null
  const sorted = Float64Array.from(defined).sort()
  const tail = (1 - level) / 2
  // The epsilon keeps m·p from rounding up past an integer (1000 · 0.025 must give 25, not 26).
  return { lo: kth(sorted, Math.ceil(m * tail - 1e-9)), hi: kth(sorted, Math.ceil(m * (1 - tail) - 1e-9)) }
}

/** Percentile bootstrap intervals of several statistics over the same resamples of n units (see the module doc). */
export const bootstrapIntervals = <K extends string>(
  n: number,
  statistics: Readonly<Record<K, Statistic>>,
  options: BootstrapOptions
): Record<K, Interval | null> => {
  const names = Object.keys(statistics) as Array<K>
  const out = {} as Record<K, Interval | null>
  if (n === 0) {
    for (const name of names) out[name] = null
    return out
  }
  const rng = makeRng(deriveSeed(options.seed, options.label ?? ""))
  const idx = new Int32Array(n)
  const values = names.map(() => new Array<number | null>(options.resamples))
  for (let r = 0; r < options.resamples; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rng.uniform() * n)
    for (let s = 0; s < names.length; s++) values[s][r] = statistics[names[s]](idx)
  }
  names.forEach((name, s) => {
    out[name] = percentileInterval(values[s], options.level ?? BOOTSTRAP_LEVEL)
  })
  return out
}

/** The settings a document records beside its intervals. */
export const bootstrapSettings = (config: BootstrapConfig, unit: BootstrapSettings["unit"]): BootstrapSettings => ({
  method: "percentile",
  level: BOOTSTRAP_LEVEL,
  resamples: config.resamples,
  seed: config.seed,
  unit
})
