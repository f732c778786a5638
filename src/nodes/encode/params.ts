/** Config section `encode`: batching and the cuts applied to the foreign sentence before XLM-R. */
import { Schema } from "effect"
import { dflt, Size } from "../../schemas/fields.ts"

export const EncodeConfig = Schema.Struct({
  /** Sentences per encoder forward pass (and per resumable scratch batch). */
  batchSize: dflt(Size, 32),
  /** The foreign sentence is cut to this many code points first (paper: 256)… */
  maxChars: dflt(Size, 256),
  /** …and its token ids (with `<s>` … `</s>`) to this many (code: 256; at least one token between them). */
  maxTokens: dflt(Schema.Int.check(Schema.isGreaterThanOrEqualTo(3, { message: "Expected a whole number ≥ 3" })), 256)
})

export type EncodeParams = typeof EncodeConfig.Type
