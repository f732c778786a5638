/**
 * `llink run [--config FILE] [--set path=value ...] [--run-dir DIR] [--only STAGE] [--until STAGE] [--force STAGE ...]`
 *
 * Loads the config, runs the DAG against the content-addressed cache (`<cacheDir>` from the config), prints a
 * per-stage table (stage, status, time, rows) and the run dir. Exit code 1 when a stage failed (each failure printed
 * as `<stage> failed: <file>:<line>: <reason>`) or when the run could not start (config, lock, DAG errors); either way
 * followed by `next:` lines saying what to run next (src/cli/runHints.ts).
 *
 */
import { fileURLToPath } from "node:url"
import * as os from "node:os"
import * as path from "node:path"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { formatPreflight, runPreflight } from "../pipeline/preflight.ts"
import { ArtifactStore } from "../pipeline/cache.ts"
import { loadConfig } from "../nodes/config.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { makeConsoleReporter } from "../pipeline/progress.ts"
import { runPipeline, type RunError, type RunReport } from "../pipeline/runner.ts"
import type { ClusterError } from "../cluster/client.ts"
import { configFlag, DEFAULT_RUN_DIR, formatTable, parseDuration, runDirFlag, setFlag } from "./kit.ts"
import { hintsForError, hintsForFailedRun, type RunInvocation } from "./runHints.ts"
import { describeError } from "../errors/describe.ts"

const formatRows = (rows: Readonly<Record<string, number | null>>): string => {
  const counted = Object.entries(rows).filter((e): e is [string, number] => e[1] !== null)
  if (counted.length === 0) return ""
  if (counted.length === 1 && Object.keys(rows).length === 1) return counted[0][1].toLocaleString("en-US")
  return counted.map(([name, n]) => `${name}=${n.toLocaleString("en-US")}`).join(", ")
}

const formatTime = (ms: number): string => (ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`)

/** The final table of `llink run`, then the run dir. */
export const formatRunReport = (report: RunReport, cwd: string = process.cwd()): string => {
  const table = formatTable(
    ["stage", "status", "time", "rows"],
    report.stages.map((s) => [
      s.stage,
      s.status,
      s.status === "ran" || s.status === "failed" ? formatTime(s.durationMs) : "-",
      formatRows(s.rows)
    ])
  )
  const runDir = path.relative(cwd, report.runDir) || "."
  return `${table}\n\nrun dir: ${runDir.startsWith("..") ? report.runDir : runDir} (manifest.json, artifacts/)`
}

/**
 * The runner's two slots compute at once, each heavy stage in its own process: each gets its share of the cores for
 * OpenBLAS and for the wasm fallback's XNNPACK pool, unless `LLINK_BLAS_THREADS` / `LLINK_WASM_THREADS` says
 * otherwise. On 2 cores, two processes with two BLAS threads each ran the default in 626 s, with one each in 577 s
 * (the models stage alone: 222 s → 147 s).
 */
const childEnv = (): Record<string, string> => {
  const share = String(Math.max(1, Math.floor(os.availableParallelism() / 2)))
  return {
    ...(process.env.LLINK_BLAS_THREADS !== undefined ? {} : { LLINK_BLAS_THREADS: share }),
    ...(process.env.LLINK_WASM_THREADS !== undefined ? {} : { LLINK_WASM_THREADS: share })
  }
}

/** The `run` subcommand over `stages`. */
export const makeRunCommand = <R>(stages: ReadonlyArray<AnyStage<R>>) =>
  Command.make(
    "run",
    {
      config: configFlag,
      set: setFlag,
      runDir: runDirFlag,
      only: Flag.String("only").pipe(
        Flag.withDescription("run just this stage (its upstream artifacts must already be published)"),
        Flag.optional
      ),
      until: Flag.String("until").pipe(Flag.withDescription("run this stage and the stages it depends on"), Flag.optional),
      force: Flag.String("force").pipe(
        Flag.withDescription("rerun this stage even if its result is cached (repeatable)"),
        Flag.atLeast(0)
      ),
      cluster: Flag.String("cluster").pipe(
        Flag.withDescription("send the shards of the sharded stages to the runners of this cluster (postgres://…)"),
        Flag.optional
      ),
      lease: Flag.String("lease").pipe(
        Flag.withDescription("with --cluster: how long a silent runner keeps its shards, e.g. 35s"),
        Flag.withDefault("35 seconds")
      ),
      inProcess: Flag.Boolean("in-process").pipe(
        Flag.withDefault(false),
        Flag.withDescription("run every stage in this process (by default the heavy ones run in child processes, one core each)")
      ),
      skipPreflight: Flag.Boolean("skip-preflight").pipe(
        Flag.withDefault(false),
        Flag.withDescription("start without first checking the corpus, snapshot folders, endpoints and cache folder")
      )
    },
    (flags) => {
      const invocation: RunInvocation = {
        config: Option.getOrUndefined(flags.config),
        set: flags.set,
        runDir: flags.runDir,
        defaultRunDir: DEFAULT_RUN_DIR
      }
      const stageNames = stages.map((s) => s.name)
      return Effect.gen(function*() {
        const only = Option.getOrUndefined(flags.only)
        const until = Option.getOrUndefined(flags.until)
        if (only !== undefined && until !== undefined) {
          process.stderr.write("error: --only and --until cannot be combined\n")
          process.exitCode = 2
          return
        }
        const config = yield* loadConfig({ file: Option.getOrUndefined(flags.config), sets: flags.set })
        if (!flags.skipPreflight) {
          const checked = yield* runPreflight(stages, { config, runDir: flags.runDir, cacheDir: config.value.cacheDir, only, until }).pipe(
            Effect.provide(ArtifactStore.layer(config.value.cacheDir))
          )
          if (checked.problems.length > 0) {
            process.stderr.write(`${formatPreflight(checked)}\n`)
            process.exitCode = 1
            return
          }
          process.stderr.write(`${formatPreflight(checked)}\n`)
        }
        const reporter = makeConsoleReporter()
        const pipeline = runPipeline(stages, {
          config,
          runDir: flags.runDir,
          only,
          until,
          force: flags.force,
          reporter,
          childScript: flags.inProcess ? undefined : fileURLToPath(new URL("./stageChild.ts", import.meta.url)),
          childEnv: childEnv()
        }).pipe(Effect.provide(ArtifactStore.layer(config.value.cacheDir, reporter.warn)))
        const url = Option.getOrUndefined(flags.cluster)
        const lease = parseDuration(flags.lease)
        if (lease === undefined) {
          process.stderr.write(`error: --lease ${flags.lease}: expected a duration such as 35s, 500ms or 2m\n`)
          process.exitCode = 2
          return
        }
        // --cluster: the cluster client is loaded only then (src/cluster/client.ts).
        const sharded: Effect.Effect<RunReport, RunError | ClusterError, R> = url === undefined
          ? pipeline
          : Effect.flatMap(
            Effect.promise(() => import("../cluster/client.ts")),
            (cluster) => cluster.withCluster(stages, { url, lease, log: (line) => reporter.log("cluster", line) }, pipeline)
          )
        const report = yield* sharded.pipe(Effect.ensuring(Effect.sync(() => reporter.close())))
        yield* Console.log(formatRunReport(report))
        for (const stage of report.stages) {
          if (stage.status === "failed") process.stderr.write(`${stage.stage} failed: ${stage.error ?? "unknown error"}\n`)
        }
        const hints = hintsForFailedRun(report, invocation, { cacheDir: config.value.cacheDir, configFile: config.file, stages: stageNames })
        for (const hint of hints) process.stderr.write(`${hint}\n`)
        if (report.failed) process.exitCode = 1
      }).pipe(
        // The error, then what to do about it.
        Effect.catch((error) =>
          Effect.sync(() => {
            process.stderr.write(`error: ${describeError(error)}\n`)
            for (const hint of hintsForError(error, invocation, stageNames)) process.stderr.write(`${hint}\n`)
            process.exitCode = 1
          })
        )
      )
    }
  ).pipe(Command.withDescription("Run the pipeline (cached stages are not rerun)"))
