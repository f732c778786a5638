/** Tagged errors of the pipeline. Every error carries the context a user needs to find the cause. */
import { Schema } from "effect"

/** A stage failed: which stage, and why (with file/line/field where known). */
export class StageError extends Schema.TaggedError<StageError>()("StageError", {
  stage: Schema.String,
  message: Schema.String,
  file: Schema.optional(Schema.String),
  line: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Unknown)
}) {}

/** Reading or writing an artifact failed (the format library's error; the engine's too). */
export { ArtifactError } from "../formats/errors.ts"

/** A structurally broken input file (truncated gzip, unreadable zip, not a TMX, ...). */
export class InputFileError extends Schema.TaggedError<InputFileError>()("InputFileError", {
  file: Schema.String,
  message: Schema.String,
  line: Schema.optional(Schema.Number),
  byte: Schema.optional(Schema.Number)
}) {}

/** The config file is invalid: the path of the offending field and what was expected. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  file: Schema.String,
  path: Schema.String,
  message: Schema.String
}) {}

/** Another run holds the run directory's lock. */
export class LockError extends Schema.TaggedError<LockError>()("LockError", {
  runDir: Schema.String,
  holder: Schema.String,
  message: Schema.String
}) {}

/** The stages' declared inputs and outputs contain a cycle (the stages on it, in order, first repeated last). */
export class DagCycleError extends Schema.TaggedError<DagCycleError>()("DagCycleError", {
  stages: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** A stage reads an artifact that no stage declares as an output. */
export class MissingProducerError extends Schema.TaggedError<MissingProducerError>()("MissingProducerError", {
  artifact: Schema.String,
  consumer: Schema.String,
  message: Schema.String
}) {}

/** Two stages declare the same output artifact (or two stages share one name: `artifact` is then empty). */
export class DuplicateProducerError extends Schema.TaggedError<DuplicateProducerError>()("DuplicateProducerError", {
  artifact: Schema.String,
  stages: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** A stage named on the command line (`--only`, `--until`, `--force`) is not in the pipeline. */
export class UnknownStageError extends Schema.TaggedError<UnknownStageError>()("UnknownStageError", {
  stage: Schema.String,
  known: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** `--only STAGE` needs an upstream artifact that is not published in the cache for the current config. */
export class MissingUpstreamError extends Schema.TaggedError<MissingUpstreamError>()("MissingUpstreamError", {
  stage: Schema.String,
  upstream: Schema.String,
  artifact: Schema.String,
  message: Schema.String
}) {}
