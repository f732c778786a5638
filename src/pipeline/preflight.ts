/**
 * Pre-flight: before the first stage of `llink run` (and in `llink doctor --config`), check every external input of
 * the stages that will run, and print every problem at once, one line each, naming the config line to edit.
 *
 * - Which stages: the run's selection (`--only`, `--until`), less the stages `llink status` finds up to date or
 *   cached (they will not run, so what they read is not needed again).
 * - Each such stage's own `preflight` (corpus files exist and look like their format, snapshot folders hold the
 *   right architecture, endpoints answer with their key set) and its parameters decoding.
 * - The cache folder: writable, and its disk's free space against a rough estimate of what the run writes (twice
 *   the size of the external inputs it reads, plus 256 MiB).
 *
 * Where a field comes from: `file:line` when the config file sets it, the `--set` that set it, or "default" when
 * neither does (the line to add it to is the file's, or `llink.config.json` when there is none).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import type { ArtifactStore } from "./cache.ts"
import type { ArtifactError } from "./errors.ts"
import { locateJsonPaths } from "./configLoad.ts"
import { type AnyStage, buildDag, type DagError } from "./dag.ts"
import { decodeStageParams, explainStatus, type RunConfig } from "./plan.ts"
import { describeError } from "../errors/describe.ts"

export interface PreflightFinding {
  readonly stage: string
  /** Dotted config path, e.g. `corpus.path`. */
  readonly field: string
  /** `llink.config.json:4`, `--set corpus.path=…`, or `default (llink.config.json)`. */
  readonly where: string
  readonly message: string
}

export interface PreflightReport {
  /** Stages whose inputs were checked (they will run). */
  readonly checked: ReadonlyArray<string>
  /** Stages left out because their result is already published for the current key. */
  readonly cached: ReadonlyArray<string>
  readonly problems: ReadonlyArray<PreflightFinding>
}

export interface PreflightOptions {
  readonly config: RunConfig
  readonly runDir: string
  readonly cacheDir: string
  readonly only?: string | undefined
  readonly until?: string | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

const MiB = 2 ** 20

/** Bytes of a file, or of every file under a folder (0 when absent). */
const sizeOf = (p: string): number => {
  try {
    const st = fs.statSync(p)
    if (!st.isDirectory()) return st.size
    return fs.readdirSync(p).reduce((a, name) => a + sizeOf(path.join(p, name)), 0)
  } catch {
    // an absent input is the stage's own pre-flight problem; here it only weighs nothing
    return 0
  }
}

/** Where `field` is set: its line in the config file, the `--set` that set it, or the default. */
const locator = (config: RunConfig): ((field: string) => string) => {
  const file = config.file
  let lines: ReadonlyMap<string, number> = new Map()
  if (file !== null) {
    try {
      lines = locateJsonPaths(fs.readFileSync(file, "utf8"))
    } catch {
      // the config already parsed when it was loaded; an unreadable file now only costs the line numbers
      lines = new Map()
    }
  }
  const display = file === null ? "llink.config.json" : path.relative(process.cwd(), file) || file
  return (field) => {
    const parts = field.split(".")
    const set = [...config.overrides].reverse().find((o) => {
      const at = o.slice(0, Math.max(0, o.indexOf("="))).split(".")
      return at.every((k, i) => parts[i] === undefined || parts[i] === k)
    })
    if (set !== undefined) return `--set ${set}`
    for (let n = parts.length; n >= 1; n--) {
      const line = lines.get(JSON.stringify(parts.slice(0, n)))
      if (line !== undefined) return `${display}:${line}`
    }
    return `default (${display})`
  }
}

/** The cache folder: creatable, writable, with room for what the run writes. */
const cacheProblems = (cacheDir: string, needBytes: number): Array<string> => {
  try {
    fs.mkdirSync(cacheDir, { recursive: true })
    const probe = path.join(cacheDir, `.preflight-${process.pid}`)
    fs.writeFileSync(probe, "ok")
    fs.rmSync(probe)
  } catch (e) {
    return [`${cacheDir}: not writable (${describeError(e)})`]
  }
  const st = fs.statfsSync(cacheDir)
  const free = st.bavail * st.bsize
  return free >= needBytes
    ? []
    : [`${cacheDir}: ${(free / MiB).toFixed(0)} MiB free, and this run may write about ${(needBytes / MiB).toFixed(0)} MiB`]
}

/** Checks every external input of the stages that will run; never runs a stage. */
export const runPreflight = <R>(
  stages: ReadonlyArray<AnyStage<R>>,
  options: PreflightOptions
): Effect.Effect<PreflightReport, DagError | ArtifactError, ArtifactStore> =>
  Effect.gen(function*() {
    const env = options.env ?? process.env
    const dag = yield* buildDag(stages)
    const selected = new Set<string>(
      options.only !== undefined
        ? [options.only]
        : options.until !== undefined
        ? [...dag.ancestors(options.until), options.until]
        : dag.order
    )
    const status = yield* explainStatus(stages, { config: options.config, runDir: options.runDir, warn: () => {} })
    const stateOf = new Map(status.map((s) => [s.stage, s]))
    const where = locator(options.config)
    const problems: Array<PreflightFinding> = []
    const checked: Array<string> = []
    const cached: Array<string> = []
    let inputBytes = 0
    for (const name of dag.order) {
      if (!selected.has(name)) continue
      const st = stateOf.get(name)
      if (st !== undefined && (st.state === "up-to-date" || st.state === "cached")) {
        cached.push(name)
        continue
      }
      checked.push(name)
      const stage = dag.stage(name)
      const params = yield* Effect.result(decodeStageParams(stage, options.config))
      if (params._tag === "Failure") {
        const e = params.failure
        problems.push({ stage: name, field: e.path, where: where(e.path), message: e.message })
        continue
      }
      const own = stage.preflight === undefined ? [] : yield* stage.preflight(params.success.value, { env })
      for (const p of own) problems.push({ stage: name, field: p.field, where: where(p.field), message: p.message })
      if (own.length === 0 && st?.state === "error") {
        // the key could not be computed and the stage's own checks do not say why: pass on the planner's reason
        for (const reason of st.reasons) problems.push({ stage: name, field: name, where: where(name), message: reason })
      }
      for (const p of stage.externalInputs?.(params.success.value) ?? []) inputBytes += sizeOf(p)
    }
    for (const message of cacheProblems(path.resolve(options.cacheDir), 2 * inputBytes + 256 * MiB)) {
      problems.push({ stage: "(cache)", field: "cacheDir", where: where("cacheDir"), message })
    }
    return { checked, cached, problems }
  }).pipe(Effect.withSpan("Preflight.run"))

/** The report as text: one line per problem, or a one-line pass. */
export const formatPreflight = (report: PreflightReport): string => {
  const scope = `${report.checked.length} stage${report.checked.length === 1 ? "" : "s"} checked` +
    (report.cached.length > 0 ? `, ${report.cached.length} cached` : "")
  if (report.problems.length === 0) return `pre-flight: no problem (${scope})`
  const n = report.problems.length
  return [
    `pre-flight: ${n} problem${n === 1 ? "" : "s"} (${scope}); nothing has run:`,
    ...report.problems.map((p) => `  ${p.where}: ${p.field}: ${p.message}`),
    "Fix them and run again, or pass --skip-preflight to start anyway."
  ].join("\n")
}
