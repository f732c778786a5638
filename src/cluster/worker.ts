/**
 * The runner side: the `LlinkShard` entity's handler. For each `RunShard` message it finds the stage, checks that
 * this runner's code of the stage is the coordinator's (else the bytes could differ), decodes the parameters with
 * the stage's Schema and runs the shard activity (`runShard`: skipped when the shard is already published, written
 * through the shared artifact store otherwise). At most `slots` shards run at once in one runner.
 */
import * as os from "node:os"
import { Cause, Effect, Schema, Semaphore } from "effect"
import { runJsonChild } from "../pipeline/childProcess.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { stageCode } from "../pipeline/plan.ts"
import { describeRange, runShard } from "../pipeline/shards.ts"
import type { Progress } from "../pipeline/stage.ts"
import { EndpointLimits } from "../services/endpoint.ts"
import type { ShardGate } from "./drain.ts"
import { ShardEntity, ShardFailed } from "./protocol.ts"
import { describeError } from "../errors/describe.ts"

export interface WorkerOptions {
  /** The script that runs one shard in a child process (`src/cli/shardChild.ts`). */
  readonly childScript: string
  /** Shards run at once (1 for model stages on one device; more for endpoint-bound stages). */
  readonly slots: number
  readonly log: (line: string) => void
  /** Running shards and the stop switch (`launchRunner` stops it on SIGTERM). */
  readonly gate?: ShardGate
}

/**
 * Runs one shard in a child process (`childScript`, the request as JSON on stdin), so that the shard's synchronous
 * model code never blocks this process's event loop, which keeps the runner's lease. Interrupting kills the child.
 */
const runInChild = (
  childScript: string,
  request: Record<string, unknown>,
  log: (line: string) => void,
  gate: ShardGate | undefined
): Effect.Effect<{ readonly reused: boolean; readonly rows: number }, string> =>
  Effect.flatMap(
    runJsonChild(childScript, request, {
      env: { LLINK_RUNNER_PID: String(process.pid) },
      onLine: log,
      onStart: (child) => gate?.children.add(child),
      onEnd: (child) => gate?.children.delete(child)
    }).pipe(Effect.mapError((reason) => `cannot start the shard process: ${reason}`)),
    (end) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(end.lastLine)
      } catch {
        parsed = undefined
      }
      const r = parsed as { ok?: unknown; reused?: unknown; rows?: unknown; message?: unknown } | undefined
      if (r?.ok === true && typeof r.reused === "boolean" && typeof r.rows === "number") return Effect.succeed({ reused: r.reused, rows: r.rows })
      if (typeof r?.message === "string") return Effect.fail(r.message)
      return Effect.fail(`the shard process ended (${end.exit}) without a result: ${end.tail.join("\n").slice(-500)}`)
    }
  )

const quiet: Progress = { advance: () => {}, setTotal: () => {}, done: () => {} }


/** The entity layer of a runner over `stages` (needs the stages' services, e.g. the tensor backend). */
export const shardWorkerLayer = <R>(stages: ReadonlyArray<AnyStage<R>>, options: WorkerOptions) => {
  // One semaphore per runner (the entity's build runs once per entity, i.e. per shard). Shards that wait on an
  // endpoint (inline) have one more slot, so that the next one starts (reads its inputs, opens the request cache)
  // while the last requests of the previous one are out; the endpoint limits they share (EndpointLimits) keep the
  // runner at the configured concurrency between them.
  const slots = Semaphore.makeUnsafe(Math.max(1, options.slots))
  const inlineSlots = Semaphore.makeUnsafe(Math.max(1, options.slots) + 1)
  const limits = EndpointLimits.shared()
  return ShardEntity.toLayer(
    Effect.sync(() =>
      ShardEntity.of({
        RunShard: ({ payload }) => {
          const failed = (text: string) => new ShardFailed({ stage: payload.stage, range: payload.range, message: text })
          const found = stages.find((s) => s.name === payload.stage)
          const work = Effect.gen(function*() {
            const stage = found
            if (stage === undefined) return yield* failed(`this runner has no stage ${payload.stage}`)
            const code = yield* stageCode(stage).pipe(Effect.mapError((e) => failed(e.message)))
            if ((code?.digest ?? "") !== payload.code) {
              return yield* failed(
                `this runner's code of ${stage.name} (${(code?.digest ?? "none").slice(0, 12)}) differs from the coordinator's ` +
                  `(${payload.code.slice(0, 12)}): run the same llink checkout on every machine`
              )
            }
            // (a child process decodes them again from the JSON)
            const params = yield* Schema.decodeUnknownEffect(stage.params)(payload.params).pipe(
              Effect.mapError((e) => failed(`parameters do not decode: ${e.message}`))
            )
            const t0 = performance.now()
            options.log(`${stage.name} ${describeRange(payload.range)}: started`)
            const job = { stage: stage.name, key: payload.key, root: payload.root, params: payload.params, inputs: payload.inputs, range: payload.range }
            const r = stage.sharding?.inline === true
              ? yield* runShard(stage, { ...job, params }, payload.range, {
                log: (line) => options.log(`${stage.name} ${describeRange(payload.range)}: ${line}`),
                progress: () => quiet
              }).pipe(
                Effect.provideService(EndpointLimits, limits),
                Effect.map((x) => ({ reused: x.reused, rows: x.shard.rows })),
                Effect.mapError((e) => failed(describeError(e)))
              )
              : yield* runInChild(
              options.childScript,
              job,
              (line) => options.log(`${stage.name} ${describeRange(payload.range)}: ${line}`),
              options.gate
            ).pipe(Effect.mapError((e) => failed(e)))
            options.log(
              `${stage.name} ${describeRange(payload.range)}: ${r.reused ? "already published" : "done"} in ${
                ((performance.now() - t0) / 1000).toFixed(1)
              }s`
            )
            return { computedBy: `${os.hostname()}:${process.pid}`, reused: r.reused, rows: r.rows }
          })
          // A stopping runner starts nothing: the message waits, unprocessed, until the runner's shutdown interrupts
          // it, and then goes to another runner.
          const gate = options.gate
          const gated = gate === undefined
            ? work
            : Effect.suspend(() =>
              gate.enter()
                ? work.pipe(Effect.ensuring(Effect.sync(() => gate.leave())))
                : Effect.never
            )
          return (found?.sharding?.inline === true ? inlineSlots : slots).withPermits(1)(gated).pipe(
            Effect.catchDefect((defect) => Effect.fail(failed(`defect: ${describeError(defect)}`))),
            Effect.tapCause((cause) =>
              Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => options.log(`${payload.stage} ${describeRange(payload.range)}: ${Cause.pretty(cause).split("\n")[0]}`))
            )
          )
        }
      })
    )
  )
}
