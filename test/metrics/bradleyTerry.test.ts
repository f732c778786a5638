/**
 * The Bradley–Terry ranking (src/metrics/bradleyTerry.ts) on simulated verdicts: from known strengths the fitted
 * order is right and the 95% intervals over prompts cover the true scores at about the nominal rate (seeded); with
 * verdicts that depend only on answer length, style control gives near-equal scores where the raw fit does not; and
 * the fit against a separately written gradient-ascent reference.
 */
import { describe, expect, it } from "vitest"
import { type Battle, eloOf, fitBradleyTerry, rankSystems } from "../../src/metrics/bradleyTerry.ts"
import { makeRng } from "../../src/models/rng.ts"

const SYSTEMS = ["llink", "base", "finetune", "mindmerger"]
const TRUE_BETA = [0.9, -0.9, 0.3, -0.3] // mean 0

const simulate = (seed: number, prompts: number, chance: (a: number, b: number, i: number) => number, lengths?: (s: number) => number) => {
  const rng = makeRng(seed)
  const battles: Array<Battle> = []
  for (let p = 0; p < prompts; p++) {
    for (let a = 0; a < SYSTEMS.length; a++) {
      for (let b = a + 1; b < SYSTEMS.length; b++) {
        const la = lengths?.(a) ?? 0
        const lb = lengths?.(b) ?? 0
        const u = rng.uniform()
        const pa = chance(a, b, p)
        // a tie in a tenth of the battles, else a Bernoulli draw
        const score = u < 0.1 ? 0.5 : rng.uniform() < pa ? 1 : 0
        battles.push({ prompt: `p${p}`, a: SYSTEMS[a], b: SYSTEMS[b], score, lengthDiff: la - lb })
      }
    }
  }
  return battles
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z))

describe("Bradley–Terry ranking", () => {
  it("equals a plain gradient-ascent fit of the same likelihood", () => {
    const battles = simulate(1, 60, (a, b) => sigmoid(TRUE_BETA[a] - TRUE_BETA[b]))
    const got = fitBradleyTerry(battles, SYSTEMS)!
    // reference: gradient ascent on the centred β, same ridge
    const beta = new Float64Array(SYSTEMS.length)
    for (let it = 0; it < 20000; it++) {
      const g = new Float64Array(SYSTEMS.length)
      for (const b of battles) {
        const i = SYSTEMS.indexOf(b.a)
        const j = SYSTEMS.indexOf(b.b)
        const r = b.score - sigmoid(beta[i] - beta[j])
        g[i] += r
        g[j] -= r
      }
      for (let s = 0; s < beta.length; s++) beta[s] += (0.5 * (g[s] - 1e-4 * beta[s])) / battles.length
      const mean = beta.reduce((a, v) => a + v, 0) / beta.length
      for (let s = 0; s < beta.length; s++) beta[s] -= mean
    }
    got.beta.forEach((v, s) => expect(Math.abs(v - beta[s])).toBeLessThan(1e-4))
  })

  it("recovers the order of known strengths, and its 95% intervals cover the true scores at about the nominal rate", () => {
    // the truth on the fitted scale: the fit of the population (every battle at its expected score, with ties)
    const population: Array<Battle> = []
    for (let a = 0; a < SYSTEMS.length; a++) {
      for (let b = a + 1; b < SYSTEMS.length; b++) {
        const expected = 0.1 * 0.5 + 0.9 * sigmoid(TRUE_BETA[a] - TRUE_BETA[b])
        for (let p = 0; p < 1000; p++) population.push({ prompt: `p${p}`, a: SYSTEMS[a], b: SYSTEMS[b], score: expected })
      }
    }
    const truthBeta = fitBradleyTerry(population, SYSTEMS)!.beta
    let covered = 0
    let total = 0
    for (let seed = 0; seed < 30; seed++) {
      const battles = simulate(100 + seed, 120, (a, b) => sigmoid(TRUE_BETA[a] - TRUE_BETA[b]))
      const r = rankSystems(battles, SYSTEMS, { resamples: 200, seed })!
      if (seed === 0) expect(r.rows.map((x) => x.system)).toEqual(["llink", "finetune", "mindmerger", "base"])
      for (const row of r.rows) {
        const truth = eloOf(truthBeta[SYSTEMS.indexOf(row.system)])
        total++
        if (row.ci !== null && row.ci.lo <= truth && truth <= row.ci.hi) covered++
      }
    }
    const rate = covered / total
    console.log(`[bradley-terry] coverage of the true scores by 95% intervals: ${covered}/${total} = ${rate.toFixed(3)}`)
    expect(rate).toBeGreaterThan(0.85)
    expect(rate).toBeLessThanOrEqual(1)
  })

  it("style control: verdicts that depend only on length give near-equal controlled scores, not the raw ones", () => {
    // system s writes 100 + 60·s characters; the longer answer wins with σ(1.5 · Δ/100)
    const length = (s: number) => 100 + 60 * s
    const battles = simulate(7, 80, (a, b) => sigmoid(1.5 * (length(a) - length(b)) / 100), length)
    const raw = rankSystems(battles, SYSTEMS, { resamples: 200 })!
    const styled = rankSystems(battles, SYSTEMS, { resamples: 200, styleControl: true })!
    const spread = (r: typeof raw) => Math.max(...r.rows.map((x) => x.score)) - Math.min(...r.rows.map((x) => x.score))
    console.log(`[bradley-terry] length-only verdicts: raw spread ${spread(raw).toFixed(0)} Elo, style-controlled ${spread(styled).toFixed(0)} Elo, length coefficient ${styled.lengthCoef!.toFixed(2)}`)
    expect(spread(raw)).toBeGreaterThan(200)
    expect(spread(styled)).toBeLessThan(60)
    expect(styled.lengthCoef!).toBeGreaterThan(0.5)
    expect(raw.lengthCoef).toBeNull()
  })

  it("is null when a system has no battle", () => {
    const battles: Array<Battle> = [{ prompt: "p", a: "llink", b: "base", score: 1 }]
    expect(fitBradleyTerry(battles, ["llink", "base", "finetune"])).toBeNull()
  })
})
