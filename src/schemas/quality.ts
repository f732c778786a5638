/** `clean.quality`, written by `clean`: what cleaning did to the corpus (read by the report). */
import { Schema } from "effect"

const LengthSummary = Schema.Struct({
  count: Schema.Number,
  mean: Schema.Number,
  p50: Schema.Number,
  p95: Schema.Number,
  max: Schema.Number,
  histogram: Schema.Struct({
    unit: Schema.String,
    binWidth: Schema.Number,
    /** counts[i] = pairs with length in [i·binWidth, (i+1)·binWidth); the last bin holds everything ≥ its start. */
    lastBinFrom: Schema.Number,
    counts: Schema.Array(Schema.Number)
  })
})

export const QualityDoc = Schema.Struct({
  rowsIn: Schema.Number,
  kept: Schema.Number,
  rejected: Schema.Number,
  /** Rejected pairs per reason (`empty-english`, `empty-foreign`, `script-share`, `duplicate`). */
  byReason: Schema.Record(Schema.String, Schema.Number),
  truncated: Schema.Number,
  maxForeignChars: Schema.Number,
  normalisation: Schema.Struct({
    nfcChanged: Schema.Number,
    zeroWidthRemoved: Schema.Number,
    zeroWidthRows: Schema.Number,
    whitespaceChanged: Schema.Number,
    zeroWidthChars: Schema.Array(Schema.String),
    keptJoiners: Schema.Array(Schema.String)
  }),
  /** Code-point lengths of the kept pairs (the foreign side before truncation). */
  lengths: Schema.Struct({ english: LengthSummary, foreign: LengthSummary }),
  /** Suspected damaged Khmer per kind: rows and a few example ids (reported, not removed). */
  khmerDamage: Schema.Record(Schema.String, Schema.Struct({ rows: Schema.Number, exampleIds: Schema.Array(Schema.Number) })),
  settings: Schema.Struct({
    minScriptShare: Schema.Number,
    scriptRanges: Schema.Array(Schema.Tuple([Schema.Number, Schema.Number])),
    dedupe: Schema.Boolean,
    removeZeroWidth: Schema.Boolean
  })
})
export type QualityDoc = typeof QualityDoc.Type
