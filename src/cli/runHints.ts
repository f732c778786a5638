/**
 * What `llink run` says to do next when it fails: lines starting with `next:`, printed after the error.
 *
 * - A stage failed: rerun (cached stages are reused, the failed stage and those after it run), or iterate on that
 *   stage alone with `--only`; where the error names a file in another stage's cached output, `--force` that stage
 *   to recompute it; a defect (a bug, not bad input) says so; the stage's own config section, with its line.
 * - The config did not load (`ConfigError`, whose message already names `file:line: field`): edit that line or that
 *   `--set`, and `llink status` checks a config without running anything.
 * - The run directory is locked (`LockError`): wait for the holder (its pid), or use another `--run-dir`.
 * - `--only S` without its upstream published: run `--until S` first.
 * - An unknown stage name: the closest known one.
 *
 * Every suggested command repeats the invocation's `--config`, `--set` and `--run-dir`, so it can be pasted.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { locateJsonPaths } from "../pipeline/configLoad.ts"
import type { RunReport } from "../pipeline/runner.ts"

/** How `llink run` was called (what a suggested command must repeat). */
export interface RunInvocation {
  readonly config: string | undefined
  readonly set: ReadonlyArray<string>
  readonly runDir: string
  /** The default run directory (not repeated). */
  readonly defaultRunDir: string
}

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/
/** One shell word (single-quoted when it has characters the shell would interpret). */
export const shellWord = (s: string): string => (SAFE.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)

/** `npx llink run` with the invocation's config, overrides and run directory, then `extra`. */
export const runCommand = (inv: RunInvocation, extra: ReadonlyArray<string> = [], command = "run"): string =>
  [
    `npx llink ${command}`,
    ...(inv.config === undefined ? [] : ["--config", shellWord(inv.config)]),
    ...inv.set.flatMap((s) => ["--set", shellWord(s)]),
    ...(inv.runDir === inv.defaultRunDir ? [] : ["--run-dir", shellWord(inv.runDir)]),
    ...extra
  ].join(" ")

/** The stage whose cached output holds `file`, if it lies in `<cacheDir>/<stage>/<key>/`. */
const cachedOwner = (file: string, cacheDir: string, stages: ReadonlyArray<string>): string | undefined => {
  const rel = path.relative(cacheDir, file)
  if (rel.startsWith("..") || path.isAbsolute(rel)) return undefined
  const [stage, key] = rel.split(path.sep)
  return stages.includes(stage) && key !== undefined && !key.startsWith(".tmp-") && !key.endsWith(".partial") ? stage : undefined
}

/** Absolute paths mentioned in an error message. */
const pathsIn = (message: string): Array<string> => [...message.matchAll(/(\/[^\s:'"`,;)]+)/g)].map((m) => m[1])

/** The line of a top-level section in the config file (1-based), if the file has it. */
export const sectionLine = (configFile: string | null, section: string): number | undefined => {
  if (configFile === null) return undefined
  let text: string
  try {
    text = fs.readFileSync(configFile, "utf8")
    JSON.parse(text)
  } catch {
    // The config was read moments ago; if it cannot be read again, the hint just leaves the line out.
    return undefined
  }
  return locateJsonPaths(text).get(JSON.stringify([section]))
}

/** Hints after a run in which stages failed. */
export const hintsForFailedRun = (
  report: RunReport,
  inv: RunInvocation,
  context: { readonly cacheDir: string; readonly configFile: string | null; readonly stages: ReadonlyArray<string> }
): Array<string> => {
  const failed = report.stages.filter((s) => s.status === "failed")
  if (failed.length === 0) return []
  const skipped = report.stages.filter((s) => s.status === "skipped" && s.reason !== undefined && /upstream/.test(s.reason)).length
  const hints: Array<string> = []
  for (const s of failed) {
    const error = s.error ?? ""
    if (error.startsWith("defect:")) {
      hints.push(`next: ${s.stage} hit a bug in llink (a defect, not bad input): the stack is above; please report it`)
    }
    const owners = [...new Set(pathsIn(error).flatMap((p) => {
      const owner = cachedOwner(p, context.cacheDir, context.stages)
      return owner === undefined || owner === s.stage ? [] : [owner]
    }))]
    for (const owner of owners) {
      hints.push(`next: the error names ${owner}'s cached output; if it is damaged, recompute it: ${runCommand(inv, ["--force", owner])}`)
    }
    const line = sectionLine(context.configFile, s.stage)
    if (line !== undefined && context.configFile !== null) {
      hints.push(`next: ${s.stage}'s settings are at ${path.relative(process.cwd(), context.configFile) || context.configFile}:${line}`)
    }
    hints.push(`next: to retry ${s.stage} alone (its upstream is cached): ${runCommand(inv, ["--only", s.stage])}`)
  }
  hints.push(
    `next: after fixing the cause, rerun: ${runCommand(inv)} (cached stages are reused` +
      `${skipped > 0 ? `; the ${skipped} stage${skipped === 1 ? "" : "s"} skipped after the failure will run` : ""})`
  )
  return hints
}

/** Levenshtein distance (for "did you mean"). */
const distance = (a: string, b: string): number => {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]
    d[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
      prev = cur
    }
  }
  return d[b.length]
}

/** The error's tag, for errors from the pipeline (tagged errors). */
const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" ? error._tag : undefined
const field = (error: unknown, name: string): string | undefined => {
  if (typeof error !== "object" || error === null || !(name in error)) return undefined
  const v: unknown = (error as Record<string, unknown>)[name]
  return typeof v === "string" ? v : undefined
}

/** Hints after an error that stopped the run before or around the stages (config, lock, selection). */
export const hintsForError = (error: unknown, inv: RunInvocation, stages: ReadonlyArray<string>): Array<string> => {
  switch (tagOf(error)) {
    case "ConfigError": {
      const message = field(error, "message") ?? ""
      const first = message.split("\n")[0]
      const where = /^(.+?:\d+): /.exec(first)?.[1]
      // `--set SOURCE: field: reason` names the override; the suggested check leaves that one out.
      const badSet = first.startsWith("--set ") ? first.slice("--set ".length, first.indexOf(": ")) : undefined
      const fix = badSet !== undefined ? `correct --set ${badSet}` : where !== undefined ? `edit ${where}` : "fix the config as the error says"
      const check = runCommand({ ...inv, set: inv.set.filter((s) => s !== badSet) }, [], "status")
      return [`next: ${fix}, then check the config without running anything: ${check}`]
    }
    case "LockError": {
      const holder = field(error, "holder") ?? ""
      const pid = /^pid (\d+)/.exec(holder)?.[1]
      return [
        `next: wait for that run to finish${pid === undefined ? "" : ` (ps -p ${pid})`}, or run into another directory: ` +
          runCommand({ ...inv, runDir: `${inv.runDir.replace(/\/+$/, "")}-2` })
      ]
    }
    case "MissingUpstreamError": {
      const stage = field(error, "stage")
      return stage === undefined ? [] : [`next: compute its upstream first: ${runCommand(inv, ["--until", stage])}`]
    }
    case "UnknownStageError": {
      const name = field(error, "stage") ?? ""
      const best = [...stages].sort((a, b) => distance(name, a) - distance(name, b))[0]
      return best === undefined || distance(name, best) > Math.max(2, Math.floor(name.length / 2)) ? [] : [`next: did you mean ${best}?`]
    }
    default:
      return []
  }
}
