/**
 * The index document (`config.json`) of the `langbridge` and `mindmerger` folders, written by those stages and read
 * by generate and retrievalPeers (src/artifacts/bridge.ts). A peer switched off in `baselines` writes
 * `enabled: false` and `trained: null`, and its consumers leave it out.
 */
import { Schema } from "effect"
import { float64, int32, nullable, tableShape, utf8 } from "../formats/parquet/shape.ts"
import { EmbeddingInitRule } from "./fields.ts"
import { InstructionSource } from "../train/sftParams.ts"

export const BRIDGE_FORMAT = "llink-bridge"
export const BRIDGE_CONFIG = "config.json"

export const BridgeKind = Schema.Literals(["langbridge", "mindmerger"])

export const BridgeDoc = Schema.Struct({
  format: Schema.Literal(BRIDGE_FORMAT),
  version: Schema.Literal(1),
  kind: BridgeKind,
  enabled: Schema.Boolean,
  trained: Schema.NullOr(Schema.Struct({
    /** The bridge module's widths (encoder d, decoder D). */
    bridge: Schema.Struct({ kind: BridgeKind, dIn: Schema.Number, dOut: Schema.Number }),
    /** The decoder's added tokens and their embedding-row rule (the decoder is loaded as the trainer loaded it). */
    addedTokens: Schema.Array(Schema.String),
    embeddingInit: EmbeddingInitRule,
    embeddingSeed: Schema.Number,
    prompt: Schema.Struct({ instruction: InstructionSource, appendEos: Schema.Boolean, maxSeqLen: Schema.Number }),
    /** The cuts of the encoder's input (`encode.maxChars`, `encode.maxTokens`). */
    encoder: Schema.Struct({ maxChars: Schema.Number, maxTokens: Schema.Number }),
    /** Optimizer steps per phase (LangBridge: `task`; MindMerger: `mapping`, then `task`). */
    steps: Schema.Record(Schema.String, Schema.Number)
  }))
})
export type BridgeDoc = typeof BridgeDoc.Type

/** The `langbridge.metrics` / `mindmerger.metrics` tables: one row per optimizer step of each phase. */
export const BridgeMetricsTable = tableShape({
  /** "task" (the instruction data) or "mapping" (MindMerger's first phase, the parallel pairs). */
  phase: utf8,
  step: int32,
  loss: float64,
  lr: float64,
  gradNorm: float64,
  valLoss: nullable(float64),
  /** The validation loss with the mapped states replaced by zeros. */
  valLzero: nullable(float64)
})
export const BRIDGE_METRICS_COLUMNS = BridgeMetricsTable.columns
