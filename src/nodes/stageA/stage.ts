/**
 * `stageA`: trains the projector g: z_F → h_E space (Linear → GELU → Dropout → Linear → LayerNorm, sizes from the
 * matrices, hidden 4 × d_in) with the Stage A objective — symmetric InfoNCE (in-batch + hard negatives from an fp16
 * FIFO queue of teacher vectors) + λ_dir·L_dir + λ_norm·L_norm — by AdamW with warmup + cosine, τ annealed, gradient
 * accumulation and clipping. Only the projector trains. Resumable from checkpoints in the scratch folder, exactly.
 * Outputs the projector folder and a per-step metrics table with dev retrieval on the first `split.evalN` holdout
 * pairs. Details: `src/nodes/stageA/work.ts`.
 */
import { Effect, Schema } from "effect"
import { defineStage } from "../../pipeline/stage.ts"
import { type LlinkConfig, StageAConfig } from "../../schemas/config.ts"
import { importWork } from "../../pipeline/lazy.ts"

const STAGE = "stageA"

/** The `stageA` section plus `split.evalN` (the dev slice). */
export const StageAParams = Schema.Struct({ ...StageAConfig.fields, evalN: Schema.Number })
type StageAParams = typeof StageAParams.Type

export const stageA = defineStage<StageAParams>({
  name: STAGE,
  version: "1",
  description: "Stage A: contrastive projector z_F → h_E (only the projector trains)",
  inputs: ["zF.train", "hE.train", "zF.holdout", "hE.holdout"],
  outputs: [
    { name: "projector", kind: "dir", file: "projector", description: "projector.safetensors + config.json (sizes)" },
    {
      name: "stageA.metrics",
      kind: "parquet",
      file: "stageA.metrics.parquet",
      description: "per step: loss terms, τ, lr, grad norm; dev R@1/MRR on evaluation steps"
    }
  ],
  params: StageAParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { ...c.stageA, evalN: c.split.evalN }
  },
  run: Effect.fn("stageA.run")(function*(ctx) {
    const work = yield* importWork(STAGE, () => import("./work.ts"))
    return yield* work.runStageA(ctx)
  })
})
