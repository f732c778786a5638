/** The `stageA.metrics` table: one row per logged optimizer step. */
import type { Column } from "../../formats/parquet/table.ts"

export interface MetricsRow {
  readonly step: number
  readonly loss: number
  readonly nce: number
  readonly ncePH: number
  readonly nceHP: number
  readonly dir: number
  readonly norm: number
  readonly tau: number
  readonly lr: number
  readonly gradNorm: number
  readonly devR1: number | null
  readonly devMrr: number | null
}

export const METRICS_COLUMNS: ReadonlyArray<Column> = [
  { name: "step", type: "int32" },
  { name: "loss", type: "float64" },
  { name: "nce", type: "float64" },
  { name: "ncePH", type: "float64" },
  { name: "nceHP", type: "float64" },
  { name: "dir", type: "float64" },
  { name: "norm", type: "float64" },
  { name: "tau", type: "float64" },
  { name: "lr", type: "float64" },
  { name: "gradNorm", type: "float64" },
  { name: "devR1", type: "float64", nullable: true },
  { name: "devMrr", type: "float64", nullable: true }
]
