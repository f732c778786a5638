/** The `stageA.metrics` table: one row per logged optimizer step. */
import { float64, int32, nullable, tableShape } from "../../formats/parquet/shape.ts"

export const StageAMetricsTable = tableShape({
  step: int32,
  loss: float64,
  nce: float64,
  ncePH: float64,
  nceHP: float64,
  dir: float64,
  norm: float64,
  tau: float64,
  lr: float64,
  gradNorm: float64,
  devR1: nullable(float64),
  devMrr: nullable(float64)
})
export type MetricsRow = typeof StageAMetricsTable.schema.Type
export const METRICS_COLUMNS = StageAMetricsTable.columns
