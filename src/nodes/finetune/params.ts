/** Config section `finetune`: the direct LoRA fine-tune baseline (foreign text tokenised in the prompt). */
import { Schema } from "effect"
import { dflt, Size } from "../../schemas/fields.ts"
import { sftTrainFields } from "../../train/sftParams.ts"

export const FinetuneConfig = Schema.Struct({
  ...sftTrainFields,
  /** The foreign text in the prompt is cut to this many code points (paper: 256). */
  maxForeignChars: dflt(Size, 256)
})

export type FinetuneParams = typeof FinetuneConfig.Type
