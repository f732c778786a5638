/**
 * Loading a stage's implementation on demand. The stage declarations in `src/nodes/` are imported by the CLI for
 * every command (`llink status`, a cached `llink run`), so they must not pull tfjs or the model code into the static
 * import graph: their `run` imports the heavy module with `importWork` and calls into it.
 */
import { Effect } from "effect"
import { StageError } from "./errors.ts"
import { describeError } from "../errors/describe.ts"

/** `load()` (a dynamic `import(...)`), with a failure to load reported as a `StageError` of `stage`. */
export const importWork = <M>(stage: string, load: () => Promise<M>): Effect.Effect<M, StageError> =>
  Effect.tryPromise({
    try: load,
    catch: (cause) =>
      new StageError({
        stage,
        message: `cannot load the ${stage} implementation: ${describeError(cause)}`,
        cause
      })
  })
