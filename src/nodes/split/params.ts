/** Config section `split`: the seeded train/holdout split and the eval slice. */
import { Schema } from "effect"
import { Count, crossCheck, dflt, Seed } from "../../schemas/fields.ts"

export const SplitConfig = Schema.Struct({
  train: dflt(Count, 100_000),
  holdout: dflt(Count, 40_000),
  seed: dflt(Seed, 17),
  /** The eval slice: the first evalN holdout pairs (retrieval, Stage B evaluation data). */
  evalN: dflt(Count, 1024)
}).check(
  crossCheck("evalN", (c) =>
    c.evalN <= c.holdout
      ? undefined
      : `must be ≤ split.holdout (${c.holdout}): the eval slice is taken from the holdout pairs, got ${c.evalN}`)
)

export type SplitParams = typeof SplitConfig.Type
