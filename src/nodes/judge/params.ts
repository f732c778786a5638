/** Config section `judge`: the pairwise judge (paper §5.3) through its endpoint, or the offline chrF judge. */
import { Schema } from "effect"
import { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { EndpointConfig, LlmMode } from "../../schemas/endpoint.ts"
import { Count, dflt, NonNegative, Size } from "../../schemas/fields.ts"

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
  margin: dflt(NonNegative, 1.0),
  /** Offline chrF judge: when both outputs score below this chrF against the reference, neither is an answer and
   *  the pair is a tie (noise must not win on length or spacing). */
  floor: dflt(NonNegative, 20),
  /** Completion budget of one verdict (the judge explains first). */
  maxTokens: dflt(Size, 1024),
  /** Re-samples (request `variant` 1, 2, …) of one order whose verdict is unparseable before it counts as invalid. */
  invalidRetries: dflt(Count, 1),
  retryTemperature: dflt(NonNegative, 0.7),
  /** "all": every pair of systems is judged (both orders), so one Bradley–Terry ranking covers them all; "vsLLINK":
   *  only LLINK against each baseline (the paper's protocol; 4 comparisons an example instead of up to 10). */
  comparisons: dflt(Schema.Literals(["all", "vsLLINK"]), "all"),
  /** Show the judge the foreign source text too (paper: reference only). */
  showSource: dflt(Schema.Boolean, false),
  /** The 95% bootstrap intervals of preference and win rate over prompts: resamples (≥ 1,000) and seed. */
  bootstrap: dflt(BootstrapConfig, {})
})
export type JudgeConfig = typeof JudgeConfig.Type

/** What the stage keys on: the section, and the resolved mode and (redacted) URL (see `selectParams`). */
export const JudgeParams = Schema.Struct({
  judge: JudgeConfig,
  /** `judge.mode` with "auto" resolved when the stage was planned. */
  mode: Schema.Literals(["offline", "endpoint"]),
  /** The endpoint's base URL without credentials ("" when offline). */
  baseUrl: Schema.String
})
export type JudgeParams = typeof JudgeParams.Type
