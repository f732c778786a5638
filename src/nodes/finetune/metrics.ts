/** The `finetune.metrics` table: one row per optimizer step (validation loss on validation steps). */
import { float64, int32, nullable, tableShape } from "../../formats/parquet/shape.ts"

export const FinetuneMetricsTable = tableShape({
  step: int32,
  loss: float64,
  lr: float64,
  gradNorm: float64,
  valLoss: nullable(float64)
})
export const FINETUNE_METRICS_COLUMNS = FinetuneMetricsTable.columns
