/**
 * `finetune`: the direct fine-tune baseline (paper §5.2): LoRA (rank 16, alpha 16, the same configuration as Stage
 * B's) on the same instruction data, with the foreign text tokenized normally inside the prompt instead of slots.
 * Resumable from checkpoints in the scratch folder, exactly. Details: `src/nodes/finetune/work.ts`.
 */
import { Effect } from "effect"
import { defineStage } from "../../pipeline/stage.ts"
import { FinetuneConfig, type LlinkConfig } from "../../schemas/config.ts"
import { importWork } from "../../pipeline/lazy.ts"

const STAGE = "finetune"
type FinetuneParams = typeof FinetuneConfig.Type

export const finetune = defineStage<FinetuneParams>({
  name: STAGE,
  version: "1",
  description: "Direct fine-tune baseline: LoRA on the instruction data with the foreign text tokenized in the prompt",
  inputs: ["models", "sft.train", "sft.val"],
  outputs: [
    {
      name: "finetune",
      kind: "dir",
      file: "finetune",
      description: "LoRA adapter (adapter_model.safetensors + adapter_config.json, PEFT layout) + llink-finetune.json"
    },
    {
      name: "finetune.metrics",
      kind: "parquet",
      file: "finetune.metrics.parquet",
      description: "per step: loss, lr, grad norm; val loss on validation steps"
    }
  ],
  params: FinetuneConfig,
  selectParams: (config) => (config as LlinkConfig).finetune,
  run: Effect.fn("finetune.run")(function*(ctx) {
    const work = yield* importWork(STAGE, () => import("./work.ts"))
    return yield* work.runFinetune(ctx)
  })
})
