/** The error of the format library: reading or writing an artifact failed, naming the file. */
import { Schema } from "effect"

/** Reading or writing an artifact failed. */
export class ArtifactError extends Schema.TaggedError<ArtifactError>()("ArtifactError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}
