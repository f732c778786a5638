/**
 * `stageB`: slot injection with LoRA (paper §4.2). The frozen Stage A projector maps each foreign sentence vector
 * z_F to v; a trained slot module (ForeignScale → gated adapter → expander) turns v into K soft tokens that overwrite
 * the input embeddings at `<f0>`…`<f{K−1}>` of the instruction prompt; LoRA adapters on the decoder and the slot
 * module train jointly on the synthesized instruction data with L_SFT (target tokens only) + the usage contrast
 * against L_zero (slots removed, every third step) + cosine/InfoNCE alignment of the mean slot to h_E. Resumable
 * from checkpoints in the scratch folder, exactly. Details: `src/nodes/stageB/work.ts`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { STAGEB_CONFIG, StageBDoc } from "../../schemas/stageB.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import type { LlinkConfig } from "../config.ts"
import { STAGEB_METRICS_COLUMNS } from "./metrics.ts"
import { StageBParams } from "./params.ts"

export const stageB = defineStage<StageBParams, TensorBackend>({
  name: "stageB",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 87,
  description: "Stage B: K-slot injection of the projected foreign vector, LoRA + slot module with usage contrast",
  inputs: ["models", "projector", "zF.train", "hE.train", "sft.train", "sft.val"],
  outputs: [
    {
      name: "stageB",
      kind: "dir",
      file: "stageB",
      document: { file: STAGEB_CONFIG, schema: StageBDoc },
      description: "slots.safetensors (scale, adapter, expander), adapter/ (LoRA, PEFT layout), config.json"
    },
    {
      name: "stageB.metrics",
      kind: "parquet",
      file: "stageB.metrics.parquet",
      columns: STAGEB_METRICS_COLUMNS,
      description: "per step: loss, L_SFT, L_zero and gap (contrast steps), contrast, cos, nce, lrs, grad norm, gate, scale; val L_SFT/L_zero"
    }
  ],
  params: StageBParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { ...c.stageB, slots: c.models.slots }
  },
  run: (ctx) => Effect.flatMap(importWork("stageB", () => import("./work.ts")), (work) => work.runStageB(ctx))
})
