/** Tagged errors of checkpoint, config and tokenizer loading. Each names the file (and tensor, where one is at fault). */
import { Schema } from "effect"

/** Reading or writing a Hugging Face snapshot file failed: which file, which tensor (if any), and why. */
export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  file: Schema.String,
  tensor: Schema.optional(Schema.String),
  message: Schema.String
}) {}
