/**
 * `retrieval`: bilingual retrieval (paper §5.2, Table 1) of the Stage A system on the eval slice — the first
 * `retrieval.n` (default `split.evalN`) holdout pairs: cosine between the normalised projected foreign vectors and
 * the normalised teacher vectors; R@1/5/10, MRR, mean rank, chance R@1. The JSON is keyed by system
 * (`{ "stageA": { n, r1, r5, r10, mrr, meanRank, chanceR1 } }`) so `full` and `finetune` can join later; the paper's
 * numbers are in `src/schemas/paper.ts` and are printed beside the measured ones. `suite` adds the field's grid
 * (src/metrics/bitext.ts): both directions × cosine, ratio margin (k 4) and CSLS (k 10) on the same slice, R@1 at
 * candidate pools of `retrieval.pools` and the whole holdout, and the top-1 mistakes by kind (English from `holdout`).
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { RetrievalDoc } from "../../schemas/retrieval.ts"
import type { LlinkConfig } from "../config.ts"
import { RetrievalParams } from "./params.ts"

export const retrieval = defineStage<RetrievalParams, TensorBackend>({
  name: "retrieval",
  source: import.meta.url,
  version: "1",
  description: "Bilingual retrieval (R@1/5/10, MRR, mean rank) of Stage A on the eval slice, both directions under cosine, margin and CSLS",
  inputs: ["projector", "zF.holdout", "hE.holdout", "holdout"],
  outputs: [{ name: "retrieval", kind: "json", file: "retrieval.json", schema: RetrievalDoc, description: "retrieval metrics keyed by system" }],
  params: RetrievalParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { ...c.retrieval, evalN: c.split.evalN }
  },
  run: (ctx) => Effect.flatMap(importWork("retrieval", () => import("./work.ts")), (work) => work.runRetrieval(ctx))
})
