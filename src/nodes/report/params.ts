/** Config section `report`. */
import { Schema } from "effect"
import { Count, dflt } from "../../schemas/fields.ts"

export const ReportConfig = Schema.Struct({
  title: dflt(Schema.String, "LLINK reproduction report"),
  /** Sample generations shown side by side. */
  samples: dflt(Count, 10)
})

export type ReportParams = typeof ReportConfig.Type
