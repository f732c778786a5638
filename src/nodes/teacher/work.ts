/**
 * The `teacher` stage's work: h_E, the frozen decoder's final hidden state (after the final RMSNorm) at the
 * `<foreign_emb>` position of a prompt built from the English side.
 *
 * Prompts (`teacher.template`), token ids:
 * - "code" (authors' `teacher_inputs_with_emb`): `tokenize(english)` with BOS, truncated to `maxTokens − 1` ids
 *   (BOS included; code: max_src_tokens 128 → 127), then `<foreign_emb>`.
 * - "paper" (§4.1: `User:<instruction><foreign_emb> Assistant:`): the instruction is the English sentence itself
 *   ("we append a reserved token at the end of the user instruction"), so the text is `User:{english}`, tokenised with
 *   BOS and truncated to `maxTokens − 1` ids exactly like "code", then `<foreign_emb>`. The trailing ` Assistant:` is
 *   NOT run: attention is causal, so tokens after `<foreign_emb>` cannot change its hidden state; leaving them out
 *   gives the same h_E (up to float rounding) for less work.
 *
 * The `<foreign_emb>` input-embedding row follows `models.embeddingInit` (paper: zeros). Batches are left-padded with
 * EOS as the pad id (masked out), so `<foreign_emb>` is the last position of every row, and positions count real
 * tokens only (0, 1, 2, … from the first real token). All prompts are tokenised first; batches group prompts of
 * similar length and are resumable like `encode` (`batches.ts`).
 */
import { Effect } from "effect"
import { asStageError } from "../../pipeline/stageError.ts"
import type { LlamaModel } from "../../models/llama.ts"
import { disposeLlama, loadDecoder, promptEndStates } from "../../models/llama.ts"
import type { TextTokenizer } from "../../models/tokenizer.ts"
import { teacherPromptIds, type TeacherPromptOptions } from "../../prompts/teacher.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { FinishedShard, ShardContext, ShardOutcome, StageContext, StageOutcome } from "../../pipeline/stage.ts"
import type { TeacherParams } from "./params.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readStringColumn } from "../../artifacts/columns.ts"
import { mergeMatrixOutputs, runBatchJob, runSequenceShard } from "../../artifacts/matrixJob.ts"
import { readModelsRef } from "../../artifacts/models.ts"

export type { TeacherParams }

const STAGE = "teacher"

/** h_E [n, hidden] of prompts that end with `<foreign_emb>` (`teacherPromptIds`): src/models/llama.ts
 *  `promptEndStates`. */
export const teacherFromIds = promptEndStates

/** h_E [n, hidden] of `english` (one forward pass; tensors are freed). */
export const teacherVectors = (
  model: LlamaModel,
  tok: TextTokenizer,
  english: ReadonlyArray<string>,
  feId: number,
  padId: number,
  o: TeacherPromptOptions
): Promise<Float32Array> => teacherFromIds(model, english.map((e) => teacherPromptIds(tok, e, feId, o)), padId)

/** The models, the backend, the decoder tokenizer and its `<foreign_emb>` and pad ids. */
const teacherSetup = (inputs: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const models = yield* readModelsRef(inputs["models"]).pipe(asStageError(STAGE))
    const { doc } = models
    const backend = (yield* startBackend(STAGE)).tfBackend
    const tok = yield* loadTokenizer(models.decoderDir, { addedTokens: doc.addedTokens }).pipe(asStageError(STAGE))
    const feId = tok.tokenToId(doc.foreignEmbToken)
    if (feId === undefined) {
      return yield* new StageError({ stage: STAGE, message: `the decoder tokenizer has no ${doc.foreignEmbToken}`, file: models.decoderDir })
    }
    const padId = tok.eosId
    if (padId === undefined) {
      return yield* new StageError({ stage: STAGE, message: "the decoder tokenizer has no eos token to pad with", file: models.decoderDir })
    }
    return { models, doc, backend, tok, feId, padId }
  })

export const runTeacher = (ctx: StageContext<TeacherParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const { models, doc, backend, tok, feId, padId } = yield* teacherSetup(ctx.inputs)
    const counts: Record<string, number> = {}
    const detail: Record<string, unknown> = {}
    yield* Effect.acquireUseRelease(
      loadDecoder(models.decoderDir, {
        addedTokens: doc.addedTokens,
        embeddingInit: doc.embeddingInit,
        embeddingSeed: doc.embeddingSeed
      }).pipe(asStageError(STAGE)),
      (model) =>
        Effect.gen(function*() {
          const dim = model.config.hidden_size
          for (const split of ["train", "holdout"] as const) {
            const texts = yield* readStringColumn(STAGE, ctx.inputs[split], "english")
            const name = `hE.${split}`
            const prompts = texts.map((e) => teacherPromptIds(tok, e, feId, p))
            const r = yield* runBatchJob(
              {
                stage: STAGE,
                label: name,
                prefix: split,
                batchSize: p.batchSize,
                dim,
                lengths: prompts.map((q) => q.length),
                compute: (rows) => teacherFromIds(model, Array.from(rows, (i) => prompts[i]), padId)
              },
              ctx.scratchDir,
              ctx.outputs[name],
              ctx.progress(name, texts.length),
              ctx.log
            ).pipe(asStageError(STAGE))
            counts[name] = r.rows
            detail[name] = { batches: r.batches, computed: r.computed, reused: r.reused, fill: Number(r.fill.toFixed(3)) }
          }
          ctx.log(`h_E (${p.template} template, ${doc.embeddingInit} <foreign_emb> row): ${counts["hE.train"]} train + ${counts["hE.holdout"]} holdout vectors of ${dim} (${backend})`)
          return undefined
        }),
      (model) => Effect.sync(() => disposeLlama(model))
    )
    return { rows: counts, metrics: { ...detail, template: p.template, backend } }
  })

/** The input tables (split name) and the output each fills. */
export const TEACHER_TABLES = ["train", "holdout"] as const

/** One shard of `teacher` (rows of `train` or `holdout`): the same batches as `runTeacher`, so the same vectors. */
export const runTeacherShard = (ctx: ShardContext<TeacherParams>): Effect.Effect<ShardOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const { table, start, end } = ctx.range
    const { models, doc, tok, feId, padId } = yield* teacherSetup(ctx.inputs)
    const texts = (yield* readStringColumn(STAGE, ctx.inputs[table], "english")).slice(start, end)
    const prompts = texts.map((e) => teacherPromptIds(tok, e, feId, p))
    return yield* Effect.acquireUseRelease(
      loadDecoder(models.decoderDir, {
        addedTokens: doc.addedTokens,
        embeddingInit: doc.embeddingInit,
        embeddingSeed: doc.embeddingSeed
      }).pipe(asStageError(STAGE)),
      (model) => {
        return runSequenceShard(STAGE, ctx, "hE", p.batchSize, model.config.hidden_size, prompts, (batch) => teacherFromIds(model, batch, padId))
      },
      (model) => Effect.sync(() => disposeLlama(model))
    )
  })

/** Writes `hE.train` and `hE.holdout` from the finished shards. */
export const mergeTeacher = (
  ctx: StageContext<TeacherParams>,
  shards: ReadonlyArray<FinishedShard>
): Effect.Effect<StageOutcome, StageError> =>
  Effect.map(
    mergeMatrixOutputs(STAGE, ctx.outputs, "hE", TEACHER_TABLES, ctx.params.batchSize, shards),
    (rows) => ({ rows, metrics: { shards: shards.length, template: ctx.params.template } })
  )

