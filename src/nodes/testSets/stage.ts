/**
 * `testSets`: Stage A's retrieval on each named test set of `eval.testSets` (issue "Evaluation to the field's
 * standard"), beside the holdout's Table 1. Each set is read through the corpus readers (`src/corpus/`, every format
 * `ingest` takes), normalised and cut as `clean` does, encoded by the frozen XLM-R as `encode` does and prompted to
 * the frozen decoder as `teacher` does; its projected foreign vectors are scored against its teacher vectors with
 * Table 1's metrics and the bitext grid (both directions × cosine, margin, CSLS; pool curve; mistakes). Each set's
 * contamination is counted: pairs whose English or foreign sentence also occurs in the training split.
 *
 * It also publishes what it evaluated, for `testSetsFull` (the other systems' rows): `testSets.pairs` (every set's
 * pairs, in order) and `zF.testSets` / `hE.testSets` (row i = pair i). With no test sets configured it writes an
 * empty list, an empty table and empty matrices, and loads nothing.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { corpusFiles } from "../../corpus/corpus.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { TestSetsDoc } from "../../schemas/retrieval.ts"
import { TestSetPairColumns } from "../../schemas/rows.ts"
import type { LlinkConfig } from "../config.ts"
import { TestSetsParams } from "./params.ts"

export const testSets = defineStage<TestSetsParams, TensorBackend>({
  name: "testSets",
  source: import.meta.url,
  version: "1",
  description: "Stage A retrieval on the named test sets of eval.testSets (both directions, three scorings, contamination)",
  inputs: ["models", "projector", "train"],
  outputs: [
    { name: "retrieval.testSets", kind: "json", file: "retrieval.testSets.json", schema: TestSetsDoc, description: "Stage A retrieval per named test set, with its contamination" },
    { name: "testSets.pairs", kind: "parquet", file: "testSets.pairs.parquet", columns: TestSetPairColumns, description: "the evaluated pairs of every test set, in order (normalised, cut)" },
    { name: "zF.testSets", kind: "arrow", file: "zF.testSets.arrow", description: "z_F of the test-set pairs (row i = testSets.pairs row i)" },
    { name: "hE.testSets", kind: "arrow", file: "hE.testSets.arrow", description: "h_E of the test-set pairs (row i = testSets.pairs row i)" }
  ],
  params: TestSetsParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return {
      testSets: c.eval.testSets,
      clean: { removeZeroWidth: c.clean.removeZeroWidth, maxForeignChars: c.clean.maxForeignChars },
      encode: { batchSize: c.encode.batchSize, maxChars: c.encode.maxChars, maxTokens: c.encode.maxTokens },
      teacher: { template: c.teacher.template, maxTokens: c.teacher.maxTokens, batchSize: c.teacher.batchSize },
      pools: c.retrieval.pools,
      bootstrap: c.retrieval.bootstrap
    }
  },
  externalInputs: (params) => params.testSets.flatMap((s) => corpusFiles(s.corpus)),
  preflight: (params) =>
    Effect.flatMap(Effect.promise(() => import("../../corpus/preflight.ts")), (m) =>
      Effect.map(
        Effect.forEach(params.testSets, (s, i) => m.corpusPreflight(s.corpus, `eval.testSets[${i}].corpus`)),
        (lists) => lists.flat()
      )),
  run: (ctx) => Effect.flatMap(importWork("testSets", () => import("./work.ts")), (work) => work.runTestSets(ctx))
})
