/** Config section `split`: the seeded train/holdout split and the eval slice. */
import { Schema } from "effect"
import { Count, crossCheck, dflt, Seed } from "../../schemas/fields.ts"

export const SplitConfig = Schema.Struct({
  train: dflt(Count, 100_000),
  holdout: dflt(Count, 40_000),
  seed: dflt(Seed, 17),
  /** Where the holdout comes from: "anywhere" (a seeded sample of the whole clean table, the paper's split) or "end"
   *  (the last `holdout` pairs of the clean table, for a corpus that keeps its evaluation block apart, as the
   *  miniature's generator does; train is then a seeded sample of the pairs before it). */
  holdoutFrom: dflt(Schema.Literals(["anywhere", "end"]), "anywhere"),
  /** The eval slice: the first evalN holdout pairs (retrieval, Stage B evaluation data). */
  evalN: dflt(Count, 1024)
}).check(
  crossCheck("evalN", (c) =>
    c.evalN <= c.holdout
      ? undefined
      : `must be ≤ split.holdout (${c.holdout}): the eval slice is taken from the holdout pairs, got ${c.evalN}`)
)

export type SplitParams = typeof SplitConfig.Type
