/**
 * Bilingual retrieval results (paper Table 1): `retrieval` (Stage A, written by `retrieval`) and `retrieval.full`
 * (LLINK full and the direct fine-tune, written by `retrievalFull`), both read by the report.
 */
import { Schema } from "effect"

/** One system's retrieval over n pairs (see src/metrics/retrieval.ts). */
export const RetrievalMetricsDoc = Schema.Struct({
  n: Schema.Number,
  r1: Schema.Number,
  r5: Schema.Number,
  r10: Schema.Number,
  mrr: Schema.Number,
  meanRank: Schema.Number,
  /** R@1 of a random ranking: 1 / (number of candidates). */
  chanceR1: Schema.Number
})
export type RetrievalMetricsDoc = typeof RetrievalMetricsDoc.Type

export const RetrievalDoc = Schema.Struct({ stageA: RetrievalMetricsDoc })
export type RetrievalDoc = typeof RetrievalDoc.Type

export const RetrievalFullDoc = Schema.Struct({
  n: Schema.Number,
  /** How LLINK (full)'s query vector was made (`retrievalFull.vector`). */
  fullVector: Schema.String,
  full: RetrievalMetricsDoc,
  finetune: RetrievalMetricsDoc
})
export type RetrievalFullDoc = typeof RetrievalFullDoc.Type
