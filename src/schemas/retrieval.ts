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

/** Which side queries: the foreign sentences against the English ones (the paper's direction), or the reverse. */
export const BitextDirection = Schema.Literals(["foreign→english", "english→foreign"])
export type BitextDirection = typeof BitextDirection.Type

export const BitextScoring = Schema.Literals(["cosine", "margin", "csls"])

/** One direction × scoring cell of the bitext suite (src/metrics/bitext.ts). */
export const BitextCell = Schema.Struct({
  direction: BitextDirection,
  scoring: BitextScoring,
  /** Neighbourhood size (0 for cosine). */
  k: Schema.Number,
  metrics: RetrievalMetricsDoc,
  /** LASER's xsim error rate: the share of queries whose best candidate is not the gold. */
  xsimError: Schema.Number
})

/** R@1 with a candidate pool of `pool` pairs, averaged over `blocks` consecutive blocks of the holdout. */
export const PoolPoint = Schema.Struct({
  direction: BitextDirection,
  scoring: BitextScoring,
  pool: Schema.Number,
  blocks: Schema.Number,
  r1: Schema.Number
})

export const MistakeKind = Schema.Literals(["number", "entity", "other", "identical"])

/** The top-1 mistakes of one cell, by what separates the retrieved English from the gold. */
export const MistakeBreakdown = Schema.Struct({
  direction: BitextDirection,
  scoring: BitextScoring,
  total: Schema.Number,
  number: Schema.Number,
  entity: Schema.Number,
  other: Schema.Number,
  identical: Schema.Number,
  /** The first few mistakes, for reading. */
  examples: Schema.Array(Schema.Struct({ gold: Schema.String, retrieved: Schema.String, kind: MistakeKind }))
})

/** The field's retrieval grid for one system: both directions × cosine, margin, CSLS; the pool curve; the mistakes. */
export const BitextSuiteDoc = Schema.Struct({
  system: Schema.String,
  grid: Schema.Array(BitextCell),
  pool: Schema.Array(PoolPoint),
  mistakes: MistakeBreakdown
})
export type BitextSuiteDoc = typeof BitextSuiteDoc.Type

/**
 * Each query's gold rank (1 = its own English retrieved first), in the order of the eval slice: what `llink
 * compare` pairs across two runs that share an eval set (a paired bootstrap of R@1 and MRR differences).
 */
export const QueryRanks = Schema.Array(Schema.Number)

export const RetrievalDoc = Schema.Struct({
  stageA: RetrievalMetricsDoc,
  bootstrap: BootstrapSettings,
  ranks: Schema.Struct({ stageA: QueryRanks }),
  /** Stage A under the field's scorings (issue "Evaluation to the field's standard"). */
  suite: BitextSuiteDoc
})
export type RetrievalDoc = typeof RetrievalDoc.Type

/**
 * Stage A's retrieval on one named test set (`eval.testSets`, written by `testSets`): the set read through the corpus
 * readers, normalised and cut as `clean` does, encoded and prompted as the holdout is; Table 1's row and the bitext
 * grid over all of its pairs.
 */
/** One named test set's retrieval, as `results.json` carries it (the per-query ranks stay in the artifact). */
export const TestSetSummary = Schema.Struct({
  name: Schema.String,
  /** The files read (absolute paths). */
  files: Schema.Array(Schema.String),
  /** Pairs the readers returned (reading stops once `maxPairs` usable ones are found), rows they quarantined, and
   *  pairs dropped after normalisation (an empty side). */
  read: Schema.Number,
  quarantined: Schema.Number,
  dropped: Schema.Number,
  /** Pairs evaluated (the first `maxPairs` usable ones, or all). */
  n: Schema.Number,
  /** Contamination: evaluated pairs whose English (or foreign) sentence also occurs, after normalisation, in the
   *  training split. Retrieval of a memorised sentence measures recall, not alignment. */
  contaminatedEnglish: Schema.Number,
  contaminatedForeign: Schema.Number,
  stageA: RetrievalMetricsDoc,
  suite: BitextSuiteDoc
})
export type TestSetSummary = typeof TestSetSummary.Type

export const TestSetResult = Schema.Struct({ ...TestSetSummary.fields, ranks: QueryRanks })
export type TestSetResult = typeof TestSetResult.Type

export const TestSetsDoc = Schema.Struct({
  bootstrap: BootstrapSettings,
  sets: Schema.Array(TestSetResult)
})
export type TestSetsDoc = typeof TestSetsDoc.Type

/** How LLINK (full)'s query vector is made (`retrievalFull.vector`; src/metrics/systemVectors.ts). */
export const RetrievalFullVector = Schema.Literals(["meanSlot", "lastSlotHidden"])

/** How a peer's retrieval vector is made (`retrievalPeers`, `testSetsFull`). */
export const PEER_RETRIEVAL_VECTOR = "meanMappedStates"

/** LLINK (full), the direct fine-tune and the peers on each named test set (`testSetsFull`), beside Stage A's
 *  `TestSetsDoc`. A peer that is off (`baselines`) is null, as in `RetrievalPeersDoc`. */
export const TestSetsFullDoc = Schema.Struct({
  bootstrap: BootstrapSettings,
  fullVector: RetrievalFullVector,
  /** How the peers' query vectors are made (as `RetrievalPeersDoc.vector`). */
  peerVector: Schema.Literal(PEER_RETRIEVAL_VECTOR),
  sets: Schema.Array(Schema.Struct({
    name: Schema.String,
    n: Schema.Number,
    full: RetrievalMetricsDoc,
    finetune: RetrievalMetricsDoc,
    langbridge: Schema.NullOr(RetrievalMetricsDoc),
    mindmerger: Schema.NullOr(RetrievalMetricsDoc),
    ranks: Schema.Struct({
      full: QueryRanks,
      finetune: QueryRanks,
      langbridge: Schema.NullOr(QueryRanks),
      mindmerger: Schema.NullOr(QueryRanks)
    })
  }))
})
export type TestSetsFullDoc = typeof TestSetsFullDoc.Type

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
