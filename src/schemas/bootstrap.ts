/**
 * Bootstrap confidence intervals: the config section (`judge.bootstrap`, `retrieval.bootstrap`) and the shapes the
 * judge and retrieval documents carry (src/metrics/bootstrap.ts computes them).
 */
import { Schema } from "effect"
import { dflt, Seed, Size } from "./fields.ts"

/** A confidence interval [lo, hi]. */
export const Interval = Schema.Struct({ lo: Schema.Number, hi: Schema.Number })
export type Interval = typeof Interval.Type

const AtLeast1000 = Size.check(Schema.isGreaterThanOrEqualTo(1000, { message: "Expected a whole number ≥ 1000 (bootstrap resamples)" }))

/** Config of a stage's bootstrap: how many resamples, and the seed of their draws (runs repeat exactly). */
export const BootstrapConfig = Schema.Struct({
  resamples: dflt(AtLeast1000, 1000),
  seed: dflt(Seed, 0)
})
export type BootstrapConfig = typeof BootstrapConfig.Type

/** How a document's intervals were made (recorded beside them). */
export const BootstrapSettings = Schema.Struct({
  method: Schema.Literal("percentile"),
  /** Coverage of every interval (0.95). */
  level: Schema.Number,
  resamples: Schema.Number,
  seed: Schema.Number,
  /** What was resampled with replacement: "prompt" (judged pairs) or "query" (retrieval queries). */
  unit: Schema.Literals(["prompt", "query"])
})
export type BootstrapSettings = typeof BootstrapSettings.Type
