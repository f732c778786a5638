/**
 * `retrieval`: bilingual retrieval (paper §5.2, Table 1) of the Stage A system on the eval slice — the first
 * `retrieval.n` (default `split.evalN`) holdout pairs: cosine between the normalised projected foreign vectors and
 * the normalised teacher vectors; R@1/5/10, MRR, mean rank, chance R@1. The JSON is keyed by system
 * (`{ "stageA": { n, r1, r5, r10, mrr, meanRank, chanceR1 } }`) so `full` and `finetune` can join later; the paper's
 * numbers are in `src/schemas/paper.ts` and are printed beside the measured ones.
 */
import { Effect, Schema } from "effect"
import { defineStage } from "../../pipeline/stage.ts"
import { type LlinkConfig, RetrievalConfig } from "../../schemas/config.ts"
import { importWork } from "../../pipeline/lazy.ts"

const STAGE = "retrieval"

/** The `retrieval` section plus `split.evalN`. */
export const RetrievalParams = Schema.Struct({ ...RetrievalConfig.fields, evalN: Schema.Number })
type RetrievalParams = typeof RetrievalParams.Type

export const retrieval = defineStage<RetrievalParams>({
  name: STAGE,
  version: "1",
  description: "Bilingual retrieval (R@1/5/10, MRR, mean rank) of Stage A on the eval slice",
  inputs: ["projector", "zF.holdout", "hE.holdout"],
  outputs: [{ name: "retrieval", kind: "json", file: "retrieval.json", description: "retrieval metrics keyed by system" }],
  params: RetrievalParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { ...c.retrieval, evalN: c.split.evalN }
  },
  run: Effect.fn("retrieval.run")(function*(ctx) {
    const work = yield* importWork(STAGE, () => import("./work.ts"))
    return yield* work.runRetrieval(ctx)
  })
})
