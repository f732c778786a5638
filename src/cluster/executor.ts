/**
 * The coordinator side (`llink run --cluster`): a `ShardExecutor` that sends every pending shard of a stage to the
 * cluster as a persisted `RunShard` message and waits for the replies. Each shard is its own entity, so the cluster
 * spreads shards over the runners by hashing their ids; a runner that dies has its messages redelivered to the
 * runner that takes over its cluster shards once its lease expires. The primary key also names this run, so a
 * shard that failed in an earlier run is tried again by the next one rather than answered from the stored reply.
 */
import * as crypto from "node:crypto"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { AnyStage } from "../pipeline/dag.ts"
import { StageError } from "../pipeline/errors.ts"
import { stageCode } from "../pipeline/plan.ts"
import { describeRange, type ShardExecutorShape } from "../pipeline/shards.ts"
import { ShardEntity, shardEntityId } from "./protocol.ts"

const message = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" && e.message !== ""
    ? e.message
    : typeof e === "object" && e !== null && "_tag" in e
    ? String(e._tag)
    : String(e)

/** The executor over the cluster in context (`clientLayer`); `stages` give each stage's code digest. */
export const makeClusterExecutor = <R>(stages: ReadonlyArray<AnyStage<R>>, options: { readonly log: (line: string) => void }) =>
  Effect.gen(function*() {
    const clientFor = yield* ShardEntity.client
    const sql = yield* SqlClient.SqlClient
    /** Healthy registered runners (0 before any runner created the cluster's tables). */
    const runners = sql<{ readonly n: number | string }>`SELECT count(*) AS n FROM cluster_runners WHERE healthy`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0)),
      Effect.orElseSucceed(() => 0)
    )
    const runId = `${process.pid}-${Date.now()}-${crypto.randomBytes(4).toString("hex")}`
    const executor: ShardExecutorShape = {
      describe: Effect.map(runners, (n) => {
        if (n === 0) options.log("no runner is registered yet: shards wait until one starts (`llink runner --cluster …`)")
        return `the cluster (${n} runner${n === 1 ? "" : "s"})`
      }),
      runAll: (job, pending, onDone) =>
        Effect.gen(function*() {
          const stage = stages.find((s) => s.name === job.stage)
          if (stage === undefined) return yield* new StageError({ stage: job.stage, message: "unknown stage" })
          const code = (yield* stageCode(stage))?.digest ?? ""
          yield* Effect.forEach(
            pending,
            (range) =>
              clientFor(shardEntityId(job.stage, job.key, range))
                .RunShard({ ...job, range, code, runId })
                .pipe(
                  Effect.tap((r) =>
                    Effect.sync(() => {
                      options.log(`shard ${describeRange(range)}: ${r.reused ? "already published" : `done on runner ${r.computedBy}`}`)
                      onDone(range, r.computedBy)
                    })
                  ),
                  Effect.mapError((e) =>
                    new StageError({
                      stage: job.stage,
                      message: `shard ${describeRange(range)} failed on the cluster: ${message(e)}`,
                      cause: e
                    })
                  )
                ),
            { concurrency: "unbounded", discard: true }
          )
        })
    }
    return executor
  })
