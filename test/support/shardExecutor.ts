// A ShardExecutor for tests: runs the pending shards through `runShard` (the activity a cluster runner executes) in
// an order the test chooses, optionally two at a time, and records the order they finished in.
import { Effect, Layer } from "effect"
import { makeRng } from "../../src/models/rng.ts"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { runShard, ShardExecutor } from "../../src/pipeline/shards.ts"
import type { ShardRange } from "../../src/pipeline/stage.ts"

/** A seeded Fisher–Yates shuffle. */
export const shuffle = (seed: number) => <A>(xs: ReadonlyArray<A>): Array<A> => {
  const rng = makeRng(seed)
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

const quiet = { advance: () => {}, setTotal: () => {}, done: () => {} }

export const testExecutor = <R>(
  stages: ReadonlyArray<AnyStage<R>>,
  options: {
    readonly reorder: (pending: ReadonlyArray<ShardRange>) => Array<ShardRange>
    /** Shards finished, in order. */
    readonly ran: Array<ShardRange>
    readonly concurrency?: number
    /** Provides the stages' services (e.g. the tensor backend) to each shard. */
    readonly provide: <A, E>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E>
  }
) =>
  Layer.succeed(
    ShardExecutor,
    ShardExecutor.of({
      describe: Effect.succeed("a test executor"),
      runAll: (job, pending, onDone) => {
        const stage = stages.find((s) => s.name === job.stage)!
        return Effect.forEach(options.reorder(pending), (r) =>
          options.provide(runShard(stage, job, r, { log: () => {}, progress: () => quiet })).pipe(
            Effect.tap(() =>
              Effect.sync(() => {
                options.ran.push(r)
                onDone(r, "test")
              })
            )
          ), { concurrency: options.concurrency ?? 1, discard: true })
      }
    })
  )
