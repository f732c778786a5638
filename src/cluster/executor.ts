/**
 * The coordinator side (`llink run --cluster`): a `ShardExecutor` that sends every pending shard of a stage to the
 * cluster as a persisted `RunShard` message and waits for the replies. Each shard is its own entity; a runner that
 * dies has its messages redelivered to the runner that takes over its cluster shards once its lease expires. The
 * primary key also names this run, so a shard that failed in an earlier run is tried again by the next one rather
 * than answered from the stored reply.
 *
 * Placement: Effect Cluster puts an entity on the runner that owns the hash of its id, which with a few shards gives
 * one runner more than its share while another idles. So the shards go out through lanes, `weight + 1` per healthy
 * runner (its weight is its `--slots`: that many shards run there while one more waits in its mailbox, so a runner
 * never idles between two shards for the message poll): a lane sends the next pending shard when its previous one is
 * answered (a work queue), under an entity id that hashes to a cluster shard its runner owns
 * (`<stage>/<key>/<shard>~<salt>`, the smallest salt that lands there, from the healthy runners' hash ring, computed
 * as the runners compute it). If the ring moved meanwhile (a runner died or
 * joined), the message still reaches whichever runner owns that cluster shard now: placement is a hint, delivery is
 * the cluster's.
 */
import * as crypto from "node:crypto"
import { Effect, Equal, HashRing } from "effect"
import { EntityId, Runner, type RunnerAddress, Sharding } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { describeError } from "../errors/describe.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { StageError } from "../pipeline/errors.ts"
import { stageCode } from "../pipeline/plan.ts"
import { describeRange, type ShardExecutorShape } from "../pipeline/shards.ts"
import { lanesOf, saltedEntityId, SHARDS_PER_GROUP } from "./placement.ts"
import { ShardEntity, shardEntityId } from "./protocol.ts"

/** The entity group of `LlinkShard` (Effect Cluster's default). */
const SHARD_GROUP = "default"

/** The executor over the cluster in context (`clientLayer`); `stages` give each stage's code digest. */
export const makeClusterExecutor = <R>(stages: ReadonlyArray<AnyStage<R>>, options: { readonly log: (line: string) => void }) =>
  Effect.gen(function*() {
    const clientFor = yield* ShardEntity.client
    const sharding = yield* Sharding.Sharding
    const sql = yield* SqlClient.SqlClient
    /**
     * The healthy runners (none before any runner created the cluster's tables), the lanes (each runner `weight + 1`
     * times) and, per cluster shard (index = id − 1), its owner: the hash ring every runner builds.
     */
    const ring = sql<{ readonly runner: string }>`SELECT runner FROM cluster_runners WHERE healthy ORDER BY address`.pipe(
      Effect.map((rows) => {
        const runners = rows.map((r) => Runner.Runner.decodeSync(r.runner)).filter((r) => r.groups.includes(SHARD_GROUP))
        const hashRing = HashRing.make<RunnerAddress.RunnerAddress>()
        for (const r of runners) HashRing.add(hashRing, r.address, { weight: r.weight })
        return { runners: runners.length, lanes: lanesOf(runners), owners: HashRing.getShards(hashRing, SHARDS_PER_GROUP) ?? [] }
      }),
      Effect.orElseSucceed(() => ({ runners: 0, lanes: [] as Array<RunnerAddress.RunnerAddress>, owners: [] as Array<RunnerAddress.RunnerAddress> }))
    )
    /** `base`, or `base~<salt>` with the smallest salt whose cluster shard `runner` owns (`base` if none in 10,000). */
    const entityIdOn = (base: string, runner: RunnerAddress.RunnerAddress, now: { readonly owners: ReadonlyArray<RunnerAddress.RunnerAddress> }): string =>
      saltedEntityId(base, runner, now.owners, (id) => sharding.getShardId(EntityId.make(id), SHARD_GROUP).id, Equal.equals)
    const runId = `${process.pid}-${Date.now()}-${crypto.randomBytes(4).toString("hex")}`
    const executor: ShardExecutorShape = {
      describe: Effect.map(ring, ({ runners: n }) => {
        if (n === 0) options.log("no runner is registered yet: shards wait until one starts (`llink runner --cluster …`)")
        return `the cluster (${n} runner${n === 1 ? "" : "s"})`
      }),
      runAll: (job, pending, onDone) =>
        Effect.gen(function*() {
          const stage = stages.find((s) => s.name === job.stage)
          if (stage === undefined) return yield* new StageError({ stage: job.stage, message: "unknown stage" })
          const code = (yield* stageCode(stage))?.digest ?? ""
          const send = (range: (typeof pending)[number], entityId: string) =>
            clientFor(entityId)
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
                    message: `shard ${describeRange(range)} failed on the cluster: ${describeError(e)}`,
                    cause: e
                  })
                )
              )
          const first = yield* ring
          if (first.lanes.length === 0) {
            // no runner yet: every shard waits, by its plain id, for whichever runner comes to own it
            return yield* Effect.forEach(pending, (range) => send(range, shardEntityId(job.stage, job.key, range)), { concurrency: "unbounded", discard: true })
          }
          const queue = [...pending]
          const lane = (runner: RunnerAddress.RunnerAddress): Effect.Effect<void, StageError> =>
            Effect.gen(function*() {
              while (queue.length > 0) {
                const range = queue.shift()!
                const now = yield* ring
                yield* send(range, entityIdOn(shardEntityId(job.stage, job.key, range), runner, now))
              }
            })
          yield* Effect.forEach(first.lanes, lane, { concurrency: "unbounded", discard: true })
        })
    }
    return executor
  })
