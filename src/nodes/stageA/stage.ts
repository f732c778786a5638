/**
 * `stageA`: trains the projector g: z_F → h_E space (Linear → GELU → Dropout → Linear → LayerNorm, sizes from the
 * matrices, hidden 4 × d_in) with the Stage A objective — symmetric InfoNCE (in-batch + hard negatives from an fp16
 * FIFO queue of teacher vectors) + λ_dir·L_dir + λ_norm·L_norm — by AdamW with warmup + cosine, τ annealed, gradient
 * accumulation and clipping. Only the projector trains. Resumable from checkpoints in the scratch folder, exactly.
 * Outputs the projector folder and a per-step metrics table with dev retrieval on the first `split.evalN` holdout
 * pairs. Details: `src/nodes/stageA/work.ts`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { PROJECTOR_CONFIG, ProjectorConfigFile } from "../../schemas/projector.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import type { LlinkConfig } from "../config.ts"
import { METRICS_COLUMNS } from "./metrics.ts"
import { StageAParams } from "./params.ts"

export const stageA = defineStage<StageAParams, TensorBackend>({
  name: "stageA",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 55,
  description: "Stage A: contrastive projector z_F → h_E (only the projector trains)",
  inputs: ["zF.train", "hE.train", "zF.holdout", "hE.holdout"],
  outputs: [
    {
      name: "projector",
      kind: "dir",
      file: "projector",
      document: { file: PROJECTOR_CONFIG, schema: ProjectorConfigFile },
      description: "projector.safetensors + config.json (sizes)"
    },
    {
      name: "stageA.metrics",
      kind: "parquet",
      file: "stageA.metrics.parquet",
      columns: METRICS_COLUMNS,
      description: "per step: loss terms, τ, lr, grad norm; dev R@1/MRR on evaluation steps"
    }
  ],
  params: StageAParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { ...c.stageA, evalN: c.split.evalN }
  },
  run: (ctx) => Effect.flatMap(importWork("stageA", () => import("./work.ts")), (work) => work.runStageA(ctx))
})
