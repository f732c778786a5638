import { describe, expect, it } from "vitest"
import { goldRanks, metricsFromRanks, retrievalMetrics } from "../../src/metrics/retrieval.ts"
import { makeRng } from "../../src/models/rng.ts"
import { l2NormalizeRows, matMulABtJs } from "../../src/train/hostMath.ts"
import type { MatMulABt } from "../../src/train/hostMath.ts"

const randUnit = (seed: number, rows: number, d: number): Float32Array => {
  const rng = makeRng(seed)
  return l2NormalizeRows(Float32Array.from({ length: rows * d }, () => rng.normal()), rows, d)
}

describe("retrieval metrics", () => {
  it("match a hand-computed example with ties (d = 1: the score of candidate j is c_j for every query)", () => {
    // queries all 1, so s_ij = c_j; the gold of query i is c_i.
    const c = [5, 3, 5, 1, 0, 2, 4, 5, -1, 3, -2, 0]
    // rank_i = 1 + #{j: c_j > c_i} + #{j < i: c_j = c_i}, by hand:
    //  i0 c=5 : none higher, no earlier tie                      → 1
    //  i1 c=3 : higher 5,5,4,5 (4)                               → 5
    //  i2 c=5 : none higher, earlier tie c0                      → 2
    //  i3 c=1 : higher 5,3,5,2,4,5,3 (7)                         → 8
    //  i4 c=0 : higher 5,3,5,1,2,4,5,3 (8); the other 0 is later → 9
    //  i5 c=2 : higher 5,3,5,4,5,3 (6)                           → 7
    //  i6 c=4 : higher 5,5,5 (3)                                 → 4
    //  i7 c=5 : none higher, earlier ties c0, c2                 → 3
    //  i8 c=-1: higher: all but -1 and -2 (10)                   → 11
    //  i9 c=3 : higher 5,5,4,5 (4), earlier tie c1               → 6
    //  i10 c=-2: all 11 others higher                            → 12
    //  i11 c=0: higher (8), earlier tie c4                       → 10
    const wantRanks = [1, 5, 2, 8, 9, 7, 4, 3, 11, 6, 12, 10]
    const q = new Float32Array(12).fill(1)
    const ranks = goldRanks(q, Float32Array.from(c), 1)
    expect([...ranks]).toEqual(wantRanks)
    const m = retrievalMetrics(q, Float32Array.from(c), 1)
    expect(m.n).toBe(12)
    expect(m.r1).toBeCloseTo(1 / 12, 12) // rank 1 once
    expect(m.r5).toBeCloseTo(5 / 12, 12) // ranks 1, 5, 2, 4, 3
    expect(m.r10).toBeCloseTo(10 / 12, 12) // all but 11 and 12
    const mrr =
      (1 / 1 + 1 / 5 + 1 / 2 + 1 / 8 + 1 / 9 + 1 / 7 + 1 / 4 + 1 / 3 + 1 / 11 + 1 / 6 + 1 / 12 + 1 / 10) / 12
    expect(m.mrr).toBeCloseTo(mrr, 12)
    expect(m.mrr).toBeCloseTo(0.2586008898, 8)
    expect(m.meanRank).toBeCloseTo(78 / 12, 12)
    expect(m.chanceR1).toBeCloseTo(1 / 12, 12)
  })

  it("match a small 2-d example (unit vectors, ties broken by candidate index)", () => {
    // candidates: c0 [1,0], c1 [0,1], c2 [1,0], c3 [0.6,0.8]
    const cand = Float32Array.from([1, 0, 0, 1, 1, 0, 0.6, 0.8])
    // queries:    q0 [1,0] (gold 1, ties with c2 which is later → rank 1)
    //             q1 [1,0] (gold 0; c0, c2 = 1 and c3 = 0.6 beat it → rank 4)
    //             q2 [1,0] (gold 1; ties with earlier c0 → rank 2)
    //             q3 [0,1] (gold 0.8; c1 = 1 beats it → rank 2)
    const qs = Float32Array.from([1, 0, 1, 0, 1, 0, 0, 1])
    expect([...goldRanks(qs, cand, 2)]).toEqual([1, 4, 2, 2])
    const m = retrievalMetrics(qs, cand, 2)
    expect(m).toEqual({ n: 4, r1: 0.25, r5: 1, r10: 1, mrr: (1 + 0.25 + 0.5 + 0.5) / 4, meanRank: 9 / 4, chanceR1: 0.25 })
  })

  it("chunked equals unchunked, and any matmul can be plugged in", () => {
    const n = 37
    const d = 8
    const q = randUnit(1, n, d)
    const c = randUnit(2, n, d)
    const whole = goldRanks(q, c, d, { chunkRows: n })
    for (const chunkRows of [1, 5, 36, 100]) expect(goldRanks(q, c, d, { chunkRows })).toEqual(whole)
    expect(goldRanks(q, c, d)).toEqual(whole)
    let calls = 0
    let maxRows = 0
    const spy: MatMulABt = (a, ar, b, br, dd, out) => {
      calls++
      maxRows = Math.max(maxRows, ar)
      return matMulABtJs(a, ar, b, br, dd, out)
    }
    expect(goldRanks(q, c, d, { chunkRows: 10, matmul: spy })).toEqual(whole)
    expect(calls).toBe(4)
    expect(maxRows).toBe(10)
    // the ranks agree with a brute-force full sort in float64 (random data: no ties)
    for (let i = 0; i < n; i++) {
      const s = Array.from({ length: n }, (_, j) => {
        let acc = 0
        for (let k = 0; k < d; k++) acc += q[i * d + k] * c[j * d + k]
        return { j, acc }
      }).sort((a, b) => b.acc - a.acc || a.j - b.j)
      expect(whole[i]).toBe(s.findIndex((x) => x.j === i) + 1)
    }
  })

  it("reports chance level and the perfect case", () => {
    const d = 6
    const c = randUnit(3, 20, d)
    const perfect = retrievalMetrics(c.slice(0, 10 * d), c, d)
    expect(perfect).toEqual({ n: 10, r1: 1, r5: 1, r10: 1, mrr: 1, meanRank: 1, chanceR1: 1 / 20 })
    // random queries against 20 candidates: R@1 sits near chance over many draws
    let r1 = 0
    for (let seed = 0; seed < 30; seed++) r1 += retrievalMetrics(randUnit(100 + seed, 20, d), c, d).r1
    expect(r1 / 30).toBeLessThan(0.2)
    expect(() => retrievalMetrics(c, c.slice(0, 5 * d), d)).toThrow(/candidates/)
  })

  it("normalize: true equals normalising first", () => {
    const d = 5
    const rng = makeRng(4)
    const q = Float32Array.from({ length: 9 * d }, () => rng.normal() * (1 + 10 * rng.uniform()))
    const c = Float32Array.from({ length: 9 * d }, () => rng.normal() * (1 + 10 * rng.uniform()))
    const want = goldRanks(l2NormalizeRows(q, 9, d), l2NormalizeRows(c, 9, d), d)
    expect(goldRanks(q, c, d, { normalize: true })).toEqual(want)
    expect(metricsFromRanks([]).n).toBe(0)
  })
})
