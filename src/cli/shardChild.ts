/**
 * One shard in its own process: what `llink runner` starts for every shard it takes, so the model code's long
 * synchronous stretches never stall the runner's event loop (which keeps its cluster lease alive) and a shard's
 * memory goes back when it ends. Reads `{ stage, key, root, params, inputs, range }` (JSON) on stdin, runs the shard
 * activity (`runShard`: skipped when already published) and prints one JSON line `{ ok, reused, rows }` or
 * `{ ok: false, message }` on stdout; log lines go to stderr.
 */
import { Effect, Schema } from "effect"
import { TensorBackend } from "../backend/tensorBackend.ts"
import { stages } from "../nodes/index.ts"
import { exitWhenOrphaned, failureOf, readStdinText } from "../pipeline/childProcess.ts"
import { ShardRangeSchema, runShard } from "../pipeline/shards.ts"
import { describeError } from "../errors/describe.ts"

const Request = Schema.Struct({
  stage: Schema.String,
  key: Schema.String,
  root: Schema.String,
  params: Schema.Unknown,
  inputs: Schema.Record(Schema.String, Schema.String),
  range: ShardRangeSchema
})

// A runner that dies (SIGKILL) must not leave its shard computing: once this process has been re-parented, it exits,
// checked at once, after every batch (the progress hook; the event loop may be busy for long) and once a second
// (`exitWhenOrphaned`: the runner passes its pid, so a runner that died while this process was still loading its
// modules is noticed too, and the shard is not computed and published beside another runner's).
const exitIfOrphaned = exitWhenOrphaned("LLINK_RUNNER_PID")
const watching = { advance: exitIfOrphaned, setTotal: () => {}, done: () => {} }

const program = Effect.gen(function*() {
  const request = yield* Effect.flatMap(readStdinText, (text) => Schema.decodeUnknownEffect(Schema.fromJsonString(Request))(text))
  const stage = stages.find((s) => s.name === request.stage)
  if (stage === undefined) return { ok: false, message: `no stage ${request.stage}` }
  const params = yield* Schema.decodeUnknownEffect(stage.params)(request.params)
  const r = yield* runShard(stage, { ...request, params }, request.range, {
    log: (line) => process.stderr.write(`${line}\n`),
    progress: () => watching
  }).pipe(Effect.provide(TensorBackend.layer))
  return { ok: true, reused: r.reused, rows: r.shard.rows }
})

Effect.runPromise(
  program.pipe(Effect.catchCause((cause) => Effect.succeed({ ok: false, message: describeError(failureOf(cause)) })))
).then((result) => {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exitCode = result.ok ? 0 : 1
})
