/**
 * `finetune`: the direct fine-tune baseline (paper §5.2): LoRA (rank 16, alpha 16, the same configuration as Stage
 * B's) on the same instruction data, with the foreign text tokenized normally inside the prompt instead of slots.
 * Resumable from checkpoints in the scratch folder, exactly. Details: `src/nodes/finetune/work.ts`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { FINETUNE_CONFIG, FinetuneDoc } from "../../schemas/stageB.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import type { LlinkConfig } from "../config.ts"
import { FINETUNE_METRICS_COLUMNS } from "./metrics.ts"
import { FinetuneConfig, type FinetuneParams } from "./params.ts"

export const finetune = defineStage<FinetuneParams, TensorBackend>({
  name: "finetune",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 130,
  description: "Direct fine-tune baseline: LoRA on the instruction data with the foreign text tokenized in the prompt",
  inputs: ["models", "sft.train", "sft.val"],
  outputs: [
    {
      name: "finetune",
      kind: "dir",
      file: "finetune",
      document: { file: FINETUNE_CONFIG, schema: FinetuneDoc },
      description: "LoRA adapter (adapter_model.safetensors + adapter_config.json, PEFT layout) + llink-finetune.json"
    },
    {
      name: "finetune.metrics",
      kind: "parquet",
      file: "finetune.metrics.parquet",
      columns: FINETUNE_METRICS_COLUMNS,
      description: "per step: loss, lr, grad norm; val loss on validation steps"
    }
  ],
  params: FinetuneConfig,
  selectParams: (config) => (config as LlinkConfig).finetune,
  run: (ctx) => Effect.flatMap(importWork("finetune", () => import("./work.ts")), (work) => work.runFinetune(ctx))
})
