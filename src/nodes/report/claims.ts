/**
 * "What this run shows": the paper's qualitative claims, each checked against this run's own numbers and 95%
 * intervals. A claim is "reproduced" only when the interval supports it, "not reproduced" when the interval goes
 * against it, and "inconclusive" when it allows both — so a small or noisy run cannot flatter LLINK.
 */
import type { Interval } from "../../schemas/bootstrap.ts"
import type { Claim } from "../../schemas/generation.ts"
import type { JudgeAggregate } from "../../schemas/judge.ts"
import type { ResultsDoc } from "../../schemas/results.ts"

const pct = (x: number) => `${(100 * x).toFixed(1)}%`
const ci = (i: Interval | null, f: (x: number) => string = pct) => (i === null ? "no interval" : `95% CI ${f(i.lo)}–${f(i.hi)}`)
const num = (x: number) => x.toFixed(3)

/** Above ½ (reproduced), below ½ (not reproduced) or across it, for a preference and its length-controlled twin. */
const preferenceClaim = (claim: string, agg: JudgeAggregate | undefined, name: string): Claim => {
  if (agg === undefined || agg.preference === null || agg.preferenceCI === null) {
    return { claim, verdict: "not computed", evidence: `no judged pairs against ${name}` }
  }
  const raw = agg.preferenceCI
  const lc = agg.lengthControlled
  const lcText = lc === null ? "length-controlled: not computable" : `length-controlled win rate ${pct(lc.winRate)} (${ci(lc.ci)})`
  const evidence = `preference ${pct(agg.preference)} (${ci(raw)}; ${agg.wins} wins, ${agg.losses} losses, ${agg.ties} ties); ${lcText}`
  const lcLo = lc?.ci?.lo ?? lc?.winRate ?? 0.5
  const lcHi = lc?.ci?.hi ?? lc?.winRate ?? 0.5
  if (raw.lo > 0.5 && lcLo > 0.5) return { claim, verdict: "reproduced", evidence }
  if (raw.hi < 0.5 && lcHi < 0.5) return { claim, verdict: "not reproduced", evidence }
  return { claim, verdict: "inconclusive", evidence }
}

/** a's R@1 clearly above b's (intervals apart), clearly below, or neither. */
const order = (a: { r1: number; r1CI: Interval | null }, b: { r1: number; r1CI: Interval | null }): "above" | "below" | "overlap" => {
  if (a.r1CI === null || b.r1CI === null) return a.r1 > b.r1 ? "above" : a.r1 < b.r1 ? "below" : "overlap"
  if (a.r1CI.lo > b.r1CI.hi) return "above"
  if (a.r1CI.hi < b.r1CI.lo) return "below"
  return "overlap"
}

export const runClaims = (r: ResultsDoc): Array<Claim> => {
  const claims: Array<Claim> = []
  const overall = r.judge?.overall
  claims.push(preferenceClaim("LLINK is preferred over the base model", overall?.vsBase, "base"))
  claims.push(preferenceClaim("LLINK is preferred over direct fine-tuning", overall?.vsFinetune, "fine-tune"))

  const { full, stageA, finetune } = r.retrieval
  const retrievalClaim = "Retrieval: LLINK (full) ≥ Stage A ≥ fine-tune (R@1)"
  if (full === null || stageA === null || finetune === null) {
    claims.push({ claim: retrievalClaim, verdict: "not computed", evidence: "a retrieval row is missing" })
  } else {
    const aOverF = order(stageA, finetune)
    const fullOverA = order(full, stageA)
    const evidence = `R@1 full ${num(full.r1)} (${ci(full.r1CI, num)}), Stage A ${num(stageA.r1)} (${ci(stageA.r1CI, num)}), ` +
      `fine-tune ${num(finetune.r1)} (${ci(finetune.r1CI, num)}), chance ${num(stageA.chanceR1)}, n = ${stageA.n}`
    const verdict = aOverF === "below" || fullOverA === "below" ? "not reproduced" : aOverF === "above" ? "reproduced" : "inconclusive"
    claims.push({
      claim: retrievalClaim,
      verdict,
      evidence: evidence + (verdict === "reproduced" && fullOverA === "overlap" ? " (full and Stage A within each other's intervals)" : "")
    })
  }

  const t = r.tokens
  if (t === null || t.ratioBaseToLlink === null) {
    claims.push({ claim: "LLINK's prompts use fewer decoder tokens", verdict: "not computed", evidence: "no generations" })
  } else {
    claims.push({
      claim: "LLINK's prompts use fewer decoder tokens",
      verdict: t.ratioBaseToLlink > 1 ? "reproduced" : "not reproduced",
      evidence: `mean prompt tokens: base ${t.base.mean.toFixed(1)}, LLINK ${t.llink.mean.toFixed(1)} (${t.ratioBaseToLlink.toFixed(2)}× fewer; paper ≈ ${t.paperReduction}×)`
    })
  }

  const g = r.generation
  const numbersClaim = "Numbers are LLINK's weak spot (fine-tuning, which reads the digits, keeps more of them)"
  const ll = g?.["llink"]
  const ft = g?.["finetune"]
  if (ll === undefined || ft === undefined || ll.numberMatchRate === null || ft.numberMatchRate === null) {
    claims.push({ claim: numbersClaim, verdict: "not computed", evidence: "no numbers in the evaluation targets, or no generations" })
  } else {
    const evidence = `exact-number match: LLINK ${pct(ll.numberMatchRate)} (${ci(ll.numberMatchCI)}), fine-tune ${pct(ft.numberMatchRate)} ` +
      `(${ci(ft.numberMatchCI)}) of ${ll.numbers} numbers; LLINK's overall chrF ${ll.chrf.toFixed(1)}` +
      (r.copyNumbers === "on" ? "; both decoded with the number pointer (generate.copyNumbers), which copies the foreign text's numerals" : "")
    const a = ll.numberMatchCI
    const b = ft.numberMatchCI
    const verdict = a !== null && b !== null && a.hi < b.lo ? "reproduced" : a !== null && b !== null && a.lo > b.hi ? "not reproduced" : "inconclusive"
    claims.push({ claim: numbersClaim, verdict, evidence })
  }
  return claims
}
