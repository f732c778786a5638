/**
 * The `judge` document, written by `judge` and read by the report: win/loss/tie and preference per bucket and
 * comparison (paper Table 2), and numeric fidelity per system.
 */
import { Schema } from "effect"
import { BootstrapSettings, Interval } from "./bootstrap.ts"

export const JudgeAggregate = Schema.Struct({
  n: Schema.Number,
  wins: Schema.Number,
  losses: Schema.Number,
  ties: Schema.Number,
  invalid: Schema.Number,
  /** Shares over the valid pairs (n − invalid); null when there is none. */
  winShare: Schema.NullOr(Schema.Number),
  lossShare: Schema.NullOr(Schema.Number),
  tieShare: Schema.NullOr(Schema.Number),
  /** wins / (wins + losses); null when both are 0. */
  preference: Schema.NullOr(Schema.Number),
  /** Pairs with both orders valid, and how many of them changed verdict when the order swapped. */
  bothValid: Schema.Number,
  flips: Schema.Number,
  flipRate: Schema.NullOr(Schema.Number),
  /** Any outcome came from the offline judge. */
  offline: Schema.Boolean,
  /** (wins + ½·ties) / (n − invalid): ties count half (AlpacaEval, Arena-Hard); null when no pair is valid. */
  winRate: Schema.NullOr(Schema.Number),
  /** 95% percentile-bootstrap intervals over prompts (the document's `bootstrap`); null where the point is null. */
  preferenceCI: Schema.NullOr(Interval),
  winRateCI: Schema.NullOr(Interval),
  /** Share of the pairs with both orders valid whose two orders agree: (bothValid − flips) / bothValid. */
  positionConsistency: Schema.NullOr(Schema.Number),
  /** Valid single-order verdicts (two per pair at most), and how many picked the answer shown first ([[A]]) and
   *  the one shown second ([[B]]); a judge without position bias has firstShownWins ≈ secondShownWins. */
  verdicts: Schema.Number,
  firstShownWins: Schema.Number,
  secondShownWins: Schema.Number,
  /** firstShownWins / verdicts. */
  firstShownWinShare: Schema.NullOr(Schema.Number),
  /** The length-controlled win rate (AlpacaEval 2): a logistic model of the outcome (win 1, tie ½, loss 0) on the
   *  standardised length difference (system − baseline characters), read at a zero difference, with its 95%
   *  bootstrap interval over prompts and the fitted length coefficient; null without valid pairs with lengths. */
  lengthControlled: Schema.NullOr(Schema.Struct({ winRate: Schema.Number, ci: Schema.NullOr(Interval), lengthCoef: Schema.Number })),
  /** Mean output length in characters (code points) of the system (LLINK) and of the baseline, and system/baseline. */
  meanChars: Schema.Struct({
    system: Schema.NullOr(Schema.Number),
    baseline: Schema.NullOr(Schema.Number),
    ratio: Schema.NullOr(Schema.Number)
  })
})
export type JudgeAggregate = typeof JudgeAggregate.Type

/** Numeric fidelity of one system over a set of examples (see src/metrics/numeric.ts). */
export const NumericFidelityAggregate = Schema.Struct({
  examples: Schema.Number,
  /** Examples whose reference has at least one number. */
  applicable: Schema.Number,
  mentions: Schema.Number,
  /** Σ matched / Σ mentions (null when no mention). */
  micro: Schema.NullOr(Schema.Number),
  /** Mean of per-example scores over applicable examples (null when none). */
  macro: Schema.NullOr(Schema.Number),
  valueRecall: Schema.NullOr(Schema.Number),
  unitRecall: Schema.NullOr(Schema.Number),
  /** Applicable examples with every mention reproduced. */
  perfect: Schema.Number
})
export type NumericFidelityAggregate = typeof NumericFidelityAggregate.Type

/**
 * The judge's comparisons. LLINK's against each baseline are named `vs<Baseline>` (paper Table 2); with
 * `judge.comparisons: "all"` the baselines are also judged against each other, named `<a>~<b>`. A `judge.pairs` row's
 * outcome is from the first system's side (LLINK's in `vs…`).
 */
export const LLINK_COMPARISONS = { vsBase: "base", vsFinetune: "finetune", vsLangbridge: "langbridge", vsMindmerger: "mindmerger" } as const
export type LlinkComparison = keyof typeof LLINK_COMPARISONS
/** The systems judged besides LLINK, in the order their pairwise comparisons are made. */
export const JUDGED_BASELINES = ["base", "finetune", "langbridge", "mindmerger"] as const
export type JudgedBaseline = (typeof JUDGED_BASELINES)[number]

export const peerComparison = (a: JudgedBaseline, b: JudgedBaseline): string => `${a}~${b}`

/** The two systems of a comparison, the first being the one whose outcome is recorded; undefined if unknown. */
export const systemsOf = (comparison: string): readonly [string, string] | undefined => {
  if (comparison in LLINK_COMPARISONS) return ["llink", LLINK_COMPARISONS[comparison as LlinkComparison]]
  const [a, b, ...rest] = comparison.split("~")
  const known = (s: string | undefined): s is JudgedBaseline => (JUDGED_BASELINES as ReadonlyArray<string | undefined>).includes(s)
  return rest.length === 0 && known(a) && known(b) && a !== b ? [a, b] : undefined
}

/** LLINK against each baseline; the peer comparisons only when the peer is on (`baselines`). */
export const Comparisons = Schema.Struct({
  vsBase: JudgeAggregate,
  vsFinetune: JudgeAggregate,
  vsLangbridge: Schema.optionalKey(JudgeAggregate),
  vsMindmerger: Schema.optionalKey(JudgeAggregate)
})
export const NumericBySystem = Schema.Struct({
  llink: NumericFidelityAggregate,
  base: NumericFidelityAggregate,
  finetune: NumericFidelityAggregate,
  langbridge: Schema.optionalKey(NumericFidelityAggregate),
  mindmerger: Schema.optionalKey(NumericFidelityAggregate)
})

export const JudgeDoc = Schema.Struct({
  mode: Schema.Literals(["offline", "endpoint"]),
  offline: Schema.Boolean,
  /** The judge: the endpoint model, or "chrF (offline)". */
  judge: Schema.String,
  /** The offline judge's tie margin (chrF points); null for an LLM judge. */
  margin: Schema.NullOr(Schema.Number),
  /** The offline judge's floor: a pair whose two outputs both score below it (chrF) is a tie; null for an LLM judge. */
  floor: Schema.NullOr(Schema.Number),
  examples: Schema.Number,
  /** How the aggregates' confidence intervals were made. */
  bootstrap: BootstrapSettings,
  /** Only the buckets that occur. */
  byBucket: Schema.Struct({ content: Schema.optionalKey(Comparisons), qa: Schema.optionalKey(Comparisons) }),
  overall: Comparisons,
  numericFidelity: NumericBySystem,
  numericFidelityByBucket: Schema.Struct({ content: Schema.optionalKey(NumericBySystem), qa: Schema.optionalKey(NumericBySystem) }),
  /** The endpoint's counters for this stage's calls (requests, cache hits, retries, tokens); null offline. */
  endpoint: Schema.NullOr(Schema.Record(Schema.String, Schema.Unknown))
})
export type JudgeDoc = typeof JudgeDoc.Type
