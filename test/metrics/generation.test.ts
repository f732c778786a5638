/**
 * Generation quality (src/metrics/generation.ts), the offline judge's floor and the length-controlled win rate
 * (src/metrics/judge.ts), and the claims of "What this run shows" (src/nodes/report/claims.ts).
 */
import { describe, expect, it } from "vitest"
import { systemQuality } from "../../src/metrics/generation.ts"
import { fitPairLogit } from "../../src/metrics/bradleyTerry.ts"
import { aggregate, lengthControlledWinRate, offlineJudge } from "../../src/metrics/judge.ts"
import type { PairOutcome } from "../../src/metrics/judge.ts"
import { makeRng } from "../../src/models/rng.ts"

describe("generation quality", () => {
  it("scores chrF per task, exact numbers and length", () => {
    const q = systemQuality([
      { task_type: "translate_to_english", target: "This bag costs 177 dollars.", output: "This bag costs 177 dollars." },
      { task_type: "translate_to_english", target: "I have 3 cats and 12 dogs.", output: "I have 3 cats and 4 dogs." },
      { task_type: "summarize_in_english", target: "We like rice.", output: "zzzz qqqq" }
    ])
    expect(q.n).toBe(3)
    expect(q.chrfByTask["translate_to_english"]).toBeGreaterThan(70)
    expect(q.chrfByTask["summarize_in_english"]).toBeLessThan(5)
    expect(q.numbers).toBe(3)
    expect(q.numbersMatched).toBe(2)
    expect(q.numberMatchRate).toBeCloseTo(2 / 3, 10)
    expect(q.meanChars).toBeCloseTo((27 + 25 + 9) / 3, 10)
    expect(q.chrfCI!.lo).toBeLessThanOrEqual(q.chrf)
    expect(q.chrfCI!.hi).toBeGreaterThanOrEqual(q.chrf)
  })
})

const item = (system: string, baseline: string) => ({
  id: "0", bucket: "content" as const, instruction: "Translate.", reference: "This bag costs 177 dollars.", system, baseline
})

describe("offline judge floor", () => {
  it("ties two noise outputs that the bare chrF comparison would split", () => {
    const noise = item("-  is  is Tư Tư Tư. -oringoring.", ":: Voting Voting Voting(Z(Z(Z OVERRIDE OVERRIDE")
    expect(offlineJudge(noise).outcome).not.toBe("tie")
    expect(offlineJudge(noise, { floor: 20 }).outcome).toBe("tie")
    // A real answer still beats noise with the floor on.
    expect(offlineJudge(item("This bag costs 170 dollars.", ":: Voting Voting"), { floor: 20 }).outcome).toBe("win")
  })
})

const pair = (i: number, outcome: "win" | "loss", chars: { system: number; baseline: number }): PairOutcome => {
  const verdict = (first: boolean) => ({ _tag: "valid" as const, verdict: (outcome === "win") === first ? ("A" as const) : ("B" as const) })
  return {
    id: String(i),
    bucket: "content",
    outcome,
    orders: [
      { order: "system_first", verdict: verdict(true), outcome },
      { order: "baseline_first", verdict: verdict(false), outcome }
    ],
    flipped: false,
    invalidReasons: [],
    offline: true,
    chars
  }
}

describe("length-controlled win rate", () => {
  // Hand-made verdicts: the two systems are equally good, but the judge prefers the longer answer, and the system
  // is usually longer. The raw win rate flatters the system; the length-controlled one must come back to ½.
  const rng = makeRng(5)
  const outcomes: Array<PairOutcome> = Array.from({ length: 400 }, (_, i) => {
    const diff = Math.round(60 + 80 * rng.normal()) // system − baseline characters, mostly positive
    const pWin = 1 / (1 + Math.exp(-diff / 40))
    const u = rng.uniform()
    const outcome = u < pWin ? "win" : "loss"
    return pair(i, outcome, { system: 100 + Math.max(0, diff), baseline: 100 + Math.max(0, -diff) })
  })

  it("moves toward 50% and its interval covers the known answer", () => {
    const agg = aggregate(outcomes, { label: "lc-test" })
    expect(agg.winRate!).toBeGreaterThan(0.65)
    const lc = agg.lengthControlled!
    expect(Math.abs(lc.winRate - 0.5)).toBeLessThan(Math.abs(agg.winRate! - 0.5))
    expect(lc.ci!.lo).toBeLessThan(0.5)
    expect(lc.ci!.hi).toBeGreaterThan(0.5)
    expect(lc.lengthCoef).toBeGreaterThan(0.5)
  })

  it("leaves a length-free preference where it is", () => {
    const fair = outcomes.map((o, i) => pair(i, i % 4 === 0 ? "loss" : "win", o.chars!))
    const lc = lengthControlledWinRate(fair, { resamples: 1000, seed: 0 }, "fair")!
    expect(lc.winRate).toBeGreaterThan(0.68)
    expect(lc.winRate).toBeLessThan(0.82)
  })

  it("fits the logistic model with the Bradley–Terry fitter (checked against the penalised likelihood's gradient)", () => {
    const x = [-2, -1, -0.5, 0, 0.5, 1, 2, 3]
    const y = [0, 0, 1, 0, 1, 1, 0.5, 1]
    const { a, b } = fitPairLogit(x, y)!
    let ga = 0
    let gb = 0
    x.forEach((xi, i) => {
      const p = 1 / (1 + Math.exp(-(a + b * xi)))
      ga += y[i] - p
      gb += (y[i] - p) * xi
    })
    // the fit's ridge (1e-4 on each parameter) is the only term left in the gradient
    expect(Math.abs(ga - 1e-4 * a)).toBeLessThan(1e-8)
    expect(Math.abs(gb - 1e-4 * b)).toBeLessThan(1e-8)
    expect(b).toBeGreaterThan(0.3) // y rises with x
    // a subset of the rows is the fit of those rows alone
    const idx = Int32Array.from([0, 1, 2, 3, 6, 7])
    const sub = fitPairLogit(Array.from(idx, (i) => x[i]), Array.from(idx, (i) => y[i]))!
    const viaIdx = fitPairLogit(x, y, idx)!
    expect(viaIdx.a).toBeCloseTo(sub.a, 10)
    expect(viaIdx.b).toBeCloseTo(sub.b, 10)
  })
})
