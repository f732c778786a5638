/**
 * The config fields the two supervised fine-tuning sections share, `stageB` and `finetune` (data, LoRA, optimizer,
 * schedule, checkpoints), with their ranges. Defaults are the paper's values, the authors' code where it is silent.
 */
import { Schema } from "effect"
import { Beta, Count, dflt, Dropout, Fraction, NonNegative, Positive, Seed, Size } from "../schemas/fields.ts"

export const LoraTarget = Schema.Literals(["q", "k", "v", "o", "gate", "up", "down"])
export const InstructionSource = Schema.Literals(["input", "taskType"])
/** The number pathway (`stageB.numbers`): "off" (the paper) or "copy" (the foreign text's numerals, as ASCII, on a
 *  line after the slots: src/text/numerals.ts, src/prompts/slots.ts). */
export const NumbersMode = Schema.Literals(["off", "copy"])
export type NumbersMode = typeof NumbersMode.Type

export const sftTrainFields = {
  /** Sequence length cap: BOS + prompt + target tokens (code: 768); target tokens beyond it are dropped. */
  maxSeqLen: dflt(Schema.Int.check(Schema.isGreaterThanOrEqualTo(2, { message: "Expected a whole number ≥ 2" })), 768),
  /** `{instruction}` of the prompt: "input" (from the sft `input`, see src/prompts/slots.ts) or "taskType" (the
   *  code's fixed instruction per task type). */
  instruction: dflt(InstructionSource, "input"),
  /** Append EOS to every target (and train it). The code does not. */
  appendEos: dflt(Schema.Boolean, false),
  /** Train only on these task types (empty = all; the code trains on translate_to_english only). */
  taskTypes: dflt(Schema.Array(Schema.String), []),
  /** Use at most this many sft.train rows (0 = all). */
  maxTrainRows: dflt(Count, 0),
  loraRank: dflt(Size, 16),
  loraAlpha: dflt(NonNegative, 16),
  loraDropout: dflt(Dropout, 0.05),
  /** Adapted projections (paper: attention and MLP; the code leaves out "gate"). */
  loraTargets: dflt(
    Schema.Array(LoraTarget).check(Schema.isMinLength(1, { message: "Expected at least one LoRA target" })),
    ["q", "k", "v", "o", "gate", "up", "down"]
  ),
  /** Peak learning rate of the LoRA weights. */
  lrLora: dflt(NonNegative, 1e-4),
  weightDecay: dflt(NonNegative, 0.01),
  beta1: dflt(Beta, 0.9),
  beta2: dflt(Beta, 0.999),
  eps: dflt(Positive, 1e-8),
  /** Global L2 gradient-norm clip (code: 1.0). */
  gradClip: dflt(Positive, 1.0),
  /** Linear warmup over this fraction of the steps, then linear decay to 0 (HF linear schedule). */
  warmupFraction: dflt(Fraction, 0.15),
  epochs: dflt(Size, 3),
  microBatch: dflt(Size, 8),
  /** Micro-batches per optimizer step (gradient accumulation). */
  accumulation: dflt(Size, 16),
  /** Stop after this many optimizer steps (0 = the full `epochs`); the schedule spans the steps actually run. */
  maxSteps: dflt(Count, 0),
  /** Validation loss every this many steps and at the end (0 = only at the end). */
  evalEvery: dflt(Count, 300),
  /** Validate on at most this many sft.val rows (0 = all). */
  valMaxRows: dflt(Count, 0),
  /** Resumable checkpoint every this many steps (0 = never). */
  checkpointEvery: dflt(Count, 100),
  seed: dflt(Seed, 17)
}

/** The decoded shared fields. */
export type SftTrainParams = Schema.Struct<typeof sftTrainFields>["Type"]

/** The shared fields without the LoRA ones: the peer baselines (LangBridge, MindMerger) train only their bridge,
 *  with the decoder frozen and no LoRA, as in their papers. Each peer sets its own learning rate and defaults. */
export const bridgeTrainFields = (() => {
  const { loraRank: _r, loraAlpha: _a, loraDropout: _d, loraTargets: _t, lrLora: _l, ...rest } = sftTrainFields
  return rest
})()

/** What a peer stage reads from other sections: whether `baselines` lists it, and the encoder cuts of `encode`. */
export const peerRunFields = {
  enabled: Schema.Boolean,
  /** `encode.maxChars`, `encode.maxTokens`, `encode.batchSize`. */
  encoderMaxChars: Size,
  encoderMaxTokens: Size,
  encoderBatch: Size
}

/** A peer stage's params: its own section plus `peerRunFields` from the rest of the config. */
export const selectPeerParams = (
  name: string,
  section: object,
  baselines: ReadonlyArray<string>,
  encode: { readonly maxChars: number; readonly maxTokens: number; readonly batchSize: number }
) => ({
  ...section,
  enabled: baselines.includes(name),
  encoderMaxChars: encode.maxChars,
  encoderMaxTokens: encode.maxTokens,
  encoderBatch: encode.batchSize
})
