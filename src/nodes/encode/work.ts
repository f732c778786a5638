/**
 * The `encode` stage's work: z_F, the frozen XLM-R's sentence vector of each foreign sentence.
 *
 * Per sentence (as the authors' `xlmr_mean`): cut to `maxChars` code points, tokenise with `<s> … </s>`, cut to
 * `maxTokens` ids keeping the closing `</s>` (Hugging Face truncation), right-pad with `<pad>`; the vector is the
 * attention-mask-weighted mean of the last hidden states, special tokens included. All sentences are tokenised
 * first; batches group sentences of similar length and are resumable (`batches.ts`); the outputs are `zF.train` and
 * `zF.holdout` (row i = table row i).
 */
import { Effect } from "effect"
import { asStageError } from "../../pipeline/stageError.ts"
import type { TextTokenizer } from "../../models/tokenizer.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import type { EncoderCut, XlmrModel } from "../../models/xlmr.ts"
import { disposeXlmr, embedTokenized, encoderTokenIds, loadEncoder } from "../../models/xlmr.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { FinishedShard, ShardContext, ShardOutcome, StageContext, StageOutcome } from "../../pipeline/stage.ts"
import type { EncodeParams } from "./params.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readStringColumn } from "../../artifacts/columns.ts"
import { mergeMatrixOutputs, runBatchJob, runSequenceShard } from "../../artifacts/matrixJob.ts"
import { readModelsRef } from "../../artifacts/models.ts"

export type { EncodeParams }

const STAGE = "encode"

export type ForeignEncodeOptions = EncoderCut

/** Token ids of one foreign sentence (src/models/xlmr.ts `encoderTokenIds`). */
export const foreignTokenIds = encoderTokenIds

/** z_F [n, hidden] of already tokenised sentences (src/models/xlmr.ts `embedTokenized`). */
export const encodeTokenized = embedTokenized

/** z_F of `texts` [n, hidden] (one forward pass; tensors are freed). */
export const encodeForeign = (
  model: XlmrModel,
  tok: TextTokenizer,
  texts: ReadonlyArray<string>,
  o: ForeignEncodeOptions
): Promise<Float32Array> => {
  const eos = tok.eosId ?? model.config.eos_token_id
  return encodeTokenized(model, texts.map((t) => foreignTokenIds(tok, t, eos, o)))
}

export const runEncode = (ctx: StageContext<EncodeParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    const backend = (yield* startBackend(STAGE)).tfBackend
    const tok = yield* loadTokenizer(models.encoderDir).pipe(asStageError(STAGE))
    const counts: Record<string, number> = {}
    const detail: Record<string, unknown> = {}
    yield* Effect.acquireUseRelease(
      loadEncoder(models.encoderDir).pipe(asStageError(STAGE)),
      (model) =>
        Effect.gen(function*() {
          if (model.config.max_position_embeddings - model.config.pad_token_id - 1 < p.maxTokens) {
            return yield* new StageError({
              stage: STAGE,
              message: `encode.maxTokens ${p.maxTokens} exceeds the encoder's ${model.config.max_position_embeddings - model.config.pad_token_id - 1} positions`
            })
          }
          const dim = model.config.hidden_size
          const eos = tok.eosId ?? model.config.eos_token_id
          for (const split of ["train", "holdout"] as const) {
            const texts = yield* readStringColumn(STAGE, ctx.inputs[split], "foreign")
            const name = `zF.${split}`
            const seqs = texts.map((t) => foreignTokenIds(tok, t, eos, p))
            const r = yield* runBatchJob(
              {
                stage: STAGE,
                label: name,
                prefix: split,
                batchSize: p.batchSize,
                dim,
                lengths: seqs.map((q) => q.length),
                compute: (rows) => encodeTokenized(model, Array.from(rows, (i) => seqs[i]))
              },
              ctx.scratchDir,
              ctx.outputs[name],
              ctx.progress(name, texts.length),
              ctx.log
            ).pipe(asStageError(STAGE))
            counts[name] = r.rows
            detail[name] = { batches: r.batches, computed: r.computed, reused: r.reused, fill: Number(r.fill.toFixed(3)) }
          }
          ctx.log(`z_F: ${counts["zF.train"]} train + ${counts["zF.holdout"]} holdout vectors of ${dim} (${backend})`)
          return undefined
        }),
      (model) => Effect.sync(() => disposeXlmr(model))
    )
    return { rows: counts, metrics: { ...detail, backend } }
  })

/** The input tables (split name) and the output each fills. */
export const ENCODE_TABLES = ["train", "holdout"] as const

/** One shard of `encode` (rows of `train` or `holdout`): the same batches as `runEncode`, so the same vectors. */
export const runEncodeShard = (ctx: ShardContext<EncodeParams>): Effect.Effect<ShardOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const { table, start, end } = ctx.range
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    yield* startBackend(STAGE)
    const tok = yield* loadTokenizer(models.encoderDir).pipe(asStageError(STAGE))
    const texts = (yield* readStringColumn(STAGE, ctx.inputs[table], "foreign")).slice(start, end)
    return yield* Effect.acquireUseRelease(
      loadEncoder(models.encoderDir).pipe(asStageError(STAGE)),
      (model) => {
        const eos = tok.eosId ?? model.config.eos_token_id
        const seqs = texts.map((t) => foreignTokenIds(tok, t, eos, p))
        return runSequenceShard(STAGE, ctx, "zF", p.batchSize, model.config.hidden_size, seqs, (batch) => encodeTokenized(model, batch))
      },
      (model) => Effect.sync(() => disposeXlmr(model))
    )
  })

/** Writes `zF.train` and `zF.holdout` from the finished shards. */
export const mergeEncode = (
  ctx: StageContext<EncodeParams>,
  shards: ReadonlyArray<FinishedShard>
): Effect.Effect<StageOutcome, StageError> =>
  Effect.map(
    mergeMatrixOutputs(STAGE, ctx.outputs, "zF", ENCODE_TABLES, ctx.params.batchSize, shards),
    (rows) => ({ rows, metrics: { shards: shards.length } })
  )

