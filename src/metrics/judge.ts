/**
 * The pairwise judge protocol (paper §5.2/§6: anonymised A/B comparisons with the human reference shown; preference
 * = wins / (wins + losses)). It follows the MT-Bench pairwise-with-reference format: the judge compares both answers
 * with the reference, explains, and ends with `[[A]]`, `[[B]]` or `[[C]]` (tie).
 *
 * Protocol:
 * - Every pair is judged twice, with the order swapped (system first, then baseline first), which removes the
 *   position bias that a single random order only averages out.
 * - Verdict parsing is strict: the answer must contain exactly one *distinct* marker among `[[A]]`, `[[B]]`,
 *   `[[C]]` (repeating the same one is fine). None, or two different ones, is `invalid` with the reason.
 * - Combining the two orders: both valid and equal (from the system's side) → that outcome; both valid and
 *   different → tie, and the pair counts as an order flip; any invalid → `invalid` (recorded, not a tie).
 * - Aggregation per bucket (content understanding vs Q&A): wins, losses, ties, invalid, shares over the valid
 *   pairs, preference = wins/(wins+losses) (null when there is neither), and the order-flip rate over pairs where
 *   both orders were valid. Beside those (what FastChat's MT-bench, AlpacaEval and Arena-Hard report): the win rate
 *   (wins + ½·ties)/(valid pairs); 95% percentile-bootstrap intervals of preference and win rate over prompts
 *   (pairs resampled with replacement, seeded: src/metrics/bootstrap.ts); position consistency (share of pairs with
 *   both orders valid whose orders agree); how often the answer shown first won, over the valid single-order
 *   verdicts; and the mean output length (characters) of the system and the baseline, and their ratio.
 * - `offlineJudge` needs no model: it prefers the output with the higher sentence chrF against the reference, a tie
 *   when |Δ| < margin (1.0 chrF point by default); its outcomes are marked `offline`.
 */
import { Effect, Schema } from "effect"
import { type ChatMessage, LlmEndpoint } from "../services/endpoint.ts"
import { type JudgeAggregate } from "../schemas/judge.ts"
import type { BootstrapConfig, Interval } from "../schemas/bootstrap.ts"
import { bootstrapIntervals } from "./bootstrap.ts"
import { pairLogitFitter } from "./bradleyTerry.ts"
import { sentenceChrf } from "./chrf.ts"

export const Verdict = Schema.Literals(["A", "B", "C"])
export type Verdict = typeof Verdict.Type

/** Outcome from the system's side. */
export const Outcome = Schema.Literals(["win", "loss", "tie"])
export type Outcome = typeof Outcome.Type

export const Bucket = Schema.Literals(["content", "qa"])
export type Bucket = typeof Bucket.Type

/** Q&A tasks form their own bucket; translate, summarise, bullet points, paraphrase, title, ... are "content". */
export const bucketOfTask = (taskType: string): Bucket => (taskType === "qa_about_text" ? "qa" : "content")

export type ParsedVerdict =
  | { readonly _tag: "valid"; readonly verdict: Verdict }
  | { readonly _tag: "invalid"; readonly reason: string }

/** One item to judge: the system's output against the baseline's, for the same task. */
export const PairItem = Schema.Struct({
  id: Schema.String,
  bucket: Bucket,
  /** The task as the user saw it (the instruction or question). */
  instruction: Schema.String,
  /** The human reference (English). */
  reference: Schema.String,
  /** The foreign source text, shown to the judge when given. */
  source: Schema.optionalKey(Schema.String),
  /** Output of the system under test (e.g. LLINK). */
  system: Schema.String,
  /** Output of the baseline (e.g. the base model, the direct fine-tune). */
  baseline: Schema.String
})
export type PairItem = typeof PairItem.Type

export const JudgeOrder = Schema.Literals(["system_first", "baseline_first"])
export type JudgeOrder = typeof JudgeOrder.Type

export interface OrderJudgement {
  readonly order: JudgeOrder
  readonly verdict: ParsedVerdict
  /** From the system's side; null when the verdict is invalid. */
  readonly outcome: Outcome | null
  /** The judge's raw answer (absent for the offline judge). */
  readonly raw?: string | undefined
}

export interface PairOutcome {
  readonly id: string
  readonly bucket: Bucket
  readonly outcome: Outcome | "invalid"
  readonly orders: readonly [OrderJudgement, OrderJudgement]
  /** Both orders valid and different. */
  readonly flipped: boolean
  readonly invalidReasons: ReadonlyArray<string>
  readonly offline: boolean
  /** Offline judge only: sentence chrF of each output against the reference. */
  readonly chrf?: { readonly system: number; readonly baseline: number } | undefined
  /** Length of each output in characters (code points); absent when the outputs were not given. */
  readonly chars?: { readonly system: number; readonly baseline: number } | undefined
}

/** Length in code points (a surrogate pair is one character). */
export const charLength = (text: string): number => {
  let n = 0
  for (const _ of text) n++
  return n
}

// ---------------------------------------------------------------------------------------------------------------
// Prompt

/** The system prompt (MT-Bench "pair-v2 with reference", adapted to the reference being a human translation). */
export const JUDGE_SYSTEM_PROMPT =
  "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to " +
  "the user instruction displayed below. The instruction refers to a text in a foreign language. You will be " +
  "given a reference English translation of that text written by a human, assistant A's answer, and assistant " +
  "B's answer. Your job is to evaluate which assistant's answer better follows the instruction while staying " +
  "faithful to the content of the reference. Begin your evaluation by comparing both assistants' answers with " +
  "the reference. Identify any mistakes, such as wrong facts, numbers, units or names, missing or invented " +
  "content, or text that is not in English. Avoid any position biases and ensure that the order in which the " +
  "responses were presented does not influence your decision. Do not allow the length of the responses to " +
  "influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After " +
  "providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if " +
  "assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie."

/** The judge's messages for answers A and B. */
export const buildJudgeMessages = (input: {
  readonly instruction: string
  readonly reference: string
  readonly answerA: string
  readonly answerB: string
  readonly source?: string | undefined
}): Array<ChatMessage> => {
  const source = input.source === undefined ? "" : `[Foreign Text]\n${input.source}\n\n`
  const user =
    `[User Instruction]\n${input.instruction}\n\n` +
    source +
    `[The Start of Reference Translation]\n${input.reference}\n[The End of Reference Translation]\n\n` +
    `[The Start of Assistant A's Answer]\n${input.answerA}\n[The End of Assistant A's Answer]\n\n` +
    `[The Start of Assistant B's Answer]\n${input.answerB}\n[The End of Assistant B's Answer]`
  return [
    { role: "system", content: JUDGE_SYSTEM_PROMPT },
    { role: "user", content: user }
  ]
}

/** The messages of one order of a pair. */
export const pairMessages = (item: PairItem, order: JudgeOrder): Array<ChatMessage> =>
  buildJudgeMessages({
    instruction: item.instruction,
    reference: item.reference,
    source: item.source,
    answerA: order === "system_first" ? item.system : item.baseline,
    answerB: order === "system_first" ? item.baseline : item.system
  })

// ---------------------------------------------------------------------------------------------------------------
// Parsing and combining

const MARKER = /\[\[([ABC])\]\]/g

/** Strict: exactly one distinct marker among [[A]], [[B]], [[C]]. */
export const parseVerdict = (text: string): ParsedVerdict => {
  const found = new Set<Verdict>()
  for (const m of text.matchAll(MARKER)) found.add(m[1] as Verdict)
  if (found.size === 0) return { _tag: "invalid", reason: "no verdict marker [[A]], [[B]] or [[C]]" }
  if (found.size > 1) {
    return { _tag: "invalid", reason: `conflicting verdict markers: ${[...found].sort().map((v) => `[[${v}]]`).join(", ")}` }
  }
  const [verdict] = [...found]
  return { _tag: "valid", verdict }
}

/** A verdict seen from the system's side, given which order was shown. */
export const outcomeOf = (verdict: Verdict, order: JudgeOrder): Outcome => {
  if (verdict === "C") return "tie"
  const systemIsA = order === "system_first"
  return (verdict === "A") === systemIsA ? "win" : "loss"
}

const judgementOf = (order: JudgeOrder, verdict: ParsedVerdict, raw?: string): OrderJudgement => ({
  order,
  verdict,
  outcome: verdict._tag === "valid" ? outcomeOf(verdict.verdict, order) : null,
  raw
})

/** Combines the two orders of a pair (with the outputs' lengths when the item carries its outputs). */
export const combineOrders = (
  item: Pick<PairItem, "id" | "bucket"> & Partial<Pick<PairItem, "system" | "baseline">>,
  first: OrderJudgement,
  second: OrderJudgement,
  offline = false
): PairOutcome => {
  const invalidReasons = [first, second].flatMap((j) =>
    j.verdict._tag === "invalid" ? [`${j.order}: ${j.verdict.reason}`] : []
  )
  const chars = item.system === undefined || item.baseline === undefined
    ? {}
    : { chars: { system: charLength(item.system), baseline: charLength(item.baseline) } }
  const base = { id: item.id, bucket: item.bucket, orders: [first, second] as const, offline, invalidReasons, ...chars }
  if (first.outcome === null || second.outcome === null) return { ...base, outcome: "invalid", flipped: false }
  if (first.outcome === second.outcome) return { ...base, outcome: first.outcome, flipped: false }
  return { ...base, outcome: "tie", flipped: true }
}

/** Judges one pair in both orders with the LLM endpoint (temperature 0 unless given). */
export const judgePair = Effect.fn("Judge.judgePair")(function*(
  item: PairItem,
  options: { readonly maxTokens?: number; readonly temperature?: number } = {}
) {
  const endpoint = yield* LlmEndpoint
  const ask = (order: JudgeOrder) =>
    Effect.map(
      endpoint.chat({
        messages: pairMessages(item, order),
        temperature: options.temperature ?? 0,
        maxTokens: options.maxTokens ?? 1024
      }),
      (r) => judgementOf(order, parseVerdict(r.content), r.content)
    )
  const [first, second] = yield* Effect.all([ask("system_first"), ask("baseline_first")], { concurrency: 2 })
  return combineOrders(item, first, second)
})

/** The model-free judge: higher chrF against the reference wins; |Δ| < margin is a tie, and so is a pair whose two
 *  outputs both score below `floor` (two non-answers). Marked offline. */
export const offlineJudge = (item: PairItem, options: { readonly margin?: number; readonly floor?: number } = {}): PairOutcome => {
  const margin = options.margin ?? 1.0
  const floor = options.floor ?? 0
  const system = sentenceChrf(item.system, item.reference)
  const baseline = sentenceChrf(item.baseline, item.reference)
  const delta = system - baseline
  const outcome: Outcome = (system < floor && baseline < floor) || Math.abs(delta) < margin ? "tie" : delta > 0 ? "win" : "loss"
  // Express the decision as the verdict each order would carry, so offline and LLM outcomes share one shape.
  const verdictFor = (order: JudgeOrder): Verdict =>
    outcome === "tie" ? "C" : (outcome === "win") === (order === "system_first") ? "A" : "B"
  const first = judgementOf("system_first", { _tag: "valid", verdict: verdictFor("system_first") })
  const second = judgementOf("baseline_first", { _tag: "valid", verdict: verdictFor("baseline_first") })
  return { ...combineOrders(item, first, second, true), chrf: { system, baseline } }
}

// ---------------------------------------------------------------------------------------------------------------
// Aggregation

export { JudgeAggregate } from "../schemas/judge.ts"

const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b)

export interface AggregateOptions {
  /** Resamples and seed of the bootstrap intervals (default 1,000 resamples, seed 0). */
  readonly bootstrap?: BootstrapConfig
  /** Names this aggregate's bootstrap stream (e.g. "vsBase:content"), so each scope draws independently. */
  readonly label?: string
}

const OUTCOME_CODE = { win: 0, loss: 1, tie: 2, invalid: 3 } as const

/** Preference W/(W+L) and win rate (W + ½T)/(W+L+T) of a resample of outcome codes. */
const resampleStatistics = (codes: Uint8Array) => {
  const tally = (idx: Int32Array) => {
    let w = 0
    let l = 0
    let t = 0
    for (let i = 0; i < idx.length; i++) {
      const c = codes[idx[i]]
      if (c === 0) w++
      else if (c === 1) l++
      else if (c === 2) t++
    }
    return { w, l, t }
  }
  return {
    preference: (idx: Int32Array) => {
      const { w, l } = tally(idx)
      return ratio(w, w + l)
    },
    winRate: (idx: Int32Array) => {
      const { w, l, t } = tally(idx)
      return ratio(w + t / 2, w + l + t)
    }
  }
}

const mean = (xs: ReadonlyArray<number>): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length)

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z))

/**
 * AlpacaEval 2's length-controlled win rate over valid outcomes that carry lengths: σ(a) of `pairLogitFitter` (bradleyTerry.ts) on the
 * length difference standardised by its standard deviation over the sample, with a percentile bootstrap interval
 * (refitted per resample, the standardisation kept); null when nothing can be fitted.
 */
export const lengthControlledWinRate = (
  outcomes: ReadonlyArray<PairOutcome>,
  bootstrap: BootstrapConfig,
  label: string
): { winRate: number; ci: Interval | null; lengthCoef: number } | null => {
  const usable = outcomes.filter((o) => o.outcome !== "invalid" && o.chars !== undefined)
  if (usable.length < 2) return null
  const diff = usable.map((o) => o.chars!.system - o.chars!.baseline)
  const mu = diff.reduce((s, d) => s + d, 0) / diff.length
  const sd = Math.sqrt(diff.reduce((s, d) => s + (d - mu) * (d - mu), 0) / diff.length)
  const x = Float64Array.from(diff, (d) => (sd > 0 ? d / sd : 0))
  const y = Float64Array.from(usable, (o) => (o.outcome === "win" ? 1 : o.outcome === "tie" ? 0.5 : 0))
  const fitter = pairLogitFitter(x, y)
  const fit = fitter()
  if (fit === null) return null
  const ci = bootstrapIntervals(usable.length, {
    lc: (idx) => {
      const f = fitter(idx)
      return f === null ? null : sigmoid(f.a)
    }
  }, { ...bootstrap, label: `judge-lc:${label}` })
  return { winRate: sigmoid(fit.a), ci: ci.lc, lengthCoef: fit.b }
}

export const aggregate = (outcomes: ReadonlyArray<PairOutcome>, options: AggregateOptions = {}): JudgeAggregate => {
  const count = (o: PairOutcome["outcome"]) => outcomes.filter((x) => x.outcome === o).length
  const wins = count("win")
  const losses = count("loss")
  const ties = count("tie")
  const invalid = count("invalid")
  const valid = outcomes.length - invalid
  const bothValid = outcomes.filter((x) => x.orders.every((j) => j.verdict._tag === "valid")).length
  const flips = outcomes.filter((x) => x.flipped).length
  // Single-order verdicts: [[A]] is the answer shown first, [[B]] the one shown second.
  const verdicts = outcomes.flatMap((x) => x.orders.flatMap((j) => (j.verdict._tag === "valid" ? [j.verdict.verdict] : [])))
  const firstShownWins = verdicts.filter((v) => v === "A").length
  const secondShownWins = verdicts.filter((v) => v === "B").length
  const preference = ratio(wins, wins + losses)
  const winRate = ratio(wins + ties / 2, valid)
  const bootstrap = options.bootstrap ?? { resamples: 1000, seed: 0 }
  const codes = Uint8Array.from(outcomes, (x) => OUTCOME_CODE[x.outcome])
  const ci = bootstrapIntervals(outcomes.length, resampleStatistics(codes), { ...bootstrap, label: `judge:${options.label ?? ""}` })
  const sized = outcomes.flatMap((x) => (x.chars === undefined ? [] : [x.chars]))
  const systemChars = mean(sized.map((c) => c.system))
  const baselineChars = mean(sized.map((c) => c.baseline))
  return {
    n: outcomes.length,
    wins,
    losses,
    ties,
    invalid,
    winShare: ratio(wins, valid),
    lossShare: ratio(losses, valid),
    tieShare: ratio(ties, valid),
    preference: ratio(wins, wins + losses),
    bothValid,
    flips,
    flipRate: ratio(flips, bothValid),
    offline: outcomes.some((x) => x.offline),
    winRate,
    // An interval only where its point estimate exists (a resample may define what the sample does not).
    preferenceCI: preference === null ? null : ci.preference,
    winRateCI: winRate === null ? null : ci.winRate,
    positionConsistency: ratio(bothValid - flips, bothValid),
    verdicts: verdicts.length,
    firstShownWins,
    secondShownWins,
    firstShownWinShare: ratio(firstShownWins, verdicts.length),
    lengthControlled: lengthControlledWinRate(outcomes, bootstrap, options.label ?? ""),
    meanChars: {
      system: systemChars,
      baseline: baselineChars,
      ratio: systemChars === null || baselineChars === null || baselineChars === 0 ? null : systemChars / baselineChars
    }
  }
}

/** Aggregates per bucket (only buckets that occur). */
export const aggregateByBucket = (
  outcomes: ReadonlyArray<PairOutcome>,
  options: AggregateOptions = {}
): Partial<Record<Bucket, JudgeAggregate>> => {
  const result: Partial<Record<Bucket, JudgeAggregate>> = {}
  for (const bucket of Bucket.literals) {
    const inBucket = outcomes.filter((o) => o.bucket === bucket)
    if (inBucket.length > 0) result[bucket] = aggregate(inBucket, { ...options, label: `${options.label ?? ""}:${bucket}` })
  }
  return result
}
