/** Config section `synth`: Stage B data synthesis (paper §4.2) through the 70B endpoint, or offline templates. */
import { Schema } from "effect"
import { PAPER_TASK_TYPES, TaskType } from "../../prompts/synthesis.ts"
import { EndpointConfig, LlmMode } from "../../schemas/endpoint.ts"
import { Count, crossCheck, dflt, NonNegative, Seed, Size } from "../../schemas/fields.ts"

export const SynthConfig = Schema.Struct({
  mode: dflt(LlmMode, "auto"),
  /** The 70B instruct endpoint (paper: a Llama-3 70B instruct model). */
  endpoint: dflt(EndpointConfig, {}),
  /** Task types, assigned round-robin over a seeded order of the pairs (paper: the four below). */
  taskTypes: dflt(Schema.Array(TaskType).check(Schema.isMinLength(1, { message: "Expected at least one task type" })), [
    ...PAPER_TASK_TYPES
  ]),
  /** Stage B training rows (paper: 40,000), from `train` pairs. */
  train: dflt(Count, 40_000),
  /** Stage B validation rows (paper: 2,000), from `train` pairs not used for `train`. */
  val: dflt(Count, 2_000),
  /** Evaluation rows per bucket (content understanding, Q&A; paper: 500 each), from `eval` pairs. */
  evalPerBucket: dflt(Count, 500),
  seed: dflt(Seed, 17),
  /** Foreign length filter in code points, inclusive (paper: 12–256). */
  minForeignChars: dflt(Count, 12),
  maxForeignChars: dflt(Size, 256),
  /** Re-samples (request `variant` 1, 2, …) after an invalid reply before the row is quarantined. */
  retries: dflt(Count, 2),
  /** Temperature of the re-samples (the first request uses `endpoint.temperature`). */
  retryTemperature: dflt(NonNegative, 0.7),
  /** Ask the server for JSON mode (`response_format: json_object`). */
  jsonMode: dflt(Schema.Boolean, true),
  /** Name of the foreign language in the synthesis prompt. */
  language: dflt(Schema.String, "Khmer")
}).check(
  crossCheck("minForeignChars", (c) =>
    c.minForeignChars <= c.maxForeignChars
      ? undefined
      : `must be ≤ synth.maxForeignChars (${c.maxForeignChars}), got ${c.minForeignChars}`)
)
export type SynthConfig = typeof SynthConfig.Type

/** What the stage keys on: the section, and the resolved mode and (redacted) URL (see `selectParams`). */
export const SynthesizeParams = Schema.Struct({
  synth: SynthConfig,
  /** `synth.mode` with "auto" resolved when the stage was planned. */
  mode: Schema.Literals(["offline", "endpoint"]),
  /** The endpoint's base URL without credentials ("" when offline). */
  baseUrl: Schema.String
})
export type SynthesizeParams = typeof SynthesizeParams.Type
