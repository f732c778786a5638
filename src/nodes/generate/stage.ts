/**
 * `generate`: every `sft.eval` example answered by LLINK (K slots injected, Stage B LoRA), the base decoder (the
 * foreign text tokenised directly) and the direct fine-tune (its LoRA, its prompt format); greedy, 64 new tokens,
 * no-repeat-3-gram, batched with left padding, resumable per batch. Prompt formats and details:
 * src/nodes/generate/work.ts.
 */
import { Effect } from "effect"
import { defineStage } from "../../pipeline/stage.ts"
import { GenerateConfig, type LlinkConfig } from "../../schemas/config.ts"
import { importWork } from "../../pipeline/lazy.ts"

const STAGE = "generate"
type GenerateParams = typeof GenerateConfig.Type

export const generate = defineStage<GenerateParams>({
  name: STAGE,
  version: "1",
  description: "Generations of LLINK, the base decoder and the direct fine-tune on the evaluation examples",
  inputs: ["models", "projector", "stageB", "finetune", "zF.holdout", "sft.eval"],
  outputs: [
    {
      name: "generations",
      kind: "parquet",
      file: "generations.parquet",
      description: "per example: task, bucket, instruction, reference, the three systems' outputs and prompt token counts"
    }
  ],
  params: GenerateConfig,
  selectParams: (config) => (config as LlinkConfig).generate,
  run: Effect.fn("generate.run")(function*(ctx) {
    const work = yield* importWork(STAGE, () => import("./work.ts"))
    return yield* work.runGenerate(ctx)
  })
})
