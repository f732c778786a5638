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
import { defineStage } from "../../pipeline/stage.ts"
import { type LlinkConfig, TeacherConfig } from "../../schemas/config.ts"
import { importWork } from "../../pipeline/lazy.ts"

const STAGE = "teacher"
type TeacherParams = typeof TeacherConfig.Type

export const teacher = defineStage<TeacherParams>({
  name: STAGE,
  version: "1",
  description: "h_E: the decoder's final hidden state at <foreign_emb> after the English prompt (train, holdout)",
  inputs: ["models", "train", "holdout"],
  outputs: [
    { name: "hE.train", kind: "arrow", file: "hE.train.arrow", description: "h_E of the train pairs (row i = train row i)" },
    { name: "hE.holdout", kind: "arrow", file: "hE.holdout.arrow", description: "h_E of the holdout pairs (row i = holdout row i)" }
  ],
  params: TeacherConfig,
  selectParams: (config) => (config as LlinkConfig).teacher,
  run: Effect.fn("teacher.run")(function*(ctx) {
    const work = yield* importWork(STAGE, () => import("./work.ts"))
    return yield* work.runTeacher(ctx)
  })
})
