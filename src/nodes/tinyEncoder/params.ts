/**
 * `tinyEncoder` has no config section of its own: it reads the encoder's part of `models` (whether `models.encoder`
 * is "tiny", `tinySize`, `seed`, `tinyTokenizerPairs`, and the encoder fields of `models.pretrain`). Only these enter
 * its key, so a decoder setting does not make it run again.
 */
import { Schema } from "effect"
import { Count, Fraction, Positive, Seed, Size, TinySize } from "../../schemas/fields.ts"

export const TinyEncoderParams = Schema.Struct({
  /** `models.encoder` is "tiny" (else a snapshot folder, and this stage writes nothing). */
  tiny: Schema.Boolean,
  size: TinySize,
  seed: Seed,
  /** `models.tinyTokenizerPairs`: the Unigram tokenizer is trained on the first this-many training pairs. */
  tokenizerPairs: Size,
  /** `models.pretrain.encoderSteps`, `encoderBatch`, `encoderLr`, `maskProb`, `warmupSteps`, `weightDecay`. */
  steps: Count,
  batch: Size,
  lr: Positive,
  maskProb: Fraction,
  warmupSteps: Count,
  weightDecay: Fraction
})
export type TinyEncoderParams = typeof TinyEncoderParams.Type
