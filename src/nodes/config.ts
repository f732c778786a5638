/**
 * The run configuration: one JSON file (`llink.config.json` by default) decoded with `LlinkConfig`, assembled from
 * the config section each stage declares in its own `params.ts`. Every field has a default and a range, unknown keys
 * are errors, and the rules that span sections are checked here — all when the config is loaded, before any stage
 * runs (`loadConfig`, errors name the file, line, field, value and rule). Each stage then selects only the fields it
 * depends on (its `selectParams`), so only those enter its cache key.
 *
 * Keep each section's field names stable: they are the `--set` paths.
 */
import { type Effect, Schema } from "effect"
import { type LoadConfigOptions, loadConfigWith, type LoadedConfig } from "../pipeline/configLoad.ts"
import type { ConfigError } from "../pipeline/errors.ts"
import { crossCheck, dflt } from "../schemas/fields.ts"
import { CleanConfig } from "./clean/params.ts"
import { EncodeConfig } from "./encode/params.ts"
import { FinetuneConfig } from "./finetune/params.ts"
import { GenerateConfig } from "./generate/params.ts"
import { CorpusConfig } from "./ingest/params.ts"
import { JudgeConfig } from "./judge/params.ts"
import { LangBridgeConfig } from "./langbridge/params.ts"
import { MindMergerConfig } from "./mindmerger/params.ts"
import { ModelsConfig } from "./models/params.ts"
import { ReportConfig } from "./report/params.ts"
import { RetrievalConfig } from "./retrieval/params.ts"
import { RetrievalFullConfig } from "./retrievalFull/params.ts"
import { EvalConfig } from "./testSets/params.ts"
import { SplitConfig } from "./split/params.ts"
import { StageAConfig } from "./stageA/params.ts"
import { StageBConfig } from "./stageB/params.ts"
import { SynthConfig } from "./synthesize/params.ts"
import { TeacherConfig } from "./teacher/params.ts"
import { TokstatsConfig } from "./tokstats/params.ts"

/** The systems LLINK is compared with: the base decoder, the direct LoRA fine-tune and the two peers that feed
 *  every encoder token state to the decoder (LangBridge, MindMerger). A peer left out is neither trained nor
 *  generated, judged, scored or reported. `base` and `finetune` must stay: they are the paper's comparisons, and
 *  Table 1, Table 2, the tokens table and retrieval are built around them (a config without them fails at load). */
export const Baseline = Schema.Literals(["base", "finetune", "langbridge", "mindmerger"])
export const ALL_BASELINES = ["base", "finetune", "langbridge", "mindmerger"] as const
/** The baselines every run has. */
export const REQUIRED_BASELINES = ["base", "finetune"] as const

export const LlinkConfig = Schema.Struct({
  /** Which baselines run (see `Baseline`). */
  baselines: dflt(Schema.Array(Baseline), [...ALL_BASELINES]),
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
  eval: dflt(EvalConfig, {}),
  synth: dflt(SynthConfig, {}),
  generate: dflt(GenerateConfig, {}),
  judge: dflt(JudgeConfig, {}),
  retrievalFull: dflt(RetrievalFullConfig, {}),
  report: dflt(ReportConfig, {}),
  stageB: dflt(StageBConfig, {}),
  finetune: dflt(FinetuneConfig, {}),
  langbridge: dflt(LangBridgeConfig, {}),
  mindmerger: dflt(MindMergerConfig, {})
}).check(
  crossCheck("baselines", (c) => {
    const missing = REQUIRED_BASELINES.filter((b) => !c.baselines.includes(b))
    return missing.length === 0
      ? undefined
      : `must include ${REQUIRED_BASELINES.map((b) => `"${b}"`).join(" and ")} (the paper's comparisons; only the peers "langbridge" and "mindmerger" can be left out), got ${JSON.stringify(c.baselines)}`
  }),
  crossCheck(["retrieval", "n"], (c) =>
    c.retrieval.n === 0 && c.split.evalN === 0
      ? "is 0 (use split.evalN) while split.evalN is 0 too: retrieval would evaluate nothing"
      : undefined)
)
export type LlinkConfig = typeof LlinkConfig.Type

/** Loads the llink config (see `loadConfigWith` in src/pipeline/configLoad.ts for the file, `--set` and paths). */
export const loadConfig = (options?: LoadConfigOptions): Effect.Effect<LoadedConfig<LlinkConfig>, ConfigError> =>
  loadConfigWith(LlinkConfig, options)
