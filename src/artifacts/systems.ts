/**
 * The three systems the evaluation stages (`generate`, `retrievalFull`) run, loaded once from their artifacts:
 *
 * - LLINK: the frozen decoder + the Stage B LoRA (`stageB/adapter/`), the frozen Stage A projector (`projector`), and
 *   the Stage B slot module (`stageB/slots.safetensors`: ForeignScale → gated adapter → expander), whose K vectors
 *   overwrite the `<f0>`…`<f{K−1}>` input rows.
 * - Base: the frozen decoder alone, reading the foreign text through its own tokenizer.
 * - Fine-tune: the frozen decoder + the direct fine-tune's LoRA (`finetune`, a PEFT adapter folder).
 *
 * Everything the trainers decided is read back from their artifacts (src/artifacts/stageB.ts): the added tokens and
 * their embedding-row rule (the decoder is loaded exactly as the trainer loaded it), K and the slot config, and each
 * system's prompt settings (instruction source; the fine-tune's foreign-text cut), so prompts here are built by the
 * trainers' own `promptOf` (src/train/sftData.ts). The decoder is loaded once when Stage B and the fine-tune agree on
 * the added tokens and their rows (they do when both come from one `models` document), else twice.
 */
import { Effect } from "effect"
import { asStageError } from "../pipeline/stageError.ts"
import { disposeLlama, type LlamaModel, loadDecoder, withLora } from "../models/llama.ts"
import { disposeLora, loadLora, type LoraAdapters } from "../models/lora.ts"
import * as Projector from "../models/projector.ts"
import { disposeSlots, type SlotModule, slotsFromHost } from "../models/slots.ts"
import { loadTokenizer, type TextTokenizer } from "../models/tokenizer.ts"
import { StageError } from "../pipeline/errors.ts"
import type { SftRow } from "../schemas/sft.ts"
import { loadProjectorDir } from "./projector.ts"
import { readModelsRef, type ResolvedModels } from "./models.ts"
import { type FinetuneDoc, readFinetuneDir, readStageBDir, readStageBDoc, slotChooserOf, type StageBDoc } from "./stageB.ts"
import { type PromptKind, promptOf, type PromptSettings, type SftExampleRow, slotCountOf } from "../train/sftData.ts"
import { type SlotChooser, slotCountFor } from "../prompts/slotPolicy.ts"

export interface EvalSystems {
  readonly models: ResolvedModels
  readonly stageBDoc: StageBDoc
  readonly finetuneDoc: FinetuneDoc
  /** The decoder tokenizer with Stage B's added tokens. */
  readonly tokenizer: TextTokenizer
  /** The decoder tokenizer with the fine-tune's added tokens (the same object when they agree). */
  readonly finetuneTokenizer: TextTokenizer
  /** The frozen decoder (no LoRA). */
  readonly base: LlamaModel
  /** The decoder with the Stage B LoRA. */
  readonly llink: LlamaModel
  /** The decoder with the direct fine-tune's LoRA. */
  readonly finetune: LlamaModel
  readonly projector: Projector.Projector
  readonly slots: SlotModule
  /** The slot module's K (K_max under a length policy). */
  readonly K: number
  /** Ids of `<f0>`…`<f{K−1}>`. */
  readonly slotIds: ReadonlyArray<number>
  /** Each example's K under Stage B's length policy (`slotPolicy` in its document); undefined: all K. */
  readonly chooser: SlotChooser | undefined
  /** Id of `<foreign_emb>` in the fine-tune's tokenizer. */
  readonly foreignEmbId: number
  readonly bosId: number
  readonly padId: number
  readonly dispose: () => void
}

const fail = (stage: string, message: string, file?: string) =>
  new StageError({ stage, message, ...(file === undefined ? {} : { file }) })

const sameRows = (a: Pick<StageBDoc, "addedTokens" | "embeddingInit" | "embeddingSeed">, b: typeof a): boolean =>
  a.embeddingInit === b.embeddingInit &&
  a.embeddingSeed === b.embeddingSeed &&
  a.addedTokens.length === b.addedTokens.length &&
  a.addedTokens.every((t, i) => t === b.addedTokens[i])

/** An sft row in the shape the trainers' prompt builder takes. */
export const asExampleRow = (r: SftRow): SftExampleRow => ({
  taskType: r.task_type,
  input: r.input,
  output: r.output,
  foreignRaw: r.foreign_raw,
  row: r.row
})

const settingsOf = (doc: { readonly prompt: { readonly instruction: PromptSettings["instruction"]; readonly appendEos: boolean; readonly maxSeqLen: number }; readonly addedTokens: ReadonlyArray<string> }): PromptSettings => ({
  instruction: doc.prompt.instruction,
  appendEos: doc.prompt.appendEos,
  maxSeqLen: doc.prompt.maxSeqLen,
  taskTypes: [],
  reserved: doc.addedTokens
})

type LlinkPromptSystems = Pick<EvalSystems, "stageBDoc" | "K" | "slotIds" | "chooser">

const llinkKind = (sys: LlinkPromptSystems): PromptKind & { readonly kind: "slots" } => ({
  kind: "slots",
  K: sys.K,
  slotIds: sys.slotIds,
  numbers: sys.stageBDoc.prompt.numbers ?? "off",
  chooser: sys.chooser
})

/** How many slots LLINK gives an example: K(x) under Stage B's length policy, else all K. */
export const llinkSlotCount = (sys: LlinkPromptSystems, row: SftRow): number => slotCountOf(asExampleRow(row), settingsOf(sys.stageBDoc), llinkKind(sys))

/** The Stage B prompt (the example's slot tokens, `slots` of them when the caller knows the count already, and the
 *  numerals when Stage B trained with them). */
export const llinkPromptOf = (sys: LlinkPromptSystems, row: SftRow, slots?: number): string =>
  promptOf(asExampleRow(row), settingsOf(sys.stageBDoc), llinkKind(sys), slots)

/**
 * Each row's LLINK slot count under the Stage B artifact's length policy, read without loading any model (only
 * Stage B's document and the encoder tokenizer); undefined when Stage B gives every example all K.
 */
export const llinkSlotCounts = (stage: string, inputs: Readonly<Record<string, string>>, rows: ReadonlyArray<SftRow>): Effect.Effect<Array<number> | undefined, StageError> =>
  Effect.gen(function*() {
    const doc = yield* readStageBDoc(inputs["stageB"]).pipe(asStageError(stage))
    if (doc.slotPolicy === undefined) return undefined
    const models = yield* readModelsRef(inputs["models"]).pipe(asStageError(stage))
    const chooser = yield* slotChooserOf(doc.slotPolicy, models.encoderDir).pipe(asStageError(stage))
    return rows.map((r) => slotCountFor(r.foreign_raw, doc.slots, chooser, doc.addedTokens))
  })

/** The fine-tune's training prompt (the foreign text cut as in training). */
export const finetunePromptOf = (sys: Pick<EvalSystems, "finetuneDoc">, row: SftRow): string =>
  promptOf(asExampleRow(row), settingsOf(sys.finetuneDoc), { kind: "text", maxForeignChars: sys.finetuneDoc.prompt.maxForeignChars })

/**
 * Loads every system from the stage inputs `models`, `projector`, `stageB`, `finetune`. The caller must call
 * `dispose()` (use `Effect.acquireUseRelease`).
 */
export const loadEvalSystems = (stage: string, inputs: Readonly<Record<string, string>>): Effect.Effect<EvalSystems, StageError> =>
  Effect.gen(function*() {
    const models = yield* readModelsRef(inputs["models"]).pipe(asStageError(stage))
    const stageBDir = yield* readStageBDir(inputs["stageB"]).pipe(asStageError(stage))
    const finetuneDoc = yield* readFinetuneDir(inputs["finetune"]).pipe(asStageError(stage))
    const doc = stageBDir.doc
    const tokenizer = yield* loadTokenizer(models.decoderDir, { addedTokens: doc.addedTokens }).pipe(asStageError(stage))
    const shared = sameRows(doc, finetuneDoc)
    const finetuneTokenizer = shared
      ? tokenizer
      : yield* loadTokenizer(models.decoderDir, { addedTokens: finetuneDoc.addedTokens }).pipe(asStageError(stage))
    const K = doc.slots
    const slotIds: Array<number> = []
    for (const t of doc.slotTokens) {
      const id = tokenizer.tokenToId(t)
      if (id === undefined) return yield* fail(stage, `the decoder tokenizer has no ${t}`, models.decoderDir)
      slotIds.push(id)
    }
    if (slotIds.length !== K || stageBDir.slotConfig.slots !== K) {
      return yield* fail(stage, `the Stage B artifact names ${slotIds.length} slot tokens and a ${stageBDir.slotConfig.slots}-slot module for K = ${K}`, inputs["stageB"])
    }
    const foreignEmbId = finetuneTokenizer.tokenToId(models.doc.foreignEmbToken)
    if (foreignEmbId === undefined) return yield* fail(stage, `the decoder tokenizer has no ${models.doc.foreignEmbToken}`, models.decoderDir)
    const bosId = tokenizer.bosId
    const padId = tokenizer.eosId
    if (bosId === undefined || padId === undefined) return yield* fail(stage, "the decoder tokenizer lacks a BOS or EOS token", models.decoderDir)
    const chooser = yield* slotChooserOf(doc.slotPolicy, models.encoderDir).pipe(asStageError(stage))
    const proj = yield* loadProjectorDir(inputs["projector"]).pipe(asStageError(stage))
    if (proj.config.dOut !== stageBDir.slotConfig.dim) {
      return yield* fail(stage, `the projector outputs ${proj.config.dOut} values but the slot module expects ${stageBDir.slotConfig.dim}`, inputs["projector"])
    }

    const decoders: Array<LlamaModel> = []
    const adapters: Array<LoraAdapters> = []
    let projector: Projector.Projector | undefined
    let slots: SlotModule | undefined
    const release = () => {
      if (slots !== undefined) disposeSlots(slots)
      if (projector !== undefined) Projector.dispose(projector)
      for (const l of adapters) disposeLora(l)
      for (const d of decoders) disposeLlama(d)
    }
    const decoderFor = (rows: Pick<StageBDoc, "addedTokens" | "embeddingInit" | "embeddingSeed">) =>
      loadDecoder(models.decoderDir, { addedTokens: rows.addedTokens, embeddingInit: rows.embeddingInit, embeddingSeed: rows.embeddingSeed }).pipe(
        asStageError(stage),
        Effect.tap((d) => Effect.sync(() => void decoders.push(d)))
      )
    const loraOf = (dir: string, model: LlamaModel) =>
      loadLora(dir, model.config).pipe(
        asStageError(stage),
        Effect.tap((l) => Effect.sync(() => void adapters.push(l)))
      )
    return yield* Effect.gen(function*() {
      const base = yield* decoderFor(doc)
      const ftBase = shared ? base : yield* decoderFor(finetuneDoc)
      if (base.config.hidden_size !== stageBDir.slotConfig.dim) {
        return yield* fail(stage, `the decoder's hidden size ${base.config.hidden_size} differs from the slot width ${stageBDir.slotConfig.dim}`, models.decoderDir)
      }
      const loraB = yield* loraOf(stageBDir.adapterDir, base)
      const loraF = yield* loraOf(inputs["finetune"], ftBase)
      projector = yield* Effect.try({
        try: () => Projector.fromHost(proj.config, proj.host, { trainable: false }),
        catch: (cause) => new StageError({ stage, message: `cannot build the projector: ${String(cause)}`, cause })
      })
      slots = yield* Effect.try({
        try: () => slotsFromHost(stageBDir.slotConfig, stageBDir.slotHost, { trainable: false }),
        catch: (cause) => new StageError({ stage, message: `cannot build the slot module: ${String(cause)}`, cause })
      })
      const systems: EvalSystems = {
        models,
        stageBDoc: doc,
        finetuneDoc,
        tokenizer,
        finetuneTokenizer,
        base,
        llink: withLora(base, loraB),
        finetune: withLora(ftBase, loraF),
        projector,
        slots,
        K,
        slotIds,
        chooser,
        foreignEmbId,
        bosId,
        padId,
        dispose: release
      }
      return systems
    }).pipe(Effect.tapError(() => Effect.sync(release)))
  })

/** Rows `rows` of a row-major matrix [*, dim] as one Float32Array. */
export const gatherRows = (data: Float32Array, dim: number, rows: ReadonlyArray<number>): Float32Array => {
  const out = new Float32Array(rows.length * dim)
  rows.forEach((r, i) => out.set(data.subarray(r * dim, (r + 1) * dim), i * dim))
  return out
}
