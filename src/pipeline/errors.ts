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

/** Reading or writing an artifact failed. */
export class ArtifactError extends Schema.TaggedError<ArtifactError>()("ArtifactError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}

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
