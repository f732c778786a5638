/** The `stageB.metrics` table: one row per optimizer step (validation columns on validation steps). */
import type { Column } from "../../formats/parquet/table.ts"

export const STAGEB_METRICS_COLUMNS: ReadonlyArray<Column> = [
  { name: "step", type: "int32" },
  { name: "loss", type: "float64" },
  { name: "lsft", type: "float64" },
  { name: "lzero", type: "float64", nullable: true },
  { name: "gap", type: "float64", nullable: true },
  { name: "contrast", type: "float64" },
  { name: "cos", type: "float64" },
  { name: "nce", type: "float64" },
  { name: "lr", type: "float64" },
  { name: "lrSlots", type: "float64" },
  { name: "lrScale", type: "float64" },
  { name: "gradNorm", type: "float64" },
  { name: "gate", type: "float64" },
  { name: "scale", type: "float64" },
  { name: "valLoss", type: "float64", nullable: true },
  { name: "valLzero", type: "float64", nullable: true }
]
