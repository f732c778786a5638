/** Config section `retrieval` (Table 1's n), plus `split.evalN`, its default. */
import { Schema } from "effect"
import { Count, dflt } from "../../schemas/fields.ts"

export const RetrievalConfig = Schema.Struct({
  /** Pairs evaluated: the first n holdout rows; 0 = `split.evalN` (paper: 1,024). */
  n: dflt(Count, 0)
})

export const RetrievalParams = Schema.Struct({ ...RetrievalConfig.fields, evalN: Count })
export type RetrievalParams = typeof RetrievalParams.Type
