/**
 * `tinyDecoder` has no config section of its own: it reads the decoder's part of `models` (whether `models.decoder`
 * is "tiny", `tinySize`, `seed`, and the decoder fields of `models.pretrain`). Only these enter its key, so an
 * encoder setting does not make it run again.
 */
import { Schema } from "effect"
import { Count, Fraction, Positive, Seed, Size, TinySize } from "../../schemas/fields.ts"

export const TinyDecoderParams = Schema.Struct({
  /** `models.decoder` is "tiny" (else a snapshot folder, and this stage writes nothing). */
  tiny: Schema.Boolean,
  size: TinySize,
  seed: Seed,
  /** `models.pretrain.decoderSteps`, `decoderBatch`, `decoderMicroBatches`, `decoderLr`, `warmupSteps`,
   *  `weightDecay`, `numberDrill`. */
  steps: Count,
  batch: Size,
  microBatches: Size,
  lr: Positive,
  warmupSteps: Count,
  weightDecay: Fraction,
  numberDrill: Schema.Boolean
})
export type TinyDecoderParams = typeof TinyDecoderParams.Type
