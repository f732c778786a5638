/** The `stageB.metrics` table: one row per optimizer step (validation columns on validation steps). */
import { float64, int32, nullable, tableShape } from "../../formats/parquet/shape.ts"

export const StageBMetricsTable = tableShape({
  step: int32,
  loss: float64,
  lsft: float64,
  lzero: nullable(float64),
  gap: nullable(float64),
  contrast: float64,
  cos: float64,
  nce: float64,
  lr: float64,
  lrSlots: float64,
  lrScale: float64,
  gradNorm: float64,
  gate: float64,
  scale: float64,
  valLoss: nullable(float64),
  valLzero: nullable(float64)
})
export const STAGEB_METRICS_COLUMNS = StageBMetricsTable.columns
