/** Tagged errors of the tensor backend: a missing BLAS library, or a backend that was asked for but cannot run. */
import { Schema } from "effect"

/** OpenBLAS could not be loaded: every path tried, each with the loader's reason. */
export class BlasUnavailableError extends Schema.TaggedError<BlasUnavailableError>()("BlasUnavailableError", {
  message: Schema.String,
  /** `path: reason` for every candidate tried, in order. */
  tried: Schema.Array(Schema.String)
}) {}

/** A tensor backend was requested (by `LLINK_BACKEND` or in code) but is not available here, or the request is
 *  not a known backend. Never answered by silently picking another backend. */
export class BackendUnavailableError extends Schema.TaggedError<BackendUnavailableError>()(
  "BackendUnavailableError",
  {
    /** What was asked for, as written (e.g. `node`, `blas`, `tpu`). */
    requested: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Unknown)
  }
) {}
