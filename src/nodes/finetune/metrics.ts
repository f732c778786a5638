/** The `finetune.metrics` table: one row per optimizer step (validation loss on validation steps). */
import type { Column } from "../../formats/parquet/table.ts"

export const FINETUNE_METRICS_COLUMNS: ReadonlyArray<Column> = [
  { name: "step", type: "int32" },
  { name: "loss", type: "float64" },
  { name: "lr", type: "float64" },
  { name: "gradNorm", type: "float64" },
  { name: "valLoss", type: "float64", nullable: true }
]
