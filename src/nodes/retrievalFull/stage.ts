/**
 * `retrievalFull`: bilingual retrieval (paper Table 1) of full LLINK (Stage A + Stage B) and of the direct fine-tune,
 * on the same eval slice and teacher vectors as the Stage A row. "full" is by default the mean of the K injected slot
 * vectors (what Stage B's alignment auxiliaries train toward h_E); see src/nodes/retrievalFull/work.ts.
 */
import { Effect, Schema } from "effect"
import { defineStage } from "../../pipeline/stage.ts"
import { type LlinkConfig, RetrievalFullConfig, TeacherTemplate } from "../../schemas/config.ts"
import { importWork } from "../../pipeline/lazy.ts"

const STAGE = "retrievalFull"

/** The `retrievalFull` section, plus `retrieval.n`, `split.evalN` and the teacher's prompt settings. */
export const RetrievalFullParams = Schema.Struct({
  ...RetrievalFullConfig.fields,
  n: Schema.Number,
  evalN: Schema.Number,
  teacher: Schema.Struct({ template: TeacherTemplate, maxTokens: Schema.Number })
})
type RetrievalFullParams = typeof RetrievalFullParams.Type

export const retrievalFull = defineStage<RetrievalFullParams>({
  name: STAGE,
  version: "1",
  description: "Bilingual retrieval of full LLINK (mean slot after Stage B) and of the direct fine-tune",
  inputs: ["models", "projector", "stageB", "finetune", "zF.holdout", "hE.holdout", "eval"],
  outputs: [{ name: "retrieval.full", kind: "json", file: "retrieval.full.json", description: "retrieval metrics of full LLINK and the fine-tune" }],
  params: RetrievalFullParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { ...c.retrievalFull, n: c.retrieval.n, evalN: c.split.evalN, teacher: { template: c.teacher.template, maxTokens: c.teacher.maxTokens } }
  },
  run: Effect.fn("retrievalFull.run")(function*(ctx) {
    const work = yield* importWork(STAGE, () => import("./work.ts"))
    return yield* work.runRetrievalFull(ctx)
  })
})
