/**
 * Config section `stageB`: slot injection with LoRA (paper §4.2), plus K from `models.slots`. Defaults are the
 * paper's values, the authors' code where the paper is silent.
 */
import { Schema } from "effect"
import { dflt, Count, NonNegative, Positive, Real, Size } from "../../schemas/fields.ts"
import { NumbersMode, sftTrainFields } from "../../train/sftParams.ts"
import { SlotPolicy } from "../../prompts/slotPolicy.ts"

export const ScaleInit = Schema.Literals(["median-embedding-norm", "one"])
export const ContrastSign = Schema.Literals(["paper", "code"])
export const CosForm = Schema.Literals(["one-minus-cos", "mse"])

export const StageBConfig = Schema.Struct({
  ...sftTrainFields,
  /** Peak learning rate of the adapter and expander (paper/code 3e-5)… */
  lrSlots: dflt(NonNegative, 3e-5),
  /** …and of ForeignScale's scalar (no weight decay, as in the code; the code uses 5e-4). */
  lrScale: dflt(NonNegative, 3e-5),
  /** ForeignScale's initial scalar: the median row norm of the embedding matrix (paper) or 1.0 (code). */
  scaleInit: dflt(ScaleInit, "median-embedding-norm"),
  /** Hidden width of the gated adapter (0 = d, as the code). */
  adapterHidden: dflt(Count, 0),
  /** Initial gate parameter g (the gate is clamp(tanh g, 0, gateMax)). */
  gateInit: dflt(Real, 0.5),
  gateMax: dflt(NonNegative, 0.7),
  /** Usage contrast: weight, every how many optimizer steps (0 = never), and sign ("paper": max(0, L_SFT − L_zero);
   *  "code": max(0, L_zero − L_SFT)). */
  contrastWeight: dflt(NonNegative, 0.05),
  contrastEvery: dflt(Count, 3),
  contrastSign: dflt(ContrastSign, "paper"),
  /** Cosine alignment of the mean slot to h_E (code 0.05): "one-minus-cos" or the code's MSE of unit vectors. */
  cosWeight: dflt(NonNegative, 0.05),
  cosForm: dflt(CosForm, "one-minus-cos"),
  /** InfoNCE of mean slots vs teachers in the micro-batch (paper 0.01, code 1e-3), temperature τ. */
  nceWeight: dflt(NonNegative, 0.01),
  nceTau: dflt(Positive, 0.07),
  /** Beyond the paper: "copy" hands the decoder the foreign text's numerals (ASCII) on a line after the slots, so
   *  exact figures need not survive the slots' compression; "off" is the paper's prompt. */
  numbers: dflt(NumbersMode, "off"),
  /** Beyond the paper: how many slots an example gets (src/prompts/slotPolicy.ts). Absent: all `models.slots` (the
   *  paper's fixed K); `{ "fixed": K }`; `{ "byLength": { "min": 2, "max": 8, "tokensPerSlot": 3 } }`: the first
   *  clamp(⌈encoder tokens / tokensPerSlot⌉, min, max) of `max` slots. */
  slotPolicy: Schema.optionalKey(SlotPolicy)
})

/** The section plus K (`models.slots`, the only K of a run). */
export const StageBParams = Schema.Struct({ ...StageBConfig.fields, slots: Size })
export type StageBParams = typeof StageBParams.Type
