/**
 * `encode`: z_F, the frozen XLM-R encoder's mask-mean pooled sentence vector of the foreign side of every train and
 * holdout pair (cut to `encode.maxChars` characters and `encode.maxTokens` tokens), as matrix artifacts whose row i is
 * table row i. Batched and resumable: finished batches are kept in the scratch folder, so a rerun after a crash
 * computes only the rest and writes the same bytes as an uninterrupted run.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import type { LlinkConfig } from "../config.ts"
import { EncodeConfig, type EncodeParams } from "./params.ts"

export const encode = defineStage<EncodeParams, TensorBackend>({
  name: "encode",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 3,
  description: "z_F: XLM-R mask-mean pooled vectors of the foreign sentences (train, holdout)",
  inputs: ["models", "train", "holdout"],
  outputs: [
    { name: "zF.train", kind: "arrow", file: "zF.train.arrow", description: "z_F of the train pairs (row i = train row i)" },
    { name: "zF.holdout", kind: "arrow", file: "zF.holdout.arrow", description: "z_F of the holdout pairs (row i = holdout row i)" }
  ],
  params: EncodeConfig,
  selectParams: (config) => (config as LlinkConfig).encode,
  run: (ctx) => Effect.flatMap(importWork("encode", () => import("./work.ts")), (work) => work.runEncode(ctx)),
  // One shard per window of rows of each table (`planMatrixShards`): the same batches, so the same bytes as `run`.
  sharding: {
    plan: (ctx) =>
      Effect.flatMap(
        importWork("encode", () => import("../../artifacts/matrixJob.ts")),
        (m) => m.planMatrixShards("encode", ctx.inputs, ["train", "holdout"], ctx.params.batchSize)
      ),
    runShard: (ctx) => Effect.flatMap(importWork("encode", () => import("./work.ts")), (work) => work.runEncodeShard(ctx)),
    merge: (ctx, shards) => Effect.flatMap(importWork("encode", () => import("./work.ts")), (work) => work.mergeEncode(ctx, shards))
  }
})
