/** Config section `retrieval` (Table 1's n), plus `split.evalN`, its default. */
import { Schema } from "effect"
import { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { Count, dflt, Size } from "../../schemas/fields.ts"

export const RetrievalConfig = Schema.Struct({
  /** Pairs evaluated: the first n holdout rows; 0 = `split.evalN` (paper: 1,024). */
  n: dflt(Count, 0),
  /** Candidate-pool sizes of the R@1 curve (the whole holdout is always added; sizes above it are left out). */
  pools: dflt(Schema.Array(Size), [100, 1024]),
  /** The 95% bootstrap intervals of R@1 and MRR over queries (also used by `retrievalFull`): resamples and seed. */
  bootstrap: dflt(BootstrapConfig, {})
})

export const RetrievalParams = Schema.Struct({ ...RetrievalConfig.fields, evalN: Count })
export type RetrievalParams = typeof RetrievalParams.Type
