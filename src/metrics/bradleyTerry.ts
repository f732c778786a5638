/**
 * One ranking of all systems from pairwise verdicts, as Chatbot Arena and Arena-Hard-Auto make it: a Bradley–Terry
 * model P(a beats b) = σ(β_a − β_b), fitted by maximum likelihood (Newton; a tie counts as half a win each way),
 * optionally with **style control**: P = σ(β_a − β_b + γ·x), x the answers' length difference standardised over the
 * battles (Arena-Hard's length covariate), so that a system that wins only by writing more gets no credit for it.
 *
 * Scores are on the Elo scale the arenas print: 1000 + 400·β/ln 10, with the systems' mean at 1000. Intervals are
 * percentile bootstrap intervals over prompts (every battle of a resampled prompt comes along; the model is refitted
 * per resample; the standardisation of x is kept).
 */
import { deriveSeed, makeRng } from "../models/rng.ts"
import type { Interval } from "../schemas/bootstrap.ts"
import { percentileInterval } from "./bootstrap.ts"

export interface Battle {
  /** The prompt both answers reply to (the bootstrap's unit). */
  readonly prompt: string
  readonly a: string
  readonly b: string
  /** 1: a won, 0.5: a tie, 0: b won. */
  readonly score: number
  /** Characters of a's answer minus b's (style control); absent when unknown. */
  readonly lengthDiff?: number
}

export interface BradleyTerryFit {
  readonly systems: ReadonlyArray<string>
  /** β per system (mean 0), in `systems` order. */
  readonly beta: Float64Array
  /** The length coefficient (per standard deviation of the length difference); null without style control. */
  readonly gamma: number | null
}

const ELO = 400 / Math.LN10

/** Elo-scale score of a β (mean-centred): 1000 + 400·β / ln 10. */
export const eloOf = (beta: number): number => 1000 + ELO * beta

/** Solves the small dense system `h x = g` (Gaussian elimination with partial pivoting); null when singular. */
const solve = (h: Array<Float64Array>, g: Float64Array): Float64Array | null => {
  const n = g.length
  const a = h.map((row, i) => Float64Array.from([...row, g[i]]))
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r
    if (!(Math.abs(a[p][c]) > 1e-12)) return null
    ;[a[c], a[p]] = [a[p], a[c]]
    for (let r = c + 1; r < n; r++) {
      const f = a[r][c] / a[c][c]
      for (let k = c; k <= n; k++) a[r][k] -= f * a[c][k]
    }
  }
  const x = new Float64Array(n)
  for (let r = n - 1; r >= 0; r--) {
    let s = a[r][n]
    for (let k = r + 1; k < n; k++) s -= a[r][k] * x[k]
    x[r] = s / a[r][r]
  }
  return x
}

/**
 * The maximum-likelihood fit over `battles` among `systems` (the first system's β is held at 0 while fitting, then
 * all are centred), with `x[i]` the standardised length covariate of battle i when style-controlled. A tiny ridge
 * (1e-4) keeps a system that never lost (or never won) finite. Null when a system has no battle.
 */
const fit = (
  battles: ReadonlyArray<Battle>,
  index: ReadonlyMap<string, number>,
  k: number,
  x: Float64Array | null,
  idx: ArrayLike<number>
): { beta: Float64Array; gamma: number | null } | null => {
  const seen = new Uint8Array(k)
  for (let t = 0; t < idx.length; t++) {
    const bt = battles[idx[t]]
    seen[index.get(bt.a)!] = 1
    seen[index.get(bt.b)!] = 1
  }
  if (seen.some((s) => s === 0)) return null
  const p = k - 1 + (x === null ? 0 : 1) // β_1 … β_{k−1}, then γ
  const theta = new Float64Array(p)
  const ridge = 1e-4
  for (let iter = 0; iter < 100; iter++) {
    const g = new Float64Array(p)
    const h = Array.from({ length: p }, () => new Float64Array(p))
    for (let t = 0; t < idx.length; t++) {
      const i = idx[t]
      const bt = battles[i]
      const ia = index.get(bt.a)!
      const ib = index.get(bt.b)!
      // z = β_a − β_b + γ x; the gradient of z in θ is +1 at a, −1 at b (system 0 fixed), x at γ
      const parts: Array<readonly [number, number]> = []
      if (ia > 0) parts.push([ia - 1, 1])
      if (ib > 0) parts.push([ib - 1, -1])
      if (x !== null) parts.push([p - 1, x[i]])
      let z = 0
      for (const [j, v] of parts) z += theta[j] * v
      const prob = 1 / (1 + Math.exp(-z))
      const w = prob * (1 - prob)
      for (const [j, v] of parts) {
        g[j] += (bt.score - prob) * v
        for (const [l, u] of parts) h[j][l] += w * v * u
      }
    }
    for (let j = 0; j < p; j++) {
      g[j] -= ridge * theta[j]
      h[j][j] += ridge
    }
    const step = solve(h, g)
    if (step === null) return null
    let size = 0
    for (let j = 0; j < p; j++) {
      const s = Math.max(-2, Math.min(2, step[j]))
      theta[j] += s
      size += Math.abs(s)
    }
    if (size < 1e-10) break
  }
  const beta = new Float64Array(k)
  for (let j = 1; j < k; j++) beta[j] = theta[j - 1]
  const mean = beta.reduce((a, b) => a + b, 0) / k
  for (let j = 0; j < k; j++) beta[j] -= mean
  return { beta, gamma: x === null ? null : theta[p - 1] }
}

/** The standardised length covariate of each battle (0 where unknown or when every difference is equal). */
const lengthCovariate = (battles: ReadonlyArray<Battle>): Float64Array => {
  const known = battles.filter((b) => b.lengthDiff !== undefined).map((b) => b.lengthDiff!)
  const mu = known.length === 0 ? 0 : known.reduce((a, b) => a + b, 0) / known.length
  const sd = known.length === 0 ? 0 : Math.sqrt(known.reduce((a, b) => a + (b - mu) ** 2, 0) / known.length)
  // not centred: a length difference of 0 must mean "no style advantage", whatever the sample's mean
  return Float64Array.from(battles, (b) => (b.lengthDiff === undefined || !(sd > 0) ? 0 : b.lengthDiff / sd))
}

/** The fit over all battles (see the module doc); null when some system has no battle. */
export const fitBradleyTerry = (
  battles: ReadonlyArray<Battle>,
  systems: ReadonlyArray<string>,
  options: { readonly styleControl?: boolean } = {}
): BradleyTerryFit | null => {
  const index = new Map(systems.map((s, i) => [s, i]))
  const x = options.styleControl === true ? lengthCovariate(battles) : null
  const r = fit(battles, index, systems.length, x, Int32Array.from(battles, (_, i) => i))
  return r === null ? null : { systems, ...r }
}

const PAIR_INDEX: ReadonlyMap<string, number> = new Map([["baseline", 0], ["system", 1]])

/**
 * Two systems only, the pairwise case of the fit above: P(system beats baseline) = σ(a + b·x) with a = β_system −
 * β_baseline and b = γ, on scores y ∈ {1, ½, 0} against an already standardised covariate x. Returns the fit of rows
 * `idx` (default all), built once for many resamples. The judge's length-controlled win rate (AlpacaEval 2's model)
 * uses it, so the pairwise rates and the ranking come from one fitter. A fit is null when it cannot be made (fewer
 * than 2 rows, or a singular step).
 */
export const pairLogitFitter = (x: ArrayLike<number>, y: ArrayLike<number>): ((idx?: ArrayLike<number>) => { a: number; b: number } | null) => {
  const battles = Array.from(y, (score) => ({ prompt: "", a: "system", b: "baseline", score }))
  const covariate = Float64Array.from(x)
  const all = Int32Array.from(battles, (_, i) => i)
  return (idx) => {
    const rows = idx ?? all
    if (rows.length < 2) return null
    const r = fit(battles, PAIR_INDEX, 2, covariate, rows)
    return r === null ? null : { a: r.beta[1] - r.beta[0], b: r.gamma! }
  }
}

/** `pairLogitFitter(x, y)(idx)`, for one fit. */
export const fitPairLogit = (x: ArrayLike<number>, y: ArrayLike<number>, idx?: ArrayLike<number>): { a: number; b: number } | null =>
  pairLogitFitter(x, y)(idx)

export interface RankingRow {
  readonly system: string
  /** Elo-scale score (systems' mean 1000) and its 95% interval over prompts. */
  readonly score: number
  readonly ci: Interval | null
}

export interface Ranking {
  /** Best first. */
  readonly rows: ReadonlyArray<RankingRow>
  readonly battles: number
  readonly prompts: number
  /** With style control: the length coefficient (per sd of the length difference); else null. */
  readonly lengthCoef: number | null
}

/** A ranking of `systems` with bootstrap intervals over prompts; null when the battles do not reach every system. */
export const rankSystems = (
  battles: ReadonlyArray<Battle>,
  systems: ReadonlyArray<string>,
  options: { readonly styleControl?: boolean; readonly resamples?: number; readonly seed?: number; readonly label?: string } = {}
): Ranking | null => {
  const whole = fitBradleyTerry(battles, systems, options)
  if (whole === null) return null
  const index = new Map(systems.map((s, i) => [s, i]))
  const x = options.styleControl === true ? lengthCovariate(battles) : null
  const byPrompt = new Map<string, Array<number>>()
  battles.forEach((b, i) => {
    const list = byPrompt.get(b.prompt)
    if (list === undefined) byPrompt.set(b.prompt, [i])
    else list.push(i)
  })
  const groups = [...byPrompt.values()]
  const resamples = options.resamples ?? 1000
  const rng = makeRng(deriveSeed(options.seed ?? 0, `bradley-terry:${options.label ?? ""}:${options.styleControl === true ? "style" : "raw"}`))
  const draws: Array<Array<number | null>> = systems.map(() => [])
  for (let r = 0; r < resamples; r++) {
    const idx: Array<number> = []
    for (let g = 0; g < groups.length; g++) idx.push(...groups[Math.floor(rng.uniform() * groups.length)])
    const f = fit(battles, index, systems.length, x, idx)
    systems.forEach((_, s) => draws[s].push(f === null ? null : eloOf(f.beta[s])))
  }
  const rows = systems
    .map((system, s) => ({ system, score: eloOf(whole.beta[s]), ci: percentileInterval(draws[s], 0.95) }))
    .sort((a, b) => b.score - a.score)
  return { rows, battles: battles.length, prompts: groups.length, lengthCoef: whole.gamma }
}
