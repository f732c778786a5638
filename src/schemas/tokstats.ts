/** `tokstats`, written by `tokstats`: tokenization inflation of each side and the tokens K slots save. */
import { Schema } from "effect"

const SideDoc = Schema.Struct({
  tokens: Schema.Number,
  chars: Schema.Number,
  tokensPerChar: Schema.Number,
  charsPerSentence: Schema.Number,
  tokensPerSentence: Schema.Struct({ mean: Schema.Number, p50: Schema.Number, p95: Schema.Number, max: Schema.Number })
})

export const TokstatsDoc = Schema.Struct({
  pairs: Schema.Number,
  tokenizer: Schema.String,
  /** Counts exclude BOS and other special tokens. */
  countsSpecialTokens: Schema.Boolean,
  english: SideDoc,
  foreign: SideDoc,
  foreignToEnglishTokenRatio: Schema.Struct({ ofTotals: Schema.Number, meanPerPair: Schema.Number, medianPerPair: Schema.Number }),
  slots: Schema.Struct({
    /** `models.slots`. */
    K: Schema.Number,
    /** Decoder tokens saved per sentence by K slots instead of the foreign text: foreign tokens − K. */
    savedPerSentence: Schema.Struct({ mean: Schema.Number, total: Schema.Number }),
    shareLongerThanK: Schema.Number
  })
})
export type TokstatsDoc = typeof TokstatsDoc.Type
