/**
 * `generate`: every `sft.eval` example answered by LLINK (K slots injected, Stage B LoRA), the base decoder (the
 * foreign text tokenised directly) and the direct fine-tune (its LoRA, its prompt format); greedy, 64 new tokens,
 * no-repeat-3-gram, batched with left padding, resumable per batch. Prompt formats and details:
 * src/nodes/generate/work.ts.
 *
 * Sharded on a cluster (`work.ts`, `planGenerateShards`): runs of `generate.shardBatches` batches, each computed by a
 * runner into its shard folder; the merge is the single-process run, which finds every batch there.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { GenerationColumns } from "../../schemas/sft.ts"
import type { LlinkConfig } from "../config.ts"
import { GenerateConfig, type GenerateParams } from "./params.ts"

export const generate = defineStage<GenerateParams, TensorBackend>({
  name: "generate",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 29,
  description: "Generations of LLINK, the base decoder, the direct fine-tune and the peer baselines on the evaluation examples",
  inputs: ["models", "projector", "stageB", "finetune", "langbridge", "mindmerger", "zF.holdout", "sft.eval"],
  outputs: [
    {
      name: "generations",
      kind: "parquet",
      file: "generations.parquet",
      columns: GenerationColumns,
      description: "per example: task, bucket, instruction, reference, the three systems' outputs and prompt token counts"
    }
  ],
  params: GenerateConfig,
  selectParams: (config) => (config as LlinkConfig).generate,
  run: (ctx) => Effect.flatMap(importWork("generate", () => import("./work.ts")), (work) => work.runGenerate(ctx)),
  // On a cluster: shards of `generate.shardBatches` batches of `sft.eval` rows; the merge is `run` on their batches.
  sharding: {
    plan: (ctx) => Effect.flatMap(importWork("generate", () => import("./work.ts")), (work) => work.planGenerateShards(ctx.params, ctx.inputs)),
    runShard: (ctx) => Effect.flatMap(importWork("generate", () => import("./work.ts")), (work) => work.runGenerateShard(ctx)),
    merge: (ctx, shards) => Effect.flatMap(importWork("generate", () => import("./work.ts")), (work) => work.runGenerate(ctx, shards))
  }
})
