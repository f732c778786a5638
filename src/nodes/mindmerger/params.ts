/**
 * Config section `mindmerger`: the MindMerger peer baseline (Huang et al., NeurIPS 2024). Defaults from the authors'
 * code (CONE-MT/MindMerger `run_training.py`, `scripts/training_math.sh`, `deepspeed_config.py`): learning rate
 * 2e-5, AdamW betas (0.8, 0.999), weight decay 3e-7, gradient clip 1.0, batch 128, 3 epochs per phase; phase 1
 * ("mapping") on translation pairs (here the run's parallel `train` pairs, foreign → English), phase 2
 * ("augmentation") on the task data (here the Stage B instruction data). LLM and encoder frozen.
 */
import { Schema } from "effect"
import { Beta, Count, dflt, Fraction, NonNegative, Size } from "../../schemas/fields.ts"
import { bridgeTrainFields, peerRunFields } from "../../train/sftParams.ts"

export const MindMergerConfig = Schema.Struct({
  ...bridgeTrainFields,
  /** Peak learning rate of the MLP and the boundary vector (code: 2e-5), both phases. */
  lr: dflt(NonNegative, 2e-5),
  weightDecay: dflt(NonNegative, 3e-7),
  beta1: dflt(Beta, 0.8),
  /** The code's DeepSpeed config has no scheduler: no warmup (the shared linear decay still applies). */
  warmupFraction: dflt(Fraction, 0),
  epochs: dflt(Size, 3),
  microBatch: dflt(Size, 8),
  accumulation: dflt(Size, 16),
  /** Phase 1: at most this many `train` pairs (0 = all; code: 100,000), this many epochs and steps (0 = all). */
  mappingRows: dflt(Count, 0),
  mappingEpochs: dflt(Size, 3),
  mappingMaxSteps: dflt(Count, 0)
})

/** The section plus what the stage reads from other sections (`peerRunFields`). */
export const MindMergerParams = Schema.Struct({ ...MindMergerConfig.fields, ...peerRunFields })
export type MindMergerParams = typeof MindMergerParams.Type
