/**
 * One heavy stage in its own process: what `llink run` starts for each `heavy` stage (src/pipeline/childStage.ts),
 * so that two stages compute on two cores. Reads a `StageRequest` (JSON) on stdin, runs the stage with the same
 * services `llink run` provides, prints log lines on stderr and one JSON reply line on stdout.
 */
import { Effect } from "effect"
import { TensorBackend } from "../backend/tensorBackend.ts"
import { stages } from "../nodes/index.ts"
import { PARENT_PID_ENV, serveStageRequest } from "../pipeline/childStage.ts"

// A parent that dies (SIGKILL) must not leave its stage computing: once this process is re-parented it exits, checked
// at once, at every progress step (the event loop may be busy for long) and once a second. The parent passes its pid:
// `process.ppid` read here could already be the new parent's.
const parent = Number(process.env[PARENT_PID_ENV] ?? process.ppid)
const exitIfOrphaned = () => {
  if (process.ppid !== parent) process.exit(1)
}
exitIfOrphaned()
setInterval(exitIfOrphaned, 1000).unref()

const readStdin = Effect.promise(async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
})

Effect.runPromise(
  Effect.flatMap(readStdin, (text) => serveStageRequest(stages, text, exitIfOrphaned)).pipe(Effect.provide(TensorBackend.layer))
).then((reply) => {
  process.stdout.write(`${reply}\n`)
  process.exitCode = reply.startsWith(`{"ok":true`) ? 0 : 1
})
