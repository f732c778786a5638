/**
 * `retrievalFull`: bilingual retrieval (paper Table 1) of full LLINK (Stage A + Stage B) and of the direct fine-tune,
 * on the same eval slice and teacher vectors as the Stage A row. "full" is by default the mean of the K injected slot
 * vectors (what Stage B's alignment auxiliaries train toward h_E); see src/nodes/retrievalFull/work.ts.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { RetrievalFullDoc } from "../../schemas/retrieval.ts"
import type { LlinkConfig } from "../config.ts"
import { RetrievalFullParams } from "./params.ts"

export const retrievalFull = defineStage<RetrievalFullParams, TensorBackend>({
  name: "retrievalFull",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 8,
  description: "Bilingual retrieval of full LLINK (mean slot after Stage B) and of the direct fine-tune",
  inputs: ["models", "projector", "stageB", "finetune", "zF.holdout", "hE.holdout", "eval"],
  outputs: [
    { name: "retrieval.full", kind: "json", file: "retrieval.full.json", schema: RetrievalFullDoc, description: "retrieval metrics of full LLINK and the fine-tune" }
  ],
  params: RetrievalFullParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return {
      ...c.retrievalFull,
      n: c.retrieval.n,
      evalN: c.split.evalN,
      teacher: { template: c.teacher.template, maxTokens: c.teacher.maxTokens },
      bootstrap: c.retrieval.bootstrap
    }
  },
  run: (ctx) => Effect.flatMap(importWork("retrievalFull", () => import("./work.ts")), (work) => work.runRetrievalFull(ctx)),
  // On a cluster: shards of `retrievalFull.shardBatches` batches of `eval` rows write their query vectors; the merge
  // scores them as `run` scores its own.
  sharding: {
    plan: (ctx) => Effect.flatMap(importWork("retrievalFull", () => import("./work.ts")), (work) => work.planRetrievalFullShards(ctx.params, ctx.inputs)),
    runShard: (ctx) => Effect.flatMap(importWork("retrievalFull", () => import("./work.ts")), (work) => work.runRetrievalFullShard(ctx)),
    merge: (ctx, shards) => Effect.flatMap(importWork("retrievalFull", () => import("./work.ts")), (work) => work.runRetrievalFull(ctx, shards))
  }
})
