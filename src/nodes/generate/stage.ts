/**
 * `generate`: every `sft.eval` example answered by LLINK (K slots injected, Stage B LoRA), the base decoder (the
 * foreign text tokenised directly) and the direct fine-tune (its LoRA, its prompt format); greedy, 64 new tokens,
 * no-repeat-3-gram, batched with left padding, resumable per batch. Prompt formats and details:
 * src/nodes/generate/work.ts. The peers answer in `generatePeers`, so this stage need not wait for their training;
 * `generations` joins the two tables.
 *
 * Sharded on a cluster (`work.ts`, `planGenerateShards`): runs of `generate.shardBatches` batches, each computed by a
 * runner into its shard folder; the merge is the single-process run, which finds every batch there.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { MainGenerationColumns } from "../../schemas/sft.ts"
import type { LlinkConfig } from "../config.ts"
import { GenerateConfig, type GenerateParams } from "./params.ts"

export const generate = defineStage<GenerateParams, TensorBackend>({
  name: "generate",
  source: import.meta.url,
  version: "2",
  heavy: true,
  cost: 17,
  description: "Generations of LLINK, the base decoder and the direct fine-tune on the evaluation examples",
  inputs: ["models", "projector", "stageB", "finetune", "zF.holdout", "sft.eval"],
  outputs: [
    {
      name: "generations.main",
      kind: "parquet",
      file: "generations.main.parquet",
      columns: MainGenerationColumns,
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
