/** Config section `report`. */
import { Schema } from "effect"
import { Count, dflt } from "../../schemas/fields.ts"
import { NumbersMode } from "../../train/sftParams.ts"
import { SlotPolicy } from "../../prompts/slotPolicy.ts"

export const ReportConfig = Schema.Struct({
  title: dflt(Schema.String, "LLINK reproduction report"),
  /** Sample generations shown side by side. */
  samples: dflt(Count, 10)
})

/** The section plus `stageB.numbers`, `stageB.slotPolicy` and `generate.copyNumbers` (only when "on"), which the
 *  report states beside the generation figures. */
export const ReportParams = Schema.Struct({
  ...ReportConfig.fields,
  numbers: NumbersMode,
  slotPolicy: Schema.optionalKey(SlotPolicy),
  copyNumbers: Schema.optionalKey(Schema.Literal("on"))
})
export type ReportParams = typeof ReportParams.Type
