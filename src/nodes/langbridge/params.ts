/**
 * Config section `langbridge`: the LangBridge peer baseline (Yoon et al., ACL 2024). Defaults from the authors'
 * code (kaistAI/LangBridge `scripts/train_lb/*.sh`): alignment learning rate 6e-4, no weight decay, no warmup,
 * 1 epoch, batch 128 (4 × 8 × 4 GPUs here as 4 × 32), frozen LM; the encoder is frozen too (their setting for an
 * instruction-tuned LM, and the issue's: the run's XLM-R is shared by every method). Plus the run-wide values the
 * stage depends on: whether `baselines` lists it, and the encoder cuts of `encode`.
 */
import { Schema } from "effect"
import { Beta, dflt, Fraction, NonNegative, Size } from "../../schemas/fields.ts"
import { bridgeTrainFields, peerRunFields } from "../../train/sftParams.ts"

export const LangBridgeConfig = Schema.Struct({
  ...bridgeTrainFields,
  /** Peak learning rate of the linear map and the end vector (code: `learning_rate_alignment` 6e-4). */
  lr: dflt(NonNegative, 6e-4),
  /** Code: `w_decay_alignment` 0. */
  weightDecay: dflt(NonNegative, 0),
  beta1: dflt(Beta, 0.9),
  /** Code: `warmup_steps` 0. */
  warmupFraction: dflt(Fraction, 0),
  /** Code: `num_train_epochs` 1. */
  epochs: dflt(Size, 1),
  microBatch: dflt(Size, 4),
  accumulation: dflt(Size, 32)
})

/** The section plus what the stage reads from other sections (`peerRunFields`). */
export const LangBridgeParams = Schema.Struct({ ...LangBridgeConfig.fields, ...peerRunFields })
export type LangBridgeParams = typeof LangBridgeParams.Type
