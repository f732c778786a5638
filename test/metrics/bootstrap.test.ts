/**
 * The percentile bootstrap (src/metrics/bootstrap.ts) through what reports it: the judge aggregates (preference and
 * win rate over prompts) and retrieval (R@1 and MRR over queries).
 *
 * The reference intervals are computed here without the bootstrap code: the bootstrap distribution of a statistic
 * of n categorical outcomes is that of the statistic of Multinomial(n; observed shares) counts, enumerated exactly
 * for a small hand-made verdict table; for R@1 (a mean of 0/1 hits) it is Binomial(n, R@1)/n. The percentile
 * interval's ends are the exact distribution's 2.5% and 97.5% quantiles (min{x : F(x) ≥ q}). A Monte Carlo
 * bootstrap with R resamples returns exactly those values when F jumps across q by a margin of many standard errors
 * sqrt(q(1−q)/R); each test checks that margin first, so the equality it asserts is not luck.
 */
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { bootstrapIntervals, percentileInterval } from "../../src/metrics/bootstrap.ts"
import { aggregate, type PairOutcome } from "../../src/metrics/judge.ts"
import { withIntervals } from "../../src/metrics/retrieval.ts"
import { BootstrapConfig } from "../../src/schemas/bootstrap.ts"

type Code = "win" | "loss" | "tie" | "invalid"

/** A judged pair with the given combined outcome (orders consistent with it; invalid: the first order unparsed). */
const pair = (i: number, outcome: Code): PairOutcome => {
  const verdict = outcome === "win" ? "A" : outcome === "loss" ? "B" : "C"
  const swapped = outcome === "win" ? "B" : outcome === "loss" ? "A" : "C"
  return {
    id: String(i),
    bucket: "content",
    outcome,
    flipped: false,
    offline: false,
    invalidReasons: outcome === "invalid" ? ["x"] : [],
    orders: [
      {
        order: "system_first",
        verdict: outcome === "invalid" ? { _tag: "invalid", reason: "x" } : { _tag: "valid", verdict },
        outcome: outcome === "invalid" ? null : outcome
      },
      { order: "baseline_first", verdict: { _tag: "valid", verdict: outcome === "invalid" ? "A" : swapped }, outcome: null }
    ]
  }
}

const table = (counts: Readonly<Record<Code, number>>): Array<PairOutcome> => {
  const out: Array<PairOutcome> = []
  for (const code of ["win", "loss", "tie", "invalid"] as const) for (let k = 0; k < counts[code]; k++) out.push(pair(out.length, code))
  return out
}

const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1))

/** An exact discrete distribution: value → probability, conditioned on the statistic being defined. */
type Distribution = ReadonlyMap<number, number>

/** The exact bootstrap distribution of `stat(W*, L*, T*)` for (W*, L*, T*, I*) ~ Multinomial(n; observed shares). */
const multinomialBootstrap = (c: Readonly<Record<Code, number>>, stat: (w: number, l: number, t: number) => number | null): Distribution => {
  const n = c.win + c.loss + c.tie + c.invalid
  const [pw, pl, pt, pi] = [c.win / n, c.loss / n, c.tie / n, c.invalid / n]
  const dist = new Map<number, number>()
  let defined = 0
  for (let w = 0; w <= n; w++) {
    for (let l = 0; w + l <= n; l++) {
      for (let t = 0; w + l + t <= n; t++) {
        const i = n - w - l - t
        const p = (factorial(n) / (factorial(w) * factorial(l) * factorial(t) * factorial(i))) * pw ** w * pl ** l * pt ** t * pi ** i
        const v = stat(w, l, t)
        if (p === 0 || v === null) continue
        const key = Math.round(v * 1e12) / 1e12 // equal rationals from different counts (2/4 = 3/6) share a key
        dist.set(key, (dist.get(key) ?? 0) + p)
        defined += p
      }
    }
  }
  return new Map([...dist].map(([v, p]) => [v, p / defined]))
}

/** The q-quantile min{x : F(x) ≥ q}, with F just below and at it (to check the Monte Carlo margin). */
const quantile = (dist: Distribution, q: number): { readonly x: number; readonly below: number; readonly at: number } => {
  let cdf = 0
  for (const x of [...dist.keys()].sort((a, b) => a - b)) {
    const below = cdf
    cdf += dist.get(x) ?? 0
    if (cdf >= q) return { x, below, at: cdf }
  }
  throw new Error("no quantile")
}

/** The exact 95% percentile interval, after checking that R resamples resolve both ends (margin ≥ 8 standard errors). */
const exactInterval = (dist: Distribution, resamples: number): { readonly lo: number; readonly hi: number } => {
  const lo = quantile(dist, 0.025)
  const hi = quantile(dist, 0.975)
  const se = Math.sqrt((0.025 * 0.975) / resamples)
  const margin = Math.min(0.025 - lo.below, lo.at - 0.025, 0.975 - hi.below, hi.at - 0.975)
  expect(margin).toBeGreaterThan(8 * se)
  return { lo: lo.x, hi: hi.x }
}

const R = 200_000

describe("bootstrap intervals against exact bootstrap distributions", () => {
  // Hand-made tables whose interval ends the enumeration resolves (see the module doc).
  it("preference W/(W+L) of 4 wins, 7 losses, 2 ties and 1 invalid pair", () => {
    const counts = { win: 4, loss: 7, tie: 2, invalid: 1 }
    const a = aggregate(table(counts), { bootstrap: { resamples: R, seed: 11 } })
    expect(a.preference).toBeCloseTo(4 / 11, 12)
    expect(a.winRate).toBeCloseTo(5 / 13, 12) // (4 + ½·2) / 13 valid pairs
    const exact = exactInterval(multinomialBootstrap(counts, (w, l) => (w + l === 0 ? null : w / (w + l))), R)
    // What the enumeration gives, written out: 1 win of 11 decisive pairs, 6 of 9.
    expect(exact.lo).toBeCloseTo(1 / 11, 10)
    expect(exact.hi).toBeCloseTo(2 / 3, 10)
    expect(a.preferenceCI?.lo).toBeCloseTo(exact.lo, 10)
    expect(a.preferenceCI?.hi).toBeCloseTo(exact.hi, 10)
  })

  it("win rate (W + ½T)/N of 4 wins, 1 loss and 5 ties", () => {
    const counts = { win: 4, loss: 1, tie: 5, invalid: 0 }
    const a = aggregate(table(counts), { bootstrap: { resamples: R, seed: 12 } })
    expect(a.winRate).toBeCloseTo(0.65, 12)
    const exact = exactInterval(multinomialBootstrap(counts, (w, l, t) => (w + l + t === 0 ? null : (w + t / 2) / (w + l + t))), R)
    expect(exact.lo).toBeCloseTo(0.45, 10)
    expect(exact.hi).toBeCloseTo(0.85, 10)
    expect(a.winRateCI?.lo).toBeCloseTo(exact.lo, 10)
    expect(a.winRateCI?.hi).toBeCloseTo(exact.hi, 10)
  })

  it("R@1 over queries: Binomial(n, R@1)/n", () => {
    // 27 queries, 4 with the gold first (queries 0, 7, 14, 21); the others further down.
    const n = 27
    const ranks = Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 1 : 2 + i))
    const m = withIntervals(ranks, n, { resamples: R, seed: 5 }, "test")
    expect(m.r1).toBeCloseTo(4 / 27, 12)
    const p = 4 / 27
    const binomial = new Map<number, number>()
    for (let k = 0; k <= n; k++) binomial.set(k / n, (factorial(n) / (factorial(k) * factorial(n - k))) * p ** k * (1 - p) ** (n - k))
    const exact = exactInterval(binomial, R)
    expect([exact.lo * n, exact.hi * n].map(Math.round)).toEqual([1, 8])
    expect(m.r1CI?.lo).toBeCloseTo(exact.lo, 12)
    expect(m.r1CI?.hi).toBeCloseTo(exact.hi, 12)
    expect(m.mrrCI!.lo).toBeLessThan(m.mrr)
    expect(m.mrrCI!.hi).toBeGreaterThan(m.mrr)
  })
})

describe("bootstrap intervals: coverage, width, seeding, edge cases", () => {
  it("cover the point estimate and narrow as the number of prompts grows", () => {
    const widths: Array<number> = []
    for (const k of [2, 8, 32, 128]) {
      const a = aggregate(table({ win: 5 * k, loss: 3 * k, tie: 2 * k, invalid: 0 }), { bootstrap: { resamples: 1000, seed: 0 } })
      for (const [point, ci] of [[a.preference, a.preferenceCI], [a.winRate, a.winRateCI]] as const) {
        expect(ci!.lo).toBeLessThanOrEqual(point!)
        expect(ci!.hi).toBeGreaterThanOrEqual(point!)
      }
      widths.push(a.preferenceCI!.hi - a.preferenceCI!.lo)
    }
    for (let i = 1; i < widths.length; i++) expect(widths[i]).toBeLessThan(widths[i - 1])
    // Width ∝ 1/√n: 64× the prompts, about 1/8 of the width.
    expect(widths[0] / widths[3]).toBeGreaterThan(5)
    expect(widths[0] / widths[3]).toBeLessThan(12)
  })

  it("repeat exactly with the same seed and label, and draw independently otherwise", () => {
    const outcomes = table({ win: 9, loss: 6, tie: 5, invalid: 0 })
    const run = (seed: number, label: string) => aggregate(outcomes, { bootstrap: { resamples: 1000, seed }, label })
    expect(run(3, "a").preferenceCI).toEqual(run(3, "a").preferenceCI)
    const draws = (seed: number, label: string) => {
      const seen: Array<number> = []
      bootstrapIntervals(20, { first: (idx) => (seen.push(idx[0]), 0) }, { resamples: 50, seed, label })
      return seen
    }
    expect(draws(3, "a")).toEqual(draws(3, "a"))
    expect(draws(3, "a")).not.toEqual(draws(4, "a"))
    expect(draws(3, "a")).not.toEqual(draws(3, "b"))
  })

  it("percentile ends, undefined resamples left out, degenerate and empty tables", () => {
    // 40 values 1..40: the 1st and the ⌈40 · 0.975⌉ = 39th smallest.
    expect(percentileInterval(Array.from({ length: 40 }, (_, i) => 40 - i))).toEqual({ lo: 1, hi: 39 })
    expect(percentileInterval([null, 2, null, 1, 3, null])).toEqual({ lo: 1, hi: 3 })
    expect(percentileInterval([null, null])).toBeNull()
    const allWins = aggregate(table({ win: 5, loss: 0, tie: 0, invalid: 0 }))
    expect(allWins.preferenceCI).toEqual({ lo: 1, hi: 1 })
    const allTies = aggregate(table({ win: 0, loss: 0, tie: 4, invalid: 1 }))
    expect(allTies.preference).toBeNull()
    expect(allTies.preferenceCI).toBeNull() // no interval where there is no point
    expect(allTies.winRateCI).toEqual({ lo: 0.5, hi: 0.5 })
    const none = aggregate([])
    expect([none.preferenceCI, none.winRateCI, none.winRate, none.positionConsistency, none.firstShownWinShare]).toEqual([null, null, null, null, null])
    expect(withIntervals([], 0, { resamples: 1000, seed: 0 }, "empty").r1CI).toBeNull()
  })

  it("the config asks for at least 1,000 resamples", () => {
    expect(Schema.decodeUnknownSync(BootstrapConfig)({})).toEqual({ resamples: 1000, seed: 0 })
    expect(() => Schema.decodeUnknownSync(BootstrapConfig)({ resamples: 999 })).toThrow(/≥ 1000/)
  })
})

describe("judge position and length statistics", () => {
  it("position consistency, first-shown wins and mean output lengths", () => {
    const consistent = pair(0, "win") // [[A]] then [[B]]: the orders agree
    const flipped: PairOutcome = { ...pair(1, "tie"), flipped: true, orders: [pair(1, "win").orders[0], { ...pair(1, "loss").orders[1] }] }
    const withChars = (p: PairOutcome, system: number, baseline: number): PairOutcome => ({ ...p, chars: { system, baseline } })
    const a = aggregate([withChars(consistent, 30, 10), withChars(flipped, 10, 30), withChars(pair(2, "invalid"), 20, 20)])
    // Both orders valid in 2 pairs, one flipped → consistency 1/2.
    expect(a.positionConsistency).toBe(0.5)
    // Valid verdicts: A, B (pair 0), A, A (pair 1: the first-shown won both times), A (pair 2's second order).
    expect([a.verdicts, a.firstShownWins, a.secondShownWins]).toEqual([5, 4, 1])
    expect(a.firstShownWinShare).toBe(0.8)
    expect(a.meanChars).toEqual({ system: 20, baseline: 20, ratio: 1 })
  })
})
