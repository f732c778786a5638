/**
 * The `stageB` stage's work: slot injection with LoRA (paper §4.2).
 *
 * Per training example (an `sft.train` row): z_F = `zF.train[row]` → frozen Stage A projector (evaluation mode) →
 * slot module (ForeignScale → gated adapter → expander → K slots, src/models/slots.ts) → the K vectors overwrite the
 * input embeddings at `<f0>`…`<f{K−1}>` of the prompt (src/prompts/slots.ts) → the decoder with LoRA. Trainable: the
 * LoRA adapters (lr `lrLora`, weight decay), the adapter and expander (`lrSlots`, weight decay) and the ForeignScale
 * scalar (`lrScale`, no weight decay, as the code). Frozen: the decoder, its embeddings (the reserved rows start as the
 * `models` document says) and the projector.
 *
 * Objective per micro-batch (src/train/stageBLoss.ts): L_SFT over the target tokens; on every `contrastEvery`-th
 * optimizer step also L_zero (slots removed) and the usage contrast; the cosine and InfoNCE auxiliaries of the mean
 * slot against h_E = `hE.train[row]`. Loop, schedule, clipping and exact resume: src/train/sftLoop.ts.
 *
 * Metrics (one row per optimizer step, micro-batch means): `loss` (total), `lsft`, `lzero` and `gap` = L_zero − L_SFT
 * (contrast steps only, else null), `contrast` (weighted), `cos`, `nce` (unweighted), `lr` (LoRA), `lrSlots`,
 * `lrScale`, `gradNorm` (before clipping), `gate` (the adapter gate), `scale` (ForeignScale), and on validation steps
 * `valLoss` (L_SFT over sft.val target tokens, no dropout) and `valLzero` (the same without slots).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { asStageError } from "../../pipeline/stageError.ts"
import { loadModelConfig } from "../../models/hfconfig.ts"
import type { LlamaModel } from "../../models/llama.ts"
import { disposeLlama, loadDecoder } from "../../models/llama.ts"
import type { LoraConfig, LoraTarget } from "../../models/lora.ts"
import { disposeLora, LORA_TARGETS, saveLora } from "../../models/lora.ts"
import * as Projector from "../../models/projector.ts"
import { deriveSeed, makeRng } from "../../models/rng.ts"
import type { SlotConfig, SlotModule } from "../../models/slots.ts"
import { adapterGate, disposeSlots, initSlots, makeSlotConfig, resolveScaleInit, saveSlots, slotOverrides, slotsFromZ } from "../../models/slots.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter } from "../../formats/parquet/table.ts"
import { STAGEB_METRICS_COLUMNS } from "./metrics.ts"
import type { StageBParams } from "./params.ts"
import { readFloat32, readTidy } from "../../backend/read.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readModelsRef } from "../../artifacts/models.ts"
import { loadProjectorDir } from "../../artifacts/projector.ts"
import { isContrastStep, lmTargets, stageBLoss, targetNll } from "../../train/stageBLoss.ts"
import type { StageBLossConfig } from "../../train/stageBLoss.ts"
import type { StageBDoc } from "../../artifacts/stageB.ts"
import { SLOTS_FILE, slotChooserOf, STAGEB_ADAPTER, STAGEB_CONFIG, STAGEB_FORMAT, writeJson } from "../../artifacts/stageB.ts"
import { drawSlots, maxSlots, policyProblem } from "../../prompts/slotPolicy.ts"
import type { EncodedRow, MatrixRows, PromptSettings } from "../../train/sftData.ts"
import { gatherRows, loadSftSets, readMatrixRows } from "../../train/sftData.ts"
import type { MetricsRow, ParamGroup } from "../../train/sftLoop.ts"
import { dropoutModel, loopSettingsOf, loraGroupVariables, runLoop } from "../../train/sftLoop.ts"
import { padBatch, slotTokens } from "../../prompts/slots.ts"
import { describeError } from "../../errors/describe.ts"

export type { StageBParams }
export { STAGEB_METRICS_COLUMNS }

const STAGE = "stageB"

export interface StageBRunOptions {
  /** Stop with a checkpoint after this many optimizer steps, as a crash would (tests of resume). */
  readonly haltAfter?: number
}


const LOG_KEYS = ["loss", "lsft", "lzero", "contrast", "cos", "nce"] as const
const EVAL_KEYS = ["valLoss", "valLzero"] as const

const fail = (message: string, file?: string) => (cause: unknown): StageError =>
  new StageError({
    stage: STAGE,
    message: `${message}: ${describeError(cause)}`,
    ...(file === undefined ? {} : { file }),
    cause
  })

interface Resources {
  readonly model: LlamaModel
  readonly proj: Projector.Projector
  readonly slots: SlotModule
}

const release = (r: Resources) =>
  Effect.sync(() => {
    if (r.model.lora !== undefined) disposeLora(r.model.lora)
    disposeLlama(r.model)
    Projector.dispose(r.proj)
    disposeSlots(r.slots)
  })

let instance = 0

export const runStageB = (ctx: StageContext<StageBParams>, options?: StageBRunOptions): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const backend = (yield* startBackend(STAGE)).tfBackend
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    const doc = models.doc
    if (doc.slots !== p.slots) {
      return yield* new StageError({
        stage: STAGE,
        message: `models.slots is ${p.slots} but the models document has ${doc.slots} slot tokens`,
        file: ctx.inputs["models"]
      })
    }
    const policyError = policyProblem(p.slotPolicy, doc.slots)
    if (policyError !== undefined) return yield* new StageError({ stage: STAGE, message: policyError })
    /** The slot module's K: all of models.slots, the policy's fixed K, or its byLength max. */
    const K = maxSlots(p.slotPolicy, p.slots)
    const chooser = yield* slotChooserOf(p.slotPolicy, models.encoderDir).pipe(asStageError(STAGE))
    const slotNames = slotTokens(K)
    const addedTokens = [...doc.addedTokens, ...slotNames.filter((t) => !doc.addedTokens.includes(t))]
    const tokenizer = yield* loadTokenizer(models.decoderDir, { addedTokens }).pipe(asStageError(STAGE))
    const slotIds = slotNames.map((t) => tokenizer.tokenToId(t))
    if (slotIds.some((id) => id === undefined)) return yield* new StageError({ stage: STAGE, message: "a slot token has no id in the decoder tokenizer" })
    const padId = tokenizer.padId ?? tokenizer.eosId ?? 0

    // ---- data
    const settings: PromptSettings = {
      instruction: p.instruction,
      appendEos: p.appendEos,
      maxSeqLen: p.maxSeqLen,
      taskTypes: p.taskTypes,
      reserved: addedTokens
    }
    const kind = { kind: "slots" as const, K, slotIds: slotIds as Array<number>, numbers: p.numbers, chooser }
    const { train, val } = yield* loadSftSets(
      STAGE,
      { train: ctx.inputs["sft.train"], val: ctx.inputs["sft.val"] },
      tokenizer,
      settings,
      kind,
      p
    )
    const wanted = [...train.examples, ...val.examples].map((e) => e.row)
    const zF = yield* readMatrixRows(STAGE, ctx.inputs["zF.train"], wanted)
    const hE = yield* readMatrixRows(STAGE, ctx.inputs["hE.train"], wanted)
    const projDir = yield* loadProjectorDir(ctx.inputs["projector"]).pipe(asStageError(STAGE))
    const projConfig = projDir.config
    const decoderConfig = yield* loadModelConfig(models.decoderDir).pipe(asStageError(STAGE))
    if (decoderConfig.kind !== "llama") return yield* new StageError({ stage: STAGE, message: `${models.decoderDir} is not a Llama decoder` })
    const H = decoderConfig.config.hidden_size
    const baseVocab = decoderConfig.config.vocab_size
    if (zF.dim !== projConfig.dIn || projConfig.dOut !== H || hE.dim !== H) {
      return yield* new StageError({
        stage: STAGE,
        message: `widths disagree: zF ${zF.dim} vs projector dIn ${projConfig.dIn}; projector dOut ${projConfig.dOut}, hE ${hE.dim}, decoder hidden ${H}`
      })
    }

    const loraConfig: LoraConfig = {
      rank: p.loraRank,
      alpha: p.loraAlpha,
      dropout: p.loraDropout,
      targets: LORA_TARGETS.filter((t) => p.loraTargets.includes(t))
    }
    const lossConfig: StageBLossConfig = {
      contrastWeight: p.contrastWeight,
      contrastEvery: p.contrastEvery,
      contrastSign: p.contrastSign,
      cosWeight: p.cosWeight,
      cosForm: p.cosForm,
      nceWeight: p.nceWeight,
      nceTau: p.nceTau
    }
    const acquire = Effect.gen(function*() {
      const model = yield* loadDecoder(models.decoderDir, {
        addedTokens,
        embeddingInit: doc.embeddingInit,
        embeddingSeed: doc.embeddingSeed,
        lora: { config: loraConfig, seed: deriveSeed(p.seed, "stageB.lora") }
      }).pipe(asStageError(STAGE))
      return yield* Effect.tryPromise({
        try: async (): Promise<Resources> => {
          const id = instance++
          const proj = Projector.fromHost(projConfig, projDir.host, { trainable: false, prefix: `stageB${id}.projector/` })
          const embed = p.scaleInit === "median-embedding-norm" ? await readFloat32(model.embed) : new Float32Array(0)
          const scaleInit = resolveScaleInit(p.scaleInit, { data: embed, rows: baseVocab, dim: H })
          const slotConfig: SlotConfig = makeSlotConfig(H, K, { adapterHidden: p.adapterHidden, gateInit: p.gateInit, gateMax: p.gateMax, scaleInit })
          const slots = initSlots(slotConfig, deriveSeed(p.seed, "stageB.slots"), { prefix: `stageB${id}.slots/` })
          return { model, proj, slots }
        },
        catch: (cause) => {
          if (model.lora !== undefined) disposeLora(model.lora)
          disposeLlama(model)
          return fail("cannot set up training")(cause)
        }
      })
    })

    return yield* Effect.acquireUseRelease(acquire, ({ model, proj, slots }) =>
      Effect.gen(function*() {
        const slotVars = new Map<string, tf.Variable>()
        const scaleVars = new Map<string, tf.Variable>()
        for (const [name, v] of slots.params) (name === "scale.scale" ? scaleVars : slotVars).set(`slots/${name}`, v)
        const groups: Array<ParamGroup> = [
          { name: "lora", variables: loraGroupVariables(model), lr: p.lrLora, weightDecay: p.weightDecay },
          { name: "slots", variables: slotVars, lr: p.lrSlots, weightDecay: p.weightDecay },
          { name: "scale", variables: scaleVars, lr: p.lrScale, weightDecay: 0 }
        ]

        /**
         * Tensors of one batch of encoded rows: ids, mask, slot positions, targets, z and h rows. `draw` (training
         * under a length policy) gives each row a K drawn uniformly from [min, its own K] (`byK`); else its own K.
         */
        const batchOf = (exs: ReadonlyArray<EncodedRow>, z: MatrixRows, h: MatrixRows, draw?: () => number) => {
          const padded = padBatch(exs.map((e) => {
            if (draw === undefined || e.byK === undefined) return e.example
            const lo = e.byK[0].slotPositions.length
            return e.byK[drawSlots(lo, e.example.slotPositions.length, draw()) - lo]
          }), padId)
          const rows = exs.map((e) => e.row)
          return {
            padded,
            targets: lmTargets(padded.labels),
            z: tf.tensor2d(gatherRows(z, rows), [exs.length, z.dim]),
            h: tf.tensor2d(gatherRows(h, rows), [exs.length, h.dim])
          }
        }

        const identity = JSON.stringify({
          params: p,
          K,
          addedTokens,
          embeddingInit: doc.embeddingInit,
          embeddingSeed: doc.embeddingSeed,
          train: train.examples.length,
          val: val.examples.length,
          H,
          dIn: zF.dim
        })
        const result = yield* runLoop({
          stage: STAGE,
          settings: loopSettingsOf(p, train.examples.length),
          groups,
          logKeys: LOG_KEYS,
          evalKeys: EVAL_KEYS,
          identity,
          checkpointRoot: path.join(ctx.scratchDir, "checkpoints"),
          log: ctx.log,
          progress: ctx.progress,
          ...(options?.haltAfter === undefined ? {} : { haltAfter: options.haltAfter }),
          hooks: {
            micro: (step, micro, indices) => {
              const rng = chooser === undefined ? undefined : makeRng(deriveSeed(p.seed, `stageB.slots/${step}/${micro}`))
              const b = batchOf(Array.from(indices, (i) => train.examples[i]), zF, hE, rng === undefined ? undefined : () => rng.uniform())
              const vectors = slotsFromZ(proj, slots, b.z)
              const terms = stageBLoss(
                {
                  model: dropoutModel(model, p.seed, step, micro, "sft"),
                  zeroModel: dropoutModel(model, p.seed, step, micro, "zero"),
                  input: { ids: b.padded.ids, attentionMask: b.padded.attentionMask },
                  slotPositions: b.padded.slotPositions,
                  targets: b.targets,
                  slots: vectors,
                  teacher: b.h,
                  withZero: isContrastStep(step, p.contrastEvery),
                  training: true
                },
                lossConfig
              )
              return {
                loss: terms.total,
                logs: { loss: terms.total, lsft: terms.lsft, lzero: terms.lzero, contrast: terms.contrast, cos: terms.cos, nce: terms.nce }
              }
            },
            evaluate: async () => {
              if (val.examples.length === 0) return { valLoss: null, valLzero: null }
              let sumS = 0
              let sumZ = 0
              let n = 0
              for (let s = 0; s < val.examples.length; s += p.microBatch) {
                const chunk = val.examples.slice(s, s + p.microBatch)
                let tokens = 0
                const sums = await readTidy(() => {
                  const b = batchOf(chunk, zF, hE)
                  const input = { ids: b.padded.ids, attentionMask: b.padded.attentionMask }
                  const vectors = slotsFromZ(proj, slots, b.z)
                  const withSlots = targetNll(model, { ...input, overrides: slotOverrides(vectors, b.padded.slotPositions) }, b.targets, false)
                  const without = targetNll(model, input, b.targets, false)
                  tokens = b.targets.tokens.length
                  return tf.stack([tf.sum(withSlots), tf.sum(without)])
                })
                sumS += sums[0]
                sumZ += sums[1]
                n += tokens
              }
              return { valLoss: sumS / n, valLzero: sumZ / n }
            },
            afterStep: async () => {
              const [gate, scale] = await readTidy(() => tf.stack([tf.reshape(adapterGate(slots), []), tf.reshape(slots.params.get("scale.scale")!, [])]))
              return { gate, scale }
            }
          }
        })
        const rows: Array<MetricsRow> = result.rows.map((r) => ({
          ...r,
          gap: r["lzero"] === null || r["lzero"] === undefined || r["lsft"] === null ? null : (r["lzero"] as number) - (r["lsft"] as number)
        }))
        if (result.halted) {
          ctx.log(`halted after step ${rows.length} of ${result.totalSteps} (checkpoint saved)`)
          const halted: StageOutcome = { rows: {}, metrics: { halted: true, steps: rows.length, totalSteps: result.totalSteps } }
          return halted
        }

        // ---- outputs
        const outDir = ctx.outputs["stageB"]
        yield* Effect.try({ try: () => fs.mkdirSync(outDir, { recursive: true }), catch: fail(`cannot create ${outDir}`, outDir) })
        yield* saveSlots(path.join(outDir, SLOTS_FILE), slots).pipe(asStageError(STAGE))
        yield* saveLora(path.join(outDir, STAGEB_ADAPTER), model.config, model.lora!, doc.decoder.kind === "snapshot" ? { baseModel: doc.decoder.path } : {}).pipe(
          asStageError(STAGE)
        )
        const stageBDoc: StageBDoc = {
          format: STAGEB_FORMAT,
          version: 1,
          slots: K,
          ...(p.slotPolicy !== undefined && "byLength" in p.slotPolicy ? { slotPolicy: p.slotPolicy } : {}),
          slotTokens: slotNames,
          addedTokens,
          embeddingInit: doc.embeddingInit,
          embeddingSeed: doc.embeddingSeed,
          slotConfig: { ...slots.config },
          lora: { rank: loraConfig.rank, alpha: loraConfig.alpha, dropout: loraConfig.dropout, targets: [...loraConfig.targets] as Array<LoraTarget> },
          prompt: { instruction: p.instruction, appendEos: p.appendEos, maxSeqLen: p.maxSeqLen, ...(p.numbers === "off" ? {} : { numbers: p.numbers }) },
          steps: result.totalSteps
        }
        yield* writeJson(path.join(outDir, STAGEB_CONFIG), stageBDoc).pipe(asStageError(STAGE))
        const writer = yield* openTableWriter(ctx.outputs["stageB.metrics"], STAGEB_METRICS_COLUMNS).pipe(asStageError(STAGE))
        yield* writer.write(rows.map((r) => Object.fromEntries(STAGEB_METRICS_COLUMNS.map((c) => [c.name, r[c.name] ?? null])))).pipe(asStageError(STAGE))
        const nRows = yield* writer.close.pipe(asStageError(STAGE))
        const first = rows[0]
        const last = rows[rows.length - 1]
        const lastGap = [...rows].reverse().find((r) => r["gap"] !== null)
        ctx.log(
          `trained ${result.totalSteps} steps on ${train.examples.length} examples (${backend}` +
            `${result.resumedFrom > 0 ? `, resumed from ${result.resumedFrom}` : ""}): L_SFT ${(first["lsft"] as number).toFixed(4)} → ` +
            `${(last["lsft"] as number).toFixed(4)}` +
            (lastGap === undefined ? "" : `; last L_zero − L_SFT ${(lastGap["gap"] as number).toFixed(4)}`) +
            (last["valLoss"] === null ? "" : `; val ${(last["valLoss"] as number).toFixed(4)} (without slots ${(last["valLzero"] as number).toFixed(4)})`)
        )
        const outcome: StageOutcome = {
          rows: { "stageB.metrics": nRows },
          metrics: {
            steps: result.totalSteps,
            resumedFrom: result.resumedFrom,
            trainExamples: train.examples.length,
            valExamples: val.examples.length,
            skippedTrain: train.skipped,
            skippedVal: val.skipped,
            slots: K,
            ...(chooser === undefined ? {} : { meanSlots: train.examples.reduce((a, e) => a + e.example.slotPositions.length, 0) / train.examples.length }),
            finalLsft: last["lsft"],
            finalValLoss: last["valLoss"],
            finalValLzero: last["valLzero"]
          }
        }
        return outcome
      }), release)
  })
