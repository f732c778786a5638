/**
 * A heavy stage in its own process. The model code computes in long synchronous stretches on the JavaScript thread,
 * so two stages "running at once" in one process only take turns on one core. A stage declared `heavy` (`stage.ts`)
 * runs instead in a child process (`RunOptions.childScript`), so the runner's two concurrent stages compute on two
 * cores and its event loop stays free (logs, manifest, the other stage's merge).
 *
 * The parent keeps everything else: the key, the temporary output folder, the checks of the outputs, publishing and
 * the manifest. The child gets `{ stage, key, root, params, inputs, outputs, scratchDir, runDir }` as JSON on stdin,
 * decodes the parameters with the stage's own Schema, runs the stage (its shards in that process when it is sharded),
 * writes the outputs where the parent said, prints its log lines on stderr (`[stage] line`, forwarded as the stage's
 * own) and one JSON line on stdout: `{ ok: true, rows, metrics }` or `{ ok: false, message, file?, line? }`.
 * The same code on the same inputs writes the same bytes in either process.
 *
 * Interrupting the parent's stage kills the child; a child whose parent dies exits (it checks once a second and at
 * every progress step), so an abandoned stage never goes on computing.
 */
import { Effect, Schema } from "effect"
import { describeError } from "../errors/describe.ts"
import { failureOf, runJsonChild } from "./childProcess.ts"
import type { AnyStage } from "./dag.ts"
import { StageError } from "./errors.ts"
import { makeConsoleReporter } from "./progress.ts"
import { runShardedStage } from "./shards.ts"
import type { StageOutcome } from "./stage.ts"

export const StageRequest = Schema.Struct({
  stage: Schema.String,
  key: Schema.String,
  root: Schema.String,
  /** The stage's parameters as the manifest records them (the canonical JSON of the decoded value). */
  params: Schema.Unknown,
  inputs: Schema.Record(Schema.String, Schema.String),
  outputs: Schema.Record(Schema.String, Schema.String),
  scratchDir: Schema.String,
  runDir: Schema.String
})
export type StageRequest = typeof StageRequest.Type

const StageReply = Schema.Union([
  Schema.Struct({
    ok: Schema.Literal(true),
    rows: Schema.Record(Schema.String, Schema.Number),
    metrics: Schema.optional(Schema.Record(Schema.String, Schema.Unknown))
  }),
  Schema.Struct({
    ok: Schema.Literal(false),
    message: Schema.String,
    file: Schema.optional(Schema.String),
    line: Schema.optional(Schema.Number)
  })
])
type StageReply = typeof StageReply.Type

/** The env var that tells a child its parent's pid (read before its modules load, so a dead parent is noticed). */
export const PARENT_PID_ENV = "LLINK_STAGE_PARENT_PID"

/** Runs `request` in a child process started as `node <script>`; `log` gets the stage's log lines. */
export const runStageInChild = Effect.fn("ChildStage.run")(function*(
  script: string,
  request: StageRequest,
  log: (line: string) => void,
  env: Readonly<Record<string, string>> = {}
) {
  const prefix = `[${request.stage}] `
  const failed = (message: string) => new StageError({ stage: request.stage, message })
  const end = yield* runJsonChild(script, request, {
    env: { ...env, [PARENT_PID_ENV]: String(process.pid) },
    onLine: (text) => log(text.startsWith(prefix) ? text.slice(prefix.length) : text)
  }).pipe(Effect.mapError((reason) => failed(`cannot start the stage's process: ${reason}`)))
  const decoded = Schema.decodeUnknownOption(Schema.fromJsonString(StageReply))(end.lastLine)
  if (decoded._tag === "None") {
    return yield* failed(
      `the stage's process ended (${end.exit}) without a result${end.tail.length > 0 ? `; its last lines:\n${end.tail.join("\n")}` : ""}`
    )
  }
  const reply = decoded.value
  if (!reply.ok) {
    return yield* new StageError({
      stage: request.stage,
      message: reply.message,
      ...(reply.file === undefined ? {} : { file: reply.file }),
      ...(reply.line === undefined ? {} : { line: reply.line })
    })
  }
  const outcome: StageOutcome = { rows: reply.rows, ...(reply.metrics === undefined ? {} : { metrics: reply.metrics }) }
  return outcome
})

/**
 * The child's side: runs the stage `text` (a `StageRequest` as JSON) names, from `stages`, and returns the reply line.
 * Never fails: a failure is the reply `{ ok: false, … }` (a StageError keeps its file and line).
 */
export const serveStageRequest = <R>(stages: ReadonlyArray<AnyStage<R>>, text: string, onStep: () => void = () => {}): Effect.Effect<string, never, R> =>
  Effect.gen(function*() {
    const request = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(StageRequest))(text)
    const stage = stages.find((s) => s.name === request.stage)
    if (stage === undefined) return yield* new StageError({ stage: request.stage, message: `no stage named ${request.stage} in this build` })
    const params = yield* Schema.decodeUnknownEffect(stage.params)(request.params)
    const reporter = makeConsoleReporter()
    const ctx = {
      params,
      inputs: request.inputs,
      outputs: request.outputs,
      scratchDir: request.scratchDir,
      runDir: request.runDir,
      progress: (label: string, total?: number) => {
        const bar = reporter.progress(stage.name, label, total)
        return { ...bar, advance: (n?: number) => (onStep(), bar.advance(n)) }
      },
      log: (message: string) => reporter.log(stage.name, message)
    }
    const outcome = yield* (stage.sharding === undefined ? stage.run(ctx) : runShardedStage(stage, ctx, { root: request.root, key: request.key }))
    reporter.close()
    return JSON.stringify({ ok: true, rows: outcome.rows, ...(outcome.metrics === undefined ? {} : { metrics: outcome.metrics }) })
  }).pipe(
    Effect.catchCause((cause) => {
      const e = failureOf(cause)
      const where = e instanceof StageError ? { ...(e.file === undefined ? {} : { file: e.file }), ...(e.line === undefined ? {} : { line: e.line }) } : {}
      return Effect.succeed(JSON.stringify({ ok: false, message: e instanceof StageError ? e.message : describeError(e), ...where }))
    })
  )
