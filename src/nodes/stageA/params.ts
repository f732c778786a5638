/**
 * Config section `stageA`: the contrastive projector's training (paper §4.1). Defaults are the authors' code where
 * the paper is silent. The stage also selects `split.evalN` (the size of its dev retrieval).
 */
import { Schema } from "effect"
import { Beta, Count, crossCheck, dflt, Dropout, NonNegative, Positive, Seed, Size } from "../../schemas/fields.ts"

export const HardNegativeRule = Schema.Literals(["shared-mean", "per-row"])
export const DirReduction = Schema.Literals(["mse", "sum"])

export const StageAConfig = Schema.Struct({
  /** Optimizer steps (code: 20,000). */
  steps: dflt(Size, 20_000),
  /** Ablation: "untrained" writes the seeded initial projector without a training step, so Stage B (and everything
   *  after it) runs on a random projector instead of Stage A's. */
  ablation: dflt(Schema.Literals(["none", "untrained"]), "none"),
  /** Pairs per micro-batch (InfoNCE needs at least one in-batch negative). */
  microBatch: dflt(Schema.Int.check(Schema.isGreaterThanOrEqualTo(2, { message: "Expected a whole number ≥ 2" })), 8),
  /** Micro-batches per optimizer step (gradient accumulation; code: 16). */
  accumulation: dflt(Size, 16),
  warmupSteps: dflt(Count, 3_000),
  lr: dflt(Positive, 1e-3),
  /** The cosine schedule's floor (code: 1e-5). */
  minLr: dflt(NonNegative, 1e-5),
  beta1: dflt(Beta, 0.9),
  beta2: dflt(Beta, 0.98),
  eps: dflt(Positive, 1e-8),
  weightDecay: dflt(NonNegative, 0.05),
  /** Global L2 gradient-norm clip. */
  gradClip: dflt(Positive, 1.0),
  /** Temperature, annealed linearly over `steps`. */
  tauStart: dflt(Positive, 0.17),
  tauEnd: dflt(Positive, 0.08),
  /** FIFO queue of normalised fp16 teacher vectors for hard negatives. */
  queueSize: dflt(Size, 32_768),
  hardNegatives: dflt(Count, 256),
  /** "shared-mean" (code: one pool per micro-batch by mean cosine) or "per-row". */
  hardNegativeRule: dflt(HardNegativeRule, "shared-mean"),
  /** Never use a queued copy of a row's own teacher (cosine ≥ 0.9999) as its negative (code: off). */
  excludePositives: dflt(Schema.Boolean, false),
  dropout: dflt(Dropout, 0.1),
  /** Projector hidden width; 0 = 4 × the encoder width (paper: 3072). */
  dHidden: dflt(Count, 0),
  lambdaDir: dflt(NonNegative, 0.05),
  lambdaNorm: dflt(NonNegative, 0.02),
  /** L_dir: "mse" (code, mean over dims) or "sum" (paper's ‖p − h‖², summed over dims). */
  dirReduction: dflt(DirReduction, "mse"),
  seed: dflt(Seed, 17),
  /** Save a resumable checkpoint every this many steps (0 = never). */
  checkpointEvery: dflt(Count, 500),
  /** Dev retrieval (first `split.evalN` holdout pairs) every this many steps and at the end (0 = only at the end). */
  evalEvery: dflt(Count, 500)
}).check(
  crossCheck("hardNegatives", (c) =>
    c.hardNegatives <= c.queueSize ? undefined : `must be ≤ stageA.queueSize (${c.queueSize}), got ${c.hardNegatives}`)
)

export const StageAParams = Schema.Struct({ ...StageAConfig.fields, evalN: Count })
export type StageAParams = typeof StageAParams.Type
