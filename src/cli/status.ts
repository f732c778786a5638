/**
 * `llink status [--config FILE] [--set path=value ...] [--run-dir DIR]`
 *
 * For every stage, without running anything: up to date or not, and why — which parameter changed (old → new,
 * against the run dir's manifest), which input artifact or external file changed, a stage version bump, never run,
 * or "upstream X will rerun" when a stage's inputs depend on a stage that is not up to date.
 */
import { Console, Effect, Option } from "effect"
import { Command } from "effect/cli"
import { ArtifactStore } from "../pipeline/cache.ts"
import { loadConfig } from "../nodes/config.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { explainStatus, type StageState, type StageStatusReport } from "../pipeline/plan.ts"
import { configFlag, formatTable, reportCommandError, runDirFlag, setFlag } from "./kit.ts"

const stateLabel: Record<StageState, string> = {
  "up-to-date": "up to date",
  cached: "cached",
  "will-run": "will run",
  blocked: "will run",
  error: "error"
}

/** The status table: one row per stage, further reasons on continuation lines. */
export const formatStatus = (reports: ReadonlyArray<StageStatusReport>): string =>
  formatTable(
    ["stage", "state", "why"],
    reports.flatMap((r) => {
      const [first = "", ...rest] = r.reasons
      return [[r.stage, stateLabel[r.state], first], ...rest.map((reason) => ["", "", reason])]
    })
  )

/** The `status` subcommand over `stages`. */
export const makeStatusCommand = <R>(stages: ReadonlyArray<AnyStage<R>>) =>
  Command.make("status", { config: configFlag, set: setFlag, runDir: runDirFlag }, (flags) =>
    Effect.gen(function*() {
      const config = yield* loadConfig({ file: Option.getOrUndefined(flags.config), sets: flags.set })
      const reports = yield* explainStatus(stages, { config, runDir: flags.runDir }).pipe(
        Effect.provide(ArtifactStore.layer(config.value.cacheDir))
      )
      yield* Console.log(formatStatus(reports))
    }).pipe(reportCommandError)).pipe(
      Command.withDescription("Say which stages are up to date and why the others would rerun (runs nothing)")
    )
