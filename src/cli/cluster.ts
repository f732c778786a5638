/**
 * `llink runner --cluster URL [--listen HOST[:PORT]] [--slots N] [--lease DURATION] [--grace DURATION] [--verbose]`:
 * a runner process. It registers with the cluster in PostgreSQL, takes shards of the sharded stages and writes them
 * into the shared cache (the runner must see `cacheDir` at the same path as the coordinator), until stopped.
 * - `--listen HOST:0` (or `HOST`, or the default) takes a free port and registers the address it bound, so several
 *   runners share a machine without picking ports.
 * - SIGTERM or SIGINT: no new shard starts; running shards get `--grace` (default 10 s) to finish; then the lease is
 *   released (with the database there; its shards move at once) and the process exits, within the grace period
 *   whatever happens. A second signal exits at once.
 * - While PostgreSQL is away: one line on the loss, at most one a minute, one when it is back (`src/cluster/health.ts`);
 *   `--verbose` also prints every failed storage call in full.
 *
 * `llink cluster status --cluster URL [--lease DURATION]`: the registered runners with the age of their last
 * heartbeat (those past the lease marked expired) and, per stage, shards done, running and pending.
 *
 * The cluster modules are imported on demand, so `llink` without `--cluster` never loads them.
 */
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { Console, Duration, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { leaseState } from "../cluster/drain.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { formatTable, parseDuration, reportCommandError } from "./kit.ts"

export const clusterFlag = Flag.String("cluster").pipe(
  Flag.withDescription("PostgreSQL URL of the cluster (postgres://user@host:port/db); shards of encode and teacher run on its runners"),
  Flag.optional
)
export const leaseFlag = Flag.String("lease").pipe(
  Flag.withDescription("how long a silent runner keeps its shards before they move to another runner, e.g. 35s"),
  Flag.withDefault("35 seconds")
)

const loadCluster = Effect.promise(() => import("../cluster/client.ts"))

/** `host:port`, `host:0` or `host` (port 0: pick a free one); undefined when it is none of these. */
export const parseListen = (text: string): { readonly host: string; readonly port: number } | undefined => {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(text.trim())
  if (m === null) return undefined
  const port = m[2] === undefined ? 0 : Number(m[2])
  return port > 65535 ? undefined : { host: m[1], port }
}

/** A port free on `host` now: bound with port 0 and released (another process could take it before we do; rare). */
const freePort = (host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

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
        Flag.withDescription("host[:port] this runner listens on and other runners reach it at; port 0 or none takes a free one"),
        Flag.withDefault("127.0.0.1:0")
      ),
      slots: Flag.Int("slots").pipe(Flag.withDescription("shards this runner computes at once"), Flag.withDefault(1)),
      lease: leaseFlag,
      grace: Flag.String("grace").pipe(
        Flag.withDescription("on SIGTERM, how long running shards may take to finish before the runner exits anyway"),
        Flag.withDefault("10s")
      ),
      verbose: Flag.Boolean("verbose").pipe(Flag.withDefault(false), Flag.withDescription("log every failed storage call in full, stacks included"))
    },
    (flags) =>
      Effect.gen(function*() {
        const url = yield* requireCluster(flags.cluster)
        if (url === undefined) return
        const listen = parseListen(flags.listen)
        if (listen === undefined) {
          process.stderr.write(`error: --listen ${flags.listen}: expected host:port, host:0 or host\n`)
          process.exitCode = 2
          return
        }
        const lease = parseDuration(flags.lease)
        const grace = parseDuration(flags.grace)
        for (const [flag, value, parsed] of [["--lease", flags.lease, lease], ["--grace", flags.grace, grace]] as const) {
          if (parsed === undefined) {
            process.stderr.write(`error: ${flag} ${value}: expected a duration such as 35s, 500ms or 2m\n`)
            process.exitCode = 2
            return
          }
        }
        const port = listen.port !== 0 ? listen.port : yield* Effect.promise(() => freePort(listen.host))
        const address = `${listen.host}:${port}`
        const cluster = yield* loadCluster
        const log = (line: string) => process.stderr.write(`[runner ${address}] ${line}\n`)
        log(`joining the cluster at ${cluster.redactUrl(url)} (${flags.slots} slot(s), lease ${flags.lease}, grace ${flags.grace})`)
        return yield* cluster.launchRunner(stages, {
          url,
          host: listen.host,
          port,
          slots: flags.slots,
          lease,
          grace,
          verbose: flags.verbose,
          childScript: fileURLToPath(new URL("./shardChild.ts", import.meta.url)),
          log
        })
      }).pipe(reportCommandError)
  ).pipe(Command.withDescription("Run shards of the sharded stages for `llink run --cluster` (until stopped)"))

const statusCommand = Command.make("status", { cluster: clusterFlag, lease: leaseFlag }, (flags) =>
  Effect.gen(function*() {
    const url = yield* requireCluster(flags.cluster)
    if (url === undefined) return
    const lease = parseDuration(flags.lease)
    if (lease === undefined) {
      process.stderr.write(`error: --lease ${flags.lease}: expected a duration such as 35s, 500ms or 2m\n`)
      process.exitCode = 2
      return
    }
    const cluster = yield* loadCluster
    const status = yield* cluster.clusterStatus(url)
    const leaseSeconds = Duration.toSeconds(lease)
    yield* Console.log(
      status.runners.length === 0
        ? "runners: none registered"
        : formatTable(
          ["runner", "healthy", "last heartbeat", "lease"],
          status.runners.map((r) => [
            r.address,
            r.healthy ? "yes" : "no",
            `${r.heartbeatAgeSeconds.toFixed(1)} s ago`,
            leaseState(r.heartbeatAgeSeconds, leaseSeconds, flags.lease)
          ])
        )
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
