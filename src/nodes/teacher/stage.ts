/**
 * `teacher`: h_E, the frozen decoder's final hidden state (after the final RMSNorm) at the reserved `<foreign_emb>`
 * token appended to the English side of every train and holdout pair — the Stage A target.
 *
 * `teacher.template`: "paper" = `User:{english}<foreign_emb> Assistant:` (the paper's template with the English
 * sentence as the instruction), "code" = BOS + English + `<foreign_emb>` (the authors' code); both truncate the
 * English like the code (BOS + English ≤ `teacher.maxTokens` − 1 tokens). Left padding with EOS as pad. The
 * `<foreign_emb>` input row follows `models.embeddingInit`. Batched and resumable like `encode`. Details:
 * `src/nodes/teacher/work.ts`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import type { LlinkConfig } from "../config.ts"
import { TeacherConfig, type TeacherParams } from "./params.ts"

export const teacher = defineStage<TeacherParams, TensorBackend>({
  name: "teacher",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 14,
  description: "h_E: the decoder's final hidden state at <foreign_emb> after the English prompt (train, holdout)",
  inputs: ["models", "train", "holdout"],
  outputs: [
    { name: "hE.train", kind: "arrow", file: "hE.train.arrow", description: "h_E of the train pairs (row i = train row i)" },
    { name: "hE.holdout", kind: "arrow", file: "hE.holdout.arrow", description: "h_E of the holdout pairs (row i = holdout row i)" }
  ],
  params: TeacherConfig,
  selectParams: (config) => (config as LlinkConfig).teacher,
  run: (ctx) => Effect.flatMap(importWork("teacher", () => import("./work.ts")), (work) => work.runTeacher(ctx)),
  // One shard per window of rows of each table (`planMatrixShards`): the same batches, so the same bytes as `run`.
  sharding: {
    plan: (ctx) =>
      Effect.flatMap(
        importWork("teacher", () => import("../../artifacts/matrixJob.ts")),
        (m) => m.planMatrixShards("teacher", ctx.inputs, ["train", "holdout"], ctx.params.batchSize)
      ),
    runShard: (ctx) => Effect.flatMap(importWork("teacher", () => import("./work.ts")), (work) => work.runTeacherShard(ctx)),
    merge: (ctx, shards) => Effect.flatMap(importWork("teacher", () => import("./work.ts")), (work) => work.mergeTeacher(ctx, shards))
  }
})
