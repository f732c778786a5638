/**
 * The `finetune` stage's work: the direct fine-tune baseline (paper §5.2). LoRA on the decoder, trained on the same
 * sft rows as Stage B with the foreign text itself in the prompt:
 * `Instruction: {instruction}\nForeign: <foreign>{foreign_raw}</foreign>\nAnswer in English only.` (foreign text cut
 * to `maxForeignChars` code points), loss on the target tokens only (src/prompts/slots.ts). Everything but the LoRA
 * weights is frozen. Loop, schedule, clipping and exact resume: src/train/sftLoop.ts.
 *
 * Metrics (one row per optimizer step): `loss` (micro-batch mean of the target-token cross-entropy), `lr`,
 * `gradNorm` (before clipping), and `valLoss` (sft.val, no dropout) on validation steps.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as path from "node:path"
import { asStageError } from "../../pipeline/stageError.ts"
import type { LlamaModel } from "../../models/llama.ts"
import { disposeLlama, loadDecoder } from "../../models/llama.ts"
import type { LoraConfig, LoraTarget } from "../../models/lora.ts"
import { disposeLora, LORA_TARGETS, saveLora } from "../../models/lora.ts"
import { deriveSeed } from "../../models/rng.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter } from "../../formats/parquet/table.ts"
import { FINETUNE_METRICS_COLUMNS } from "./metrics.ts"
import type { FinetuneParams } from "./params.ts"
import { readTidy } from "../../backend/read.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readModelsRef } from "../../artifacts/models.ts"
import { lmLoss, lmTargets, targetNll } from "../../train/stageBLoss.ts"
import type { FinetuneDoc } from "../../artifacts/stageB.ts"
import { FINETUNE_CONFIG, FINETUNE_FORMAT, writeJson } from "../../artifacts/stageB.ts"
import type { EncodedRow, PromptSettings } from "../../train/sftData.ts"
import { loadSftSets } from "../../train/sftData.ts"
import { dropoutModel, loopSettingsOf, loraGroupVariables, runLoop } from "../../train/sftLoop.ts"
import { padBatch } from "../../prompts/slots.ts"

export type { FinetuneParams }
export { FINETUNE_METRICS_COLUMNS }

const STAGE = "finetune"


export interface FinetuneRunOptions {
  /** Stop with a checkpoint after this many optimizer steps, as a crash would (tests of resume). */
  readonly haltAfter?: number
}

const releaseModel = (model: LlamaModel) =>
  Effect.sync(() => {
    if (model.lora !== undefined) disposeLora(model.lora)
    disposeLlama(model)
  })

export const runFinetune = (ctx: StageContext<FinetuneParams>, options?: FinetuneRunOptions): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const backend = (yield* startBackend(STAGE)).tfBackend
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    const doc = models.doc
    const addedTokens = [...doc.addedTokens]
    const tokenizer = yield* loadTokenizer(models.decoderDir, { addedTokens }).pipe(asStageError(STAGE))
    const padId = tokenizer.padId ?? tokenizer.eosId ?? 0
    const settings: PromptSettings = {
      instruction: p.instruction,
      appendEos: p.appendEos,
      maxSeqLen: p.maxSeqLen,
      taskTypes: p.taskTypes,
      reserved: addedTokens
    }
    const kind = { kind: "text" as const, maxForeignChars: p.maxForeignChars }
    const { train, val } = yield* loadSftSets(
      STAGE,
      { train: ctx.inputs["sft.train"], val: ctx.inputs["sft.val"] },
      tokenizer,
      settings,
      kind,
      p
    )
    const loraConfig: LoraConfig = {
      rank: p.loraRank,
      alpha: p.loraAlpha,
      dropout: p.loraDropout,
      targets: LORA_TARGETS.filter((t) => p.loraTargets.includes(t))
    }
    const acquire = loadDecoder(models.decoderDir, {
      addedTokens,
      embeddingInit: doc.embeddingInit,
      embeddingSeed: doc.embeddingSeed,
      lora: { config: loraConfig, seed: deriveSeed(p.seed, "finetune.lora") }
    }).pipe(asStageError(STAGE))

    return yield* Effect.acquireUseRelease(acquire, (model) =>
      Effect.gen(function*() {
        const batchOf = (exs: ReadonlyArray<EncodedRow>) => {
          const padded = padBatch(exs.map((e) => e.example), padId)
          return { input: { ids: padded.ids, attentionMask: padded.attentionMask }, targets: lmTargets(padded.labels) }
        }
        const identity = JSON.stringify({
          params: p,
          addedTokens,
          embeddingInit: doc.embeddingInit,
          embeddingSeed: doc.embeddingSeed,
          train: train.examples.length,
          val: val.examples.length
        })
        const result = yield* runLoop({
          stage: STAGE,
          settings: loopSettingsOf(p, train.examples.length),
          groups: [{ name: "lora", variables: loraGroupVariables(model), lr: p.lrLora, weightDecay: p.weightDecay }],
          logKeys: ["loss"],
          evalKeys: ["valLoss"],
          identity,
          checkpointRoot: path.join(ctx.scratchDir, "checkpoints"),
          log: ctx.log,
          progress: ctx.progress,
          ...(options?.haltAfter === undefined ? {} : { haltAfter: options.haltAfter }),
          hooks: {
            micro: (step, micro, indices) => {
              const b = batchOf(Array.from(indices, (i) => train.examples[i]))
              const loss = lmLoss(dropoutModel(model, p.seed, step, micro, "sft"), b.input, b.targets, true)
              return { loss, logs: { loss } }
            },
            evaluate: async () => {
              if (val.examples.length === 0) return { valLoss: null }
              let sum = 0
              let n = 0
              for (let s = 0; s < val.examples.length; s += p.microBatch) {
                const b = batchOf(val.examples.slice(s, s + p.microBatch))
                sum += (await readTidy(() => tf.sum(targetNll(model, b.input, b.targets, false))))[0]
                n += b.targets.tokens.length
              }
              return { valLoss: sum / n }
            }
          }
        })
        if (result.halted) {
          ctx.log(`halted after step ${result.rows.length} of ${result.totalSteps} (checkpoint saved)`)
          const halted: StageOutcome = { rows: {}, metrics: { halted: true, steps: result.rows.length, totalSteps: result.totalSteps } }
          return halted
        }
        const outDir = ctx.outputs["finetune"]
        yield* saveLora(outDir, model.config, model.lora!, doc.decoder.kind === "snapshot" ? { baseModel: doc.decoder.path } : {}).pipe(
          asStageError(STAGE)
        )
        const ftDoc: FinetuneDoc = {
          format: FINETUNE_FORMAT,
          version: 1,
          addedTokens,
          embeddingInit: doc.embeddingInit,
          embeddingSeed: doc.embeddingSeed,
          lora: { rank: loraConfig.rank, alpha: loraConfig.alpha, dropout: loraConfig.dropout, targets: [...loraConfig.targets] as Array<LoraTarget> },
          prompt: { instruction: p.instruction, appendEos: p.appendEos, maxSeqLen: p.maxSeqLen, maxForeignChars: p.maxForeignChars },
          steps: result.totalSteps
        }
        yield* writeJson(path.join(outDir, FINETUNE_CONFIG), ftDoc).pipe(asStageError(STAGE))
        const writer = yield* openTableWriter(ctx.outputs["finetune.metrics"], FINETUNE_METRICS_COLUMNS).pipe(asStageError(STAGE))
        yield* writer.write(result.rows.map((r) => Object.fromEntries(FINETUNE_METRICS_COLUMNS.map((c) => [c.name, r[c.name] ?? null])))).pipe(
          asStageError(STAGE)
        )
        const nRows = yield* writer.close.pipe(asStageError(STAGE))
        const first = result.rows[0]
        const last = result.rows[result.rows.length - 1]
        ctx.log(
          `trained ${result.totalSteps} steps on ${train.examples.length} examples (${backend}` +
            `${result.resumedFrom > 0 ? `, resumed from ${result.resumedFrom}` : ""}): loss ${(first["loss"] as number).toFixed(4)} → ` +
            `${(last["loss"] as number).toFixed(4)}` +
            (last["valLoss"] === null ? "" : `; val ${(last["valLoss"] as number).toFixed(4)}`)
        )
        const outcome: StageOutcome = {
          rows: { "finetune.metrics": nRows },
          metrics: {
            steps: result.totalSteps,
            resumedFrom: result.resumedFrom,
            trainExamples: train.examples.length,
            valExamples: val.examples.length,
            skippedTrain: train.skipped,
            skippedVal: val.skipped,
            finalLoss: last["loss"],
            finalValLoss: last["valLoss"]
          }
        }
        return outcome
      }), releaseModel)
  })
