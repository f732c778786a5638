/**
 * The pretraining document: what the pretraining of the tiny checkpoints did. `tinyEncoder` and `tinyDecoder` each
 * write one with their own part (the other null), and `models` joins them into `models.pretrain`, which the report
 * shows. `null` parts were not pretrained (a snapshot folder, the "test" size, or 0 encoder steps).
 */
import { Schema } from "effect"

export const PRETRAIN_FORMAT = "llink-pretrain"

export const PretrainSample = Schema.Struct({
  /** What the model was given (the prompt's text, or the masked sentence). */
  prompt: Schema.String,
  /** What it produced, greedily. */
  output: Schema.String
})
export type PretrainSample = typeof PretrainSample.Type

export const PretrainPart = Schema.Struct({
  steps: Schema.Number,
  /** Training sequences (decoder: sentences and instruction examples; encoder: sentences of both languages). */
  examples: Schema.Number,
  /** Decoder: the ids its data uses (the head's non-zero rows); encoder: its vocabulary. */
  vocabulary: Schema.Number,
  /** Mean loss of the first and of the last 10% of the steps (null: 0 steps). */
  firstLoss: Schema.NullOr(Schema.Number),
  finalLoss: Schema.NullOr(Schema.Number),
  /** The loss curve, averaged over windows of `window` steps (x: the window's last step). */
  window: Schema.Number,
  curve: Schema.Array(Schema.Struct({ step: Schema.Number, loss: Schema.Number })),
  samples: Schema.Array(PretrainSample)
})
export type PretrainPart = typeof PretrainPart.Type

export const PretrainDoc = Schema.Struct({
  format: Schema.Literal(PRETRAIN_FORMAT),
  version: Schema.Literal(1),
  decoder: Schema.NullOr(PretrainPart),
  encoder: Schema.NullOr(PretrainPart)
})
export type PretrainDoc = typeof PretrainDoc.Type
