/**
 * One heavy stage in its own process: what `llink run` starts for each `heavy` stage (src/pipeline/childStage.ts),
 * so that two stages compute on two cores. Reads a `StageRequest` (JSON) on stdin, runs the stage with the same
 * services `llink run` provides, prints log lines on stderr and one JSON reply line on stdout.
 */
import { Effect } from "effect"
import { TensorBackend } from "../backend/tensorBackend.ts"
import { stages } from "../nodes/index.ts"
import { exitWhenOrphaned, readStdinText } from "../pipeline/childProcess.ts"
import { PARENT_PID_ENV, serveStageRequest } from "../pipeline/childStage.ts"

// A parent that dies (SIGKILL) must not leave its stage computing (checked at every progress step too).
const exitIfOrphaned = exitWhenOrphaned(PARENT_PID_ENV)

Effect.runPromise(
  Effect.flatMap(readStdinText, (text) => serveStageRequest(stages, text, exitIfOrphaned)).pipe(Effect.provide(TensorBackend.layer))
).then((reply) => {
  process.stdout.write(`${reply}\n`)
  process.exitCode = reply.startsWith(`{"ok":true`) ? 0 : 1
})
