/**
 * The index documents of the `stageB` folder (`config.json`) and the `finetune` folder (`llink-finetune.json`),
 * written by those stages and read by generate and retrievalFull (see src/artifacts/stageB.ts).
 */
import { Schema } from "effect"
import { EmbeddingInitRule } from "./fields.ts"
import { InstructionSource, LoraTarget, NumbersMode } from "../train/sftParams.ts"
import { ByLengthSlots } from "../prompts/slotPolicy.ts"

export const STAGEB_FORMAT = "llink-stageB"
export const FINETUNE_FORMAT = "llink-finetune"
export const STAGEB_CONFIG = "config.json"
export const STAGEB_ADAPTER = "adapter"
export const FINETUNE_CONFIG = "llink-finetune.json"

const LoraDoc = Schema.Struct({
  rank: Schema.Number,
  alpha: Schema.Number,
  dropout: Schema.Number,
  targets: Schema.Array(LoraTarget)
})

const SlotConfigDoc = Schema.Struct({
  dim: Schema.Number,
  slots: Schema.Number,
  adapterHidden: Schema.Number,
  gateInit: Schema.Number,
  gateMax: Schema.Number,
  lnEps: Schema.Number,
  scaleInit: Schema.Number
})

export const StageBDoc = Schema.Struct({
  format: Schema.Literal(STAGEB_FORMAT),
  version: Schema.Literal(1),
  /** K (K_max under a length policy). */
  slots: Schema.Number,
  /** `stageB.slotPolicy` when it is `byLength` (each example then uses the first K(x) slots); absent: all K. */
  slotPolicy: Schema.optionalKey(ByLengthSlots),
  /** `<f0>` … `<f{K−1}>`. */
  slotTokens: Schema.Array(Schema.String),
  /** The decoder's added tokens, in id order (the `models` document's, plus any slot token it lacked). */
  addedTokens: Schema.Array(Schema.String),
  embeddingInit: EmbeddingInitRule,
  embeddingSeed: Schema.Number,
  slotConfig: SlotConfigDoc,
  lora: LoraDoc,
  prompt: Schema.Struct({
    instruction: InstructionSource,
    appendEos: Schema.Boolean,
    maxSeqLen: Schema.Number,
    /** The number pathway (`stageB.numbers`); absent: "off" (so a run with it off writes the document it always did). */
    numbers: Schema.optionalKey(NumbersMode)
  }),
  /** Optimizer steps trained. */
  steps: Schema.Number
})
export type StageBDoc = typeof StageBDoc.Type

export const FinetuneDoc = Schema.Struct({
  format: Schema.Literal(FINETUNE_FORMAT),
  version: Schema.Literal(1),
  addedTokens: Schema.Array(Schema.String),
  embeddingInit: EmbeddingInitRule,
  embeddingSeed: Schema.Number,
  lora: LoraDoc,
  prompt: Schema.Struct({
    instruction: InstructionSource,
    appendEos: Schema.Boolean,
    maxSeqLen: Schema.Number,
    maxForeignChars: Schema.Number
  }),
  steps: Schema.Number
})
export type FinetuneDoc = typeof FinetuneDoc.Type
