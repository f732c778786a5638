/**
 * `results`, written by `report` (also copied to `<run-dir>/results.json`): the run's numbers beside the paper's.
 *
 * After a partial run (`llink run --until S`, or a failed stage) the report still runs on what exists: a section
 * whose artifacts were not computed is null, and `partial.missing` names those artifacts. A complete run has no
 * `partial` key.
 */
import { Schema } from "effect"
import { SlotPolicy } from "../prompts/slotPolicy.ts"
import { BootstrapSettings, Interval } from "./bootstrap.ts"
import { Comparisons, NumericBySystem } from "./judge.ts"
import { BitextSuiteDoc, RetrievalMetricsDoc, TestSetSummary } from "./retrieval.ts"
import { Claim, GenerationQuality } from "./generation.ts"
import { PretrainDoc } from "./pretrain.ts"

const TokenUse = Schema.Struct({ mean: Schema.Number, total: Schema.Number })
/** The paper's numbers for a section (src/schemas/paper.ts), copied in for side-by-side reading. */
const Paper = Schema.Unknown

/** A Bradley–Terry ranking (src/metrics/bradleyTerry.ts): Elo-scale scores (mean 1000), best first. */
export const RankingDoc = Schema.Struct({
  rows: Schema.Array(Schema.Struct({ system: Schema.String, score: Schema.Number, ci: Schema.NullOr(Interval) })),
  battles: Schema.Number,
  prompts: Schema.Number,
  /** With style control: the length coefficient (per sd of the length difference); else null. */
  lengthCoef: Schema.NullOr(Schema.Number)
})

/** A named test set in results.json: Stage A's grid and contamination (`testSets`), and LLINK (full), the
 *  fine-tune and the peers (`testSetsFull`; null when it was not computed, or the peer is off). */
const TestSetResults = Schema.Struct({
  ...TestSetSummary.fields,
  full: Schema.NullOr(RetrievalMetricsDoc),
  finetune: Schema.NullOr(RetrievalMetricsDoc),
  langbridge: Schema.NullOr(RetrievalMetricsDoc),
  mindmerger: Schema.NullOr(RetrievalMetricsDoc)
})

export const ResultsDoc = Schema.Struct({
  title: Schema.String,
  /** "copy" when LLINK ran with the number pathway (`stageB.numbers`); absent when it is off, the paper's prompt. */
  numbers: Schema.optionalKey(Schema.Literal("copy")),
  /** `stageB.slotPolicy` when LLINK ran with one (its prompts then carry K(x) slots); absent: all K, the paper's. */
  slotPolicy: Schema.optionalKey(SlotPolicy),
  /** "on" when every system's numbers were copied from the foreign text at decoding (`generate.copyNumbers`, the
   *  number pointer: a decoding rule, not learned); absent when off, the paper's decoding. */
  copyNumbers: Schema.optionalKey(Schema.Literal("on")),
  offline: Schema.Struct({
    /** Stage B data from the offline template synthesizer (null: not known, sft.eval not computed). */
    synthesizer: Schema.NullOr(Schema.Boolean),
    /** Table 2 from the offline chrF judge (null: not computed). */
    judge: Schema.NullOr(Schema.Boolean)
  }),
  retrieval: Schema.Struct({
    n: Schema.NullOr(Schema.Number),
    stageA: Schema.NullOr(RetrievalMetricsDoc),
    full: Schema.NullOr(RetrievalMetricsDoc),
    finetune: Schema.NullOr(RetrievalMetricsDoc),
    fullVector: Schema.NullOr(Schema.String),
    /** The peer baselines (null: off in `baselines`, or not computed); their vector rule is `peerVector`. */
    langbridge: Schema.NullOr(RetrievalMetricsDoc),
    mindmerger: Schema.NullOr(RetrievalMetricsDoc),
    peerVector: Schema.NullOr(Schema.String),
    /** Stage A in both directions under cosine, margin and CSLS, its pool curve and its top-1 mistakes. */
    suite: Schema.NullOr(BitextSuiteDoc),
    /** Stage A on each named test set of `eval.testSets`, by name, with its contamination (null: `testSets` not
     *  computed). Keyed by name so `llink compare` lines them up (`retrieval.testSets.<name>.stageA.r1`). */
    testSets: Schema.NullOr(Schema.Record(Schema.String, TestSetResults)),
    /** How the R@1 and MRR intervals were made (null: no retrieval computed). */
    bootstrap: Schema.NullOr(BootstrapSettings),
    paper: Paper
  }),
  judge: Schema.NullOr(
    Schema.Struct({
      mode: Schema.Literals(["offline", "endpoint"]),
      judge: Schema.String,
      /** How the preference and win-rate intervals were made. */
      bootstrap: BootstrapSettings,
      byBucket: Schema.Struct({ content: Schema.optionalKey(Comparisons), qa: Schema.optionalKey(Comparisons) }),
      overall: Comparisons,
      /** One Bradley–Terry ranking of all judged systems, raw and style-controlled (null without the verdicts). */
      ranking: Schema.NullOr(Schema.Struct({ raw: RankingDoc, styleControlled: RankingDoc })),
      paper: Paper
    })
  ),
  numericFidelity: Schema.NullOr(NumericBySystem),
  /** Generation quality per system (chrF per task type, exact-number match, length); null without generations. */
  generation: Schema.NullOr(GenerationQuality),
  /** "What this run shows": the paper's qualitative claims checked against this run's numbers. */
  claims: Schema.Array(Claim),
  /** The tiny models' pretraining (curves, samples); null when it was not computed. */
  pretrain: Schema.NullOr(PretrainDoc),
  tokens: Schema.NullOr(
    Schema.Struct({
      examples: Schema.Number,
      llink: TokenUse,
      base: TokenUse,
      finetune: TokenUse,
      /** The peers that are on (MindMerger's count includes its text prompt with the original text). */
      langbridge: Schema.optionalKey(TokenUse),
      mindmerger: Schema.optionalKey(TokenUse),
      /** Mean base prompt tokens / mean LLINK prompt tokens (paper: ≈ 3). */
      ratioBaseToLlink: Schema.NullOr(Schema.Number),
      ratioFinetuneToLlink: Schema.NullOr(Schema.Number),
      paperReduction: Schema.Number
    })
  ),
  tokenizer: Schema.NullOr(
    Schema.Struct({
      pairs: Schema.Number,
      englishTokensPerChar: Schema.Number,
      foreignTokensPerChar: Schema.Number,
      foreignToEnglishTokenRatio: Schema.Number,
      /** K (`models.slots`). */
      slots: Schema.Number,
      savedPerSentence: Schema.Number,
      paper: Paper
    })
  ),
  data: Schema.NullOr(
    Schema.Struct({ rowsIn: Schema.Number, kept: Schema.Number, rejected: Schema.Number, truncated: Schema.Number })
  ),
  /** Last logged value of every metrics column ({} when that stage did not run). */
  training: Schema.Struct({
    stageA: Schema.Record(Schema.String, Schema.Number),
    stageB: Schema.Record(Schema.String, Schema.Number)
  }),
  /** Present only after a partial run: the report's input artifacts that were not computed. */
  partial: Schema.optionalKey(Schema.Struct({ missing: Schema.Array(Schema.String) }))
})
export type ResultsDoc = typeof ResultsDoc.Type
