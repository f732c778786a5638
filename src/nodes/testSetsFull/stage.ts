/**
 * `testSetsFull`: LLINK (full), the direct fine-tune and the peer baselines that are on (LangBridge, MindMerger) on
 * each named test set of `eval.testSets`, the rows of Table 1 that `testSets` (Stage A) does not have. It reads the pairs and vectors `testSets` published, so each set
 * meets the systems as the eval slice meets them in `retrievalFull` and `retrievalPeers`. With no test sets it writes an empty list and
 * loads nothing.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { TestSetsFullDoc } from "../../schemas/retrieval.ts"
import type { LlinkConfig } from "../config.ts"
import { TestSetsFullParams } from "./params.ts"

export const testSetsFull = defineStage<TestSetsFullParams, TensorBackend>({
  name: "testSetsFull",
  source: import.meta.url,
  version: "1",
  description: "LLINK (full), fine-tune and peer retrieval on the named test sets of eval.testSets",
  inputs: ["models", "projector", "stageB", "finetune", "langbridge", "mindmerger", "testSets.pairs", "zF.testSets", "hE.testSets"],
  outputs: [
    { name: "retrieval.testSets.full", kind: "json", file: "retrieval.testSets.full.json", schema: TestSetsFullDoc, description: "LLINK (full), fine-tune and peer retrieval per named test set" }
  ],
  params: TestSetsFullParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return {
      vector: c.retrievalFull.vector,
      batchSize: c.retrievalFull.batchSize,
      teacher: { template: c.teacher.template, maxTokens: c.teacher.maxTokens },
      bootstrap: c.retrieval.bootstrap,
      encoderBatch: c.encode.batchSize
    }
  },
  run: (ctx) => Effect.flatMap(importWork("testSetsFull", () => import("./work.ts")), (work) => work.runTestSetsFull(ctx))
})
