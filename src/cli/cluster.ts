/**
 * `llink runner --cluster URL [--listen HOST:PORT] [--slots N] [--lease DURATION]`: a runner process. It registers
 * with the cluster in PostgreSQL, takes shards of the sharded stages (`encode`, `teacher`) and writes them into the
 * shared cache (the runner must see `cacheDir` at the same path as the coordinator), until stopped.
 *
 * `llink cluster status --cluster URL`: the registered runners and, per stage, shards done, running and pending.
 *
 * The cluster modules are imported on demand, so `llink` without `--cluster` never loads them.
 */
import { fileURLToPath } from "node:url"
import { Console, Duration, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import type { AnyStage } from "../pipeline/dag.ts"
import { formatTable, reportCommandError } from "./run.ts"

export const clusterFlag = Flag.String("cluster").pipe(
  Flag.withDescription("PostgreSQL URL of the cluster (postgres://user@host:port/db); shards of encode and teacher run on its runners"),
  Flag.optional
)
export const leaseFlag = Flag.String("lease").pipe(
  Flag.withDescription("how long a silent runner keeps its shards before they move to another runner, e.g. 35s"),
  Flag.withDefault("35 seconds")
)

const loadCluster = Effect.promise(() => import("../cluster/client.ts"))

/** `30s`, `500ms`, `2m` (or `30 seconds`, `500 millis`, `2 minutes`) → a Duration; undefined when it is not one. */
export const parseLease = (text: string): Duration.Duration | undefined => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|millis|s|seconds|m|minutes)$/.exec(text.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  return m[2] === "ms" || m[2] === "millis" ? Duration.millis(n) : m[2] === "s" || m[2] === "seconds" ? Duration.seconds(n) : Duration.minutes(n)
}

const requireCluster = (flag: Option.Option<string>) =>
  Option.isNone(flag)
    ? Effect.sync(() => {
      process.stderr.write("error: --cluster postgres://… is required\n")
      process.exitCode = 2
      return undefined
    })
    : Effect.succeed(flag.value)

export const makeRunnerCommand = <R>(stages: ReadonlyArray<AnyStage<R>>) =>
  Command.make(
    "runner",
    {
      cluster: clusterFlag,
      listen: Flag.String("listen").pipe(
        Flag.withDescription("host:port this runner listens on and other runners reach it at"),
        Flag.withDefault("127.0.0.1:34431")
      ),
      slots: Flag.Int("slots").pipe(Flag.withDescription("shards this runner computes at once"), Flag.withDefault(1)),
      lease: leaseFlag
    },
    (flags) =>
      Effect.gen(function*() {
        const url = yield* requireCluster(flags.cluster)
        if (url === undefined) return
        const m = /^(.+):(\d+)$/.exec(flags.listen)
        if (m === null) {
          process.stderr.write(`error: --listen ${flags.listen}: expected host:port\n`)
          process.exitCode = 2
          return
        }
        const lease = parseLease(flags.lease)
        if (lease === undefined) {
          process.stderr.write(`error: --lease ${flags.lease}: expected a duration such as 35s, 500ms or 2m\n`)
          process.exitCode = 2
          return
        }
        const cluster = yield* loadCluster
        const log = (line: string) => process.stderr.write(`[runner ${flags.listen}] ${line}\n`)
        log(`joining the cluster at ${cluster.redactUrl(url)} (${flags.slots} slot(s), lease ${flags.lease})`)
        return yield* cluster.launchRunner(stages, {
          url,
          host: m[1],
          port: Number(m[2]),
          slots: flags.slots,
          lease,
          childScript: fileURLToPath(new URL("./shardChild.ts", import.meta.url)),
          log
        })
      }).pipe(reportCommandError)
  ).pipe(Command.withDescription("Run shards of the sharded stages for `llink run --cluster` (until stopped)"))

const statusCommand = Command.make("status", { cluster: clusterFlag }, (flags) =>
  Effect.gen(function*() {
    const url = yield* requireCluster(flags.cluster)
    if (url === undefined) return
    const cluster = yield* loadCluster
    const status = yield* cluster.clusterStatus(url)
    yield* Console.log(
      status.runners.length === 0
        ? "runners: none registered"
        : formatTable(["runner", "healthy", "last heartbeat"], status.runners.map((r) => [r.address, r.healthy ? "yes" : "no", r.lastHeartbeat]))
    )
    const stages = Object.entries(status.stages)
    yield* Console.log(
      stages.length === 0
        ? "\nshards: none sent yet"
        : `\n${formatTable(["stage", "done", "running", "pending"], stages.map(([s, c]) => [s, String(c.done), String(c.running), String(c.pending)]))}`
    )
  }).pipe(reportCommandError)).pipe(Command.withDescription("List the cluster's runners and the shards per stage"))

export const clusterCommand = Command.make("cluster").pipe(
  Command.withDescription("Inspect the cluster (`llink cluster status --cluster URL`)"),
  Command.withSubcommands([statusCommand])
)
