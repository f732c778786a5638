/**
 * Paired and unpaired bootstrap intervals of a difference (src/metrics/paired.ts) on hand-made per-example scores:
 * a known shift is covered and called real when the runs share their examples, the same shift drowns in the
 * between-example spread when they do not, a ratio statistic is resampled as a ratio, and identical runs are noise.
 */
import { describe, expect, it } from "vitest"
import { bootstrapDifference, meanOf, ratioOf } from "../../src/metrics/paired.ts"
import { makeRng } from "../../src/models/rng.ts"

const N = 200
const rng = makeRng(42)
// hard and easy examples: a large spread between examples, which both runs share
const base = Float64Array.from({ length: N }, () => 0.5 + 0.3 * rng.normal())
const shifted = Float64Array.from(base, (v) => v + 0.05 + 0.02 * rng.normal())
const ids = Array.from({ length: N }, (_, i) => `pair${i}`)

describe("bootstrapDifference", () => {
  it("paired: covers a known shift of 0.05 and calls it real", () => {
    const d = bootstrapDifference({ ids, columns: { x: base } }, { ids, columns: { x: shifted } }, meanOf("x"))
    expect(d.paired).toBe(true)
    expect(d.n).toBe(N)
    expect(d.delta!).toBeCloseTo(0.05, 2)
    expect(d.ci!.lo).toBeLessThan(0.05)
    expect(d.ci!.hi).toBeGreaterThan(0.05)
    expect(d.ci!.lo).toBeGreaterThan(0)
    expect(d.verdict).toBe("real")
  })

  it("pairs by id, not by position: the second run's rows may come in any order", () => {
    const order = Array.from({ length: N }, (_, i) => (i * 37) % N)
    const b = { ids: order.map((i) => ids[i]), columns: { x: Float64Array.from(order, (i) => shifted[i]) } }
    const straight = bootstrapDifference({ ids, columns: { x: base } }, { ids, columns: { x: shifted } }, meanOf("x"))
    const permuted = bootstrapDifference({ ids, columns: { x: base } }, b, meanOf("x"))
    expect(permuted.paired).toBe(true)
    expect(permuted.delta!).toBeCloseTo(straight.delta!, 12)
    expect(permuted.ci).toEqual(straight.ci)
  })

  it("unpaired when the eval sets differ: the same shift is noise next to the between-example spread", () => {
    const other = { ids: ids.map((id) => `other-${id}`), columns: { x: shifted } }
    const d = bootstrapDifference({ ids, columns: { x: base } }, other, meanOf("x"))
    expect(d.paired).toBe(false)
    expect(d.ci!.lo).toBeLessThan(0)
    expect(d.ci!.hi).toBeGreaterThan(0.05)
    expect(d.verdict).toBe("noise")
  })

  it("identical runs: Δ 0 and noise", () => {
    const d = bootstrapDifference({ ids, columns: { x: base } }, { ids, columns: { x: base } }, meanOf("x"))
    expect(d.delta).toBe(0)
    expect(d.ci).toEqual({ lo: 0, hi: 0 })
    expect(d.verdict).toBe("noise")
  })

  it("a ratio statistic (wins / (wins + losses)) resampled as a ratio; seeded, so it repeats", () => {
    // run A: 60 wins, 40 losses, 100 ties; run B turns 30 of A's ties into wins on the same prompts
    const win = Float64Array.from({ length: N }, (_, i) => (i < 60 ? 1 : 0))
    const loss = Float64Array.from({ length: N }, (_, i) => (i >= 60 && i < 100 ? 1 : 0))
    const winB = Float64Array.from({ length: N }, (_, i) => (i < 60 || (i >= 100 && i < 130) ? 1 : 0))
    const cols = (w: Float64Array) => ({ win: w, decisive: Float64Array.from(w, (v, i) => v + loss[i]) })
    const d = bootstrapDifference({ ids, columns: cols(win) }, { ids, columns: cols(winB) }, ratioOf("win", "decisive"))
    expect(d.delta!).toBeCloseTo(90 / 130 - 60 / 100, 12)
    expect(d.verdict).toBe("real")
    expect(bootstrapDifference({ ids, columns: cols(win) }, { ids, columns: cols(winB) }, ratioOf("win", "decisive"))).toEqual(d)
    // a ratio undefined on every sample: no interval
    const zero = { ids, columns: { win: new Float64Array(N), decisive: new Float64Array(N) } }
    expect(bootstrapDifference(zero, zero, ratioOf("win", "decisive"))).toMatchObject({ delta: null, ci: null, verdict: "n/a" })
  })
})
