/**
 * The bitext scorers (src/metrics/bitext.ts) against a plain reference written from the definitions (float64, the
 * whole score matrix at once, sorting instead of top-k lists), on small random matrices in both directions and with
 * chunks smaller than the matrix; the xsim error rate and the mistake breakdown on hand-made cases.
 */
import { describe, expect, it } from "vitest"
import {
  bestCandidates,
  classifyMistake,
  neighbourhoodMeans,
  pooledR1,
  type Scoring,
  SCORINGS,
  scoredRanks,
  xsimErrorRate
} from "../../src/metrics/bitext.ts"
import { makeRng } from "../../src/models/rng.ts"

const random = (rows: number, d: number, seed: number): Float32Array => {
  const rng = makeRng(seed)
  const x = new Float32Array(rows * d)
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform() * 2 - 1
  return x
}

/** Plain reference: unit rows in float64, the full cosine matrix, neighbourhoods by sorting. */
const reference = (q: Float32Array, c: Float32Array, d: number, scoring: Scoring, k: number) => {
  const unit = (x: Float32Array) => {
    const rows: Array<Array<number>> = []
    for (let i = 0; i < x.length / d; i++) {
      const row = Array.from(x.subarray(i * d, (i + 1) * d), Number)
      const norm = Math.sqrt(row.reduce((a, v) => a + v * v, 0))
      rows.push(row.map((v) => v / norm))
    }
    return rows
  }
  const Q = unit(q)
  const C = unit(c)
  const cos = Q.map((x) => C.map((y) => x.reduce((a, v, t) => a + v * y[t], 0)))
  const meanTop = (xs: Array<number>, kk: number) => {
    const top = [...xs].sort((a, b) => b - a).slice(0, Math.min(kk, xs.length))
    return top.reduce((a, v) => a + v, 0) / top.length
  }
  const rq = cos.map((row) => meanTop(row, k))
  const rc = C.map((_, j) => meanTop(cos.map((row) => row[j]), k))
  const score = (i: number, j: number) =>
    scoring === "cosine" ? cos[i][j] : scoring === "margin" ? cos[i][j] / ((rq[i] + rc[j]) / 2) : 2 * cos[i][j] - rq[i] - rc[j]
  const ranks = Q.map((_, i) => 1 + C.filter((_, j) => score(i, j) > score(i, i) || (score(i, j) === score(i, i) && j < i)).length)
  const best = Q.map((_, i) => C.reduce((arg, _, j) => (score(i, j) > score(i, arg) ? j : arg), 0))
  return { rq, rc, ranks, best }
}

describe("bitext scorers", () => {
  it("neighbourhood means equal the reference to 1e-6, both directions, chunked", () => {
    const d = 8
    const q = random(13, d, 1)
    const c = random(13, d, 2)
    for (const [a, b] of [[q, c], [c, q]] as const) {
      for (const k of [1, 4, 10, 20]) {
        const got = neighbourhoodMeans(a, b, d, k, { normalize: true, chunkRows: 5 })
        const ref = reference(a, b, d, "margin", k)
        got.queries.forEach((v, i) => expect(Math.abs(v - ref.rq[i])).toBeLessThan(1e-6))
        got.candidates.forEach((v, j) => expect(Math.abs(v - ref.rc[j])).toBeLessThan(1e-6))
      }
    }
  })

  it("ranks and best candidates equal the reference for cosine, margin (k 4) and CSLS (k 10), both directions", () => {
    const d = 6
    // queries are noisy copies of the candidates, so ranks spread over 1 … n
    const c = random(40, d, 3)
    const noise = random(40, d, 4)
    const q = c.map((v, i) => v + 0.9 * noise[i])
    for (const [a, b] of [[q, c], [c, q]] as const) {
      for (const scoring of SCORINGS) {
        const k = scoring === "margin" ? 4 : 10
        const ref = reference(a, b, d, scoring, k)
        for (const chunkRows of [7, 40]) {
          expect(Array.from(scoredRanks(a, b, d, scoring, { normalize: true, chunkRows }))).toEqual(ref.ranks)
          expect(Array.from(bestCandidates(a, b, d, scoring, { normalize: true, chunkRows }))).toEqual(ref.best)
        }
      }
    }
    // the scorers do differ on this data (else the test above could not tell them apart)
    const r = SCORINGS.map((s) => scoredRanks(q, c, d, s, { normalize: true }).join())
    expect(new Set(r).size).toBe(3)
  })

  it("margin and CSLS undo a hub: a candidate near every query steals fewer queries than under cosine", () => {
    // queries share a +1.2 offset; candidates are noisy copies, and candidate 0 is the all-ones direction (the hub)
    const d = 6
    const n = 30
    const rng = makeRng(7)
    const q = new Float32Array(n * d).map(() => rng.uniform() * 2 - 1 + 1.2)
    const c = q.map((v) => v + (rng.uniform() * 2 - 1))
    for (let t = 0; t < d; t++) c[t] = 1
    const stolen = (s: Scoring) => Array.from(bestCandidates(q, c, d, s, { normalize: true })).filter((b, i) => b === 0 && i !== 0).length
    const r1 = (s: Scoring) => 1 - xsimErrorRate(scoredRanks(q, c, d, s, { normalize: true }))
    expect(stolen("cosine")).toBe(3)
    expect(stolen("margin")).toBeLessThan(stolen("cosine"))
    expect(stolen("csls")).toBeLessThan(stolen("cosine"))
    expect(r1("margin")).toBeGreaterThan(r1("cosine"))
    expect(r1("csls")).toBeGreaterThan(r1("cosine"))
    // the xsim error rate on a known answer: ranks [1, 2, 1, 3] → 2 of 4 wrong
    expect(xsimErrorRate([1, 2, 1, 3])).toBe(0.5)
  })

  it("pooled R@1 scores each block of the pool size on its own and leaves a partial block out", () => {
    const d = 5
    const c = random(25, d, 5)
    const noise = random(25, d, 6)
    const q = c.map((v, i) => v + 0.8 * noise[i])
    const got = pooledR1(q, c, d, "cosine", 10, { normalize: true })!
    let hits = 0
    for (const b of [0, 1]) {
      const part = (x: Float32Array) => x.subarray(b * 10 * d, (b + 1) * 10 * d)
      hits += Array.from(scoredRanks(part(q), part(c), d, "cosine", { normalize: true })).filter((r) => r === 1).length
    }
    expect(got).toEqual({ pool: 10, blocks: 2, r1: hits / 20 })
    expect(pooledR1(q, c, d, "cosine", 30)).toBeNull()
  })

  it("classifies a top-1 mistake by what separates it from the gold", () => {
    expect(classifyMistake("I paid 5000 riel for rice.", "I paid 7000 riel for rice.")).toBe("number")
    expect(classifyMistake("Next year, Piseth will go to Kratie.", "Next year, Piseth will go to Kampot.")).toBe("entity")
    expect(classifyMistake("Dara will go to Phnom Penh at 7.", "Sokha will go to Siem Reap at 9.")).toBe("entity")
    expect(classifyMistake("I like rice.", "I like noodles.")).toBe("other")
    expect(classifyMistake("The market is open.", "The market is open!")).toBe("identical")
  })
})
