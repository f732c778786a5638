/**
 * Converts the failures the data stages meet (a broken input file, an unreadable artifact, a tokenizer that will
 * not load) into the `StageError` the stage contract requires, keeping the file and line where known.
 */
import { Effect } from "effect"
import { type ArtifactError, type InputFileError, StageError } from "./errors.ts"

/** Anything with a message that may name a file/line (the tagged errors of the pipeline and model loaders). */
type Failure = InputFileError | ArtifactError | StageError | { readonly _tag: string; readonly message: string; readonly file?: string }

export const toStageError = (stage: string) => (e: Failure): StageError => {
  if (e instanceof StageError) return e
  const file = "file" in e && typeof e.file === "string" ? e.file : "path" in e && typeof e.path === "string" ? e.path : undefined
  const line = "line" in e && typeof e.line === "number" ? e.line : undefined
  const byte = "byte" in e && typeof e.byte === "number" ? ` (byte ${e.byte})` : ""
  return new StageError({
    stage,
    message: `${e.message}${byte}`,
    ...(file === undefined ? {} : { file }),
    ...(line === undefined ? {} : { line }),
    cause: e
  })
}

/** Maps every failure of `effect` to a `StageError` of `stage`. */
export const asStageError = (stage: string) => <A, E extends Failure, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, toStageError(stage))
