/**
 * Bilingual retrieval results (paper Table 1): `retrieval` (Stage A, written by `retrieval`), `retrieval.full`
 * (LLINK full and the direct fine-tune, written by `retrievalFull`) and `retrieval.peers` (the peer baselines' pooled
 * soft-input vectors, written by `retrievalPeers`), all read by the report.
 */
import { Schema } from "effect"
import { BootstrapSettings, Interval } from "./bootstrap.ts"

/** One system's retrieval over n pairs (see src/metrics/retrieval.ts). */
export const RetrievalMetricsDoc = Schema.Struct({
  n: Schema.Number,
  r1: Schema.Number,
  r5: Schema.Number,
  r10: Schema.Number,
  mrr: Schema.Number,
  meanRank: Schema.Number,
  /** R@1 of a random ranking: 1 / (number of candidates). */
  chanceR1: Schema.Number,
  /** 95% percentile-bootstrap intervals over queries (the document's `bootstrap`); null when n = 0. */
  r1CI: Schema.NullOr(Interval),
  mrrCI: Schema.NullOr(Interval)
})
export type RetrievalMetricsDoc = typeof RetrievalMetricsDoc.Type

/**
 * Each query's gold rank (1 = its own English retrieved first), in the order of the eval slice: what `llink
 * compare` pairs across two runs that share an eval set (a paired bootstrap of R@1 and MRR differences).
 */
export const QueryRanks = Schema.Array(Schema.Number)

export const RetrievalDoc = Schema.Struct({
  stageA: RetrievalMetricsDoc,
  bootstrap: BootstrapSettings,
  ranks: Schema.Struct({ stageA: QueryRanks })
})
export type RetrievalDoc = typeof RetrievalDoc.Type

export const RetrievalFullDoc = Schema.Struct({
  n: Schema.Number,
  /** How LLINK (full)'s query vector was made (`retrievalFull.vector`). */
  fullVector: Schema.String,
  full: RetrievalMetricsDoc,
  finetune: RetrievalMetricsDoc,
  bootstrap: BootstrapSettings,
  ranks: Schema.Struct({ full: QueryRanks, finetune: QueryRanks })
})
export type RetrievalFullDoc = typeof RetrievalFullDoc.Type

/** How a peer's retrieval vector is made (`retrievalPeers`). */
export const PEER_RETRIEVAL_VECTOR = "meanMappedStates"

export const RetrievalPeersDoc = Schema.Struct({
  n: Schema.Number,
  /** `meanMappedStates`: the encoder reads the foreign sentence alone; the mean of the bridge's map of its token
   *  states (the end vector left out). */
  vector: Schema.Literal(PEER_RETRIEVAL_VECTOR),
  /** Null when the peer is off (`baselines`). */
  langbridge: Schema.NullOr(RetrievalMetricsDoc),
  mindmerger: Schema.NullOr(RetrievalMetricsDoc),
  bootstrap: BootstrapSettings
})
export type RetrievalPeersDoc = typeof RetrievalPeersDoc.Type
