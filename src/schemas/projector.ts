/** The `projector` artifact's index document (`config.json`), written by `stageA` (see src/artifacts/projector.ts). */
import { Schema } from "effect"

export const PROJECTOR_WEIGHTS = "projector.safetensors"
export const PROJECTOR_CONFIG = "config.json"

const PosInt = Schema.Int.check(Schema.isGreaterThan(0))

export const ProjectorConfigFile = Schema.Struct({
  format: Schema.Literal("llink-projector"),
  version: Schema.Literal(1),
  dIn: PosInt,
  dHidden: PosInt,
  dOut: PosInt,
  dropout: Schema.Number,
  lnEps: Schema.Number,
  /** Optimizer steps trained. */
  steps: Schema.Number
})
export type ProjectorConfigFile = typeof ProjectorConfigFile.Type
