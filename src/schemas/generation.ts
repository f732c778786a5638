/**
 * Shapes of results.json's `generation` section (computed by src/metrics/generation.ts from `generations`) and of
 * its `claims` section ("What this run shows", src/nodes/report/claims.ts).
 */
import { Schema } from "effect"
import { Interval } from "./bootstrap.ts"

export const GenerationSystemQuality = Schema.Struct({
  n: Schema.Number,
  /** Mean sentence chrF (0–100) against the target answer over all examples, and its 95% bootstrap interval. */
  chrf: Schema.Number,
  chrfCI: Schema.NullOr(Interval),
  /** Mean sentence chrF per task type. */
  chrfByTask: Schema.Record(Schema.String, Schema.Number),
  /** Numbers in the targets, how many of them the outputs reproduce, the rate and its interval (null: none). */
  numbers: Schema.Number,
  numbersMatched: Schema.Number,
  numberMatchRate: Schema.NullOr(Schema.Number),
  numberMatchCI: Schema.NullOr(Interval),
  /** Mean output length in characters (code points). */
  meanChars: Schema.Number
})
export type GenerationSystemQuality = typeof GenerationSystemQuality.Type

/** System name (llink, base, finetune, langbridge, mindmerger) → its quality. */
export const GenerationQuality = Schema.Record(Schema.String, GenerationSystemQuality)
export type GenerationQuality = typeof GenerationQuality.Type

/** One of the paper's qualitative claims, checked against this run's own numbers. */
export const Claim = Schema.Struct({
  claim: Schema.String,
  /** "reproduced": the run's interval supports it; "not reproduced": the interval goes against it; "inconclusive":
   *  the interval allows both; "not computed": the numbers are missing from this run. */
  verdict: Schema.Literals(["reproduced", "not reproduced", "inconclusive", "not computed"]),
  evidence: Schema.String
})
export type Claim = typeof Claim.Type
