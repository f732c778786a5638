/**
 * Comparing run directories (`llink compare RUN_DIR…`; what `dvc exp show --only-changed` and `dvc plots diff` do):
 * for two or more runs, side by side,
 * - **params**: every field of the effective config (`manifest.json` → `config.value`), flattened to dotted paths
 *   (`split.seed`); arrays are one value;
 * - **metrics**: every leaf of `results.json`, flattened the same way, with `paper` sections (the paper's constants)
 *   left out; numbers get a delta against the first run;
 * - **stages**: each stage's content key (and status) per run.
 *
 * - **intervals**: for the metrics with per-example values in both runs (retrieval ranks, chrF per output, judge
 *   verdicts per prompt; `src/artifacts/runExamples.ts`), the 95% bootstrap interval of the difference against the
 *   first run, paired when both runs scored the same examples (`src/metrics/paired.ts`), and whether the change is
 *   real (the interval excludes 0) or noise.
 *
 * By default only the rows that differ between the runs are kept (a value absent in one run differs from a present
 * one); `all: true` keeps every row. Reading works on any run directory with a `manifest.json`; `results.json` may be
 * missing (the report never ran), and then the run has no metrics, which the comparison says.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { bootstrapDifference, type Difference, type MetricExamples } from "../metrics/paired.ts"
import { errnoCode } from "../formats/file.ts"
import { Manifest, manifestPath } from "./manifest.ts"
import { describeError } from "../errors/describe.ts"

/** A run directory that cannot be compared (no manifest, unreadable files). */
export class CompareError extends Schema.TaggedError<CompareError>()("CompareError", {
  runDir: Schema.String,
  message: Schema.String
}) {}

/** A leaf value: JSON scalars, arrays as their JSON text; undefined when the run does not have the field. */
export type Leaf = string | number | boolean | null

export interface RunSnapshot {
  /** The directory as given. */
  readonly dir: string
  /** A short name for tables: the folder name, or the path as given where names repeat. */
  readonly label: string
  readonly manifest: Manifest
  /** results.json, parsed; undefined when the run has none. */
  readonly results: unknown
}

export interface CompareRow {
  readonly name: string
  /** One per run (undefined: the run does not have this field). */
  readonly values: ReadonlyArray<Leaf | undefined>
  /** For runs 2…: value − the first run's value, where both are numbers; else null. */
  readonly deltas: ReadonlyArray<number | null>
}

export interface StageRow {
  readonly stage: string
  /** One per run: the content key, null when never computed, undefined when the run has no such stage. */
  readonly keys: ReadonlyArray<string | null | undefined>
  readonly statuses: ReadonlyArray<string | undefined>
}

/** Whether a metric's change against the first run is real: the bootstrap interval of the difference. */
export interface IntervalRow {
  readonly name: string
  /** The label of the run compared with the first. */
  readonly against: string
  readonly difference: Difference
}

export interface Comparison {
  readonly runs: ReadonlyArray<{ readonly label: string; readonly dir: string; readonly hasResults: boolean }>
  /** Whether unchanged rows were kept. */
  readonly all: boolean
  readonly params: ReadonlyArray<CompareRow>
  readonly metrics: ReadonlyArray<CompareRow>
  readonly stages: ReadonlyArray<StageRow>
  /** Metrics with per-example values in the first run and another: the difference's 95% bootstrap interval. */
  readonly intervals: ReadonlyArray<IntervalRow>
  /** Per-example data that could not be used, and why (one line each, prefixed with the run's label). */
  readonly intervalNotes: ReadonlyArray<string>
}

/** A run's per-example values (`src/artifacts/runExamples.ts` reads them from a run directory). */
export interface RunExamplesInput {
  readonly metrics: ReadonlyArray<MetricExamples>
  readonly notes: ReadonlyArray<string>
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x)

/** Flattens nested objects to dotted paths → leaf values (arrays and other non-objects are leaves). */
export const flatten = (value: unknown, skipKeys: ReadonlySet<string> = new Set()): Map<string, Leaf> => {
  const out = new Map<string, Leaf>()
  const walk = (v: unknown, prefix: string) => {
    if (isRecord(v)) {
      const keys = Object.keys(v)
      if (keys.length === 0 && prefix !== "") out.set(prefix, "{}")
      for (const k of keys) if (!skipKeys.has(k)) walk(v[k], prefix === "" ? k : `${prefix}.${k}`)
      return
    }
    if (prefix === "") return
    if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") out.set(prefix, v)
    else out.set(prefix, JSON.stringify(v) ?? null)
  }
  walk(value, "")
  return out
}

const sameLeaf = (a: Leaf | undefined, b: Leaf | undefined): boolean => a === b || (Number.isNaN(a) && Number.isNaN(b))

/** Rows of several flattened maps, in first-seen order; only the differing ones unless `all`. */
const rowsOf = (maps: ReadonlyArray<ReadonlyMap<string, Leaf>>, all: boolean): Array<CompareRow> => {
  const names: Array<string> = []
  const seen = new Set<string>()
  for (const m of maps) {
    for (const k of m.keys()) {
      if (seen.has(k)) continue
      seen.add(k)
      names.push(k)
    }
  }
  const rows: Array<CompareRow> = []
  for (const name of names) {
    const values = maps.map((m) => m.get(name))
    const differs = values.some((v) => !sameLeaf(v, values[0]))
    if (!differs && !all) continue
    const first = values[0]
    const deltas = values.slice(1).map((v) => (typeof v === "number" && typeof first === "number" ? v - first : null))
    rows.push({ name, values, deltas })
  }
  return rows
}

/** Labels: folder names, or the paths as given where two folder names are equal. */
const labelsOf = (dirs: ReadonlyArray<string>): Array<string> => {
  const base = dirs.map((d) => path.basename(path.resolve(d)))
  return dirs.map((d, i) => (base.filter((b) => b === base[i]).length > 1 ? d : base[i]))
}

/** The comparison of already-read runs (see the module doc). */
export const compareRuns = (
  runs: ReadonlyArray<RunSnapshot>,
  options: {
    readonly all?: boolean
    /** Per run (same order), its per-example values; absent: no intervals. */
    readonly examples?: ReadonlyArray<RunExamplesInput | undefined>
    /** Bootstrap resamples of each interval (default 1000, seed 0). */
    readonly resamples?: number
  } = {}
): Comparison => {
  const all = options.all === true
  const params = rowsOf(runs.map((r) => flatten(r.manifest.config.value)), all)
  const metrics = rowsOf(runs.map((r) => (r.results === undefined ? new Map() : flatten(r.results, new Set(["paper"])))), all)
  const stageNames: Array<string> = []
  for (const r of runs) for (const s of Object.keys(r.manifest.stages)) if (!stageNames.includes(s)) stageNames.push(s)
  const stages: Array<StageRow> = []
  for (const stage of stageNames) {
    const keys = runs.map((r) => {
      const s = r.manifest.stages[stage]
      return s === undefined ? undefined : s.key
    })
    const statuses = runs.map((r) => r.manifest.stages[stage]?.status)
    if (all || keys.some((k) => k !== keys[0])) stages.push({ stage, keys, statuses })
  }
  const intervals: Array<IntervalRow> = []
  const intervalNotes: Array<string> = []
  const examples = options.examples ?? []
  examples.forEach((ex, i) => {
    for (const note of ex?.notes ?? []) intervalNotes.push(`${runs[i].label}: ${note}`)
  })
  const first = examples[0]
  if (first !== undefined) {
    const shown = new Set(metrics.map((m) => m.name))
    for (let i = 1; i < runs.length; i++) {
      const other = new Map((examples[i]?.metrics ?? []).map((m) => [m.name, m]))
      for (const a of first.metrics) {
        const b = other.get(a.name)
        if (b === undefined || (!all && !shown.has(a.name))) continue
        const difference = bootstrapDifference(a.table, b.table, a.statistic, { label: a.name, resamples: options.resamples ?? 1000 })
        intervals.push({ name: a.name, against: runs[i].label, difference })
      }
    }
  }
  return {
    runs: runs.map((r) => ({ label: r.label, dir: r.dir, hasResults: r.results !== undefined })),
    all,
    params,
    metrics,
    stages,
    intervals,
    intervalNotes
  }
}

const readJsonFile = (runDir: string, file: string): Effect.Effect<unknown, CompareError> =>
  Effect.try({
    try: (): unknown => {
      let text: string
      try {
        text = fs.readFileSync(file, "utf8")
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT") return undefined
        throw cause
      }
      return JSON.parse(text)
    },
    catch: (cause) => new CompareError({ runDir, message: `cannot read ${file}: ${describeError(cause)}` })
  })

/** Reads the manifest (required) and results.json (optional) of each run directory. */
export const readRuns = (dirs: ReadonlyArray<string>): Effect.Effect<Array<RunSnapshot>, CompareError> =>
  Effect.gen(function*() {
    const labels = labelsOf(dirs)
    const runs: Array<RunSnapshot> = []
    for (const [i, dir] of dirs.entries()) {
      const file = manifestPath(dir)
      const json = yield* readJsonFile(dir, file)
      if (json === undefined) {
        return yield* new CompareError({ runDir: dir, message: `${dir}: no manifest.json (not a run directory; make one with llink run --run-dir ${dir})` })
      }
      const manifest = yield* Schema.decodeUnknownEffect(Manifest)(json).pipe(
        Effect.mapError((e) => new CompareError({ runDir: dir, message: `${file} is not a manifest llink can read: ${e.message}` }))
      )
      const results = yield* readJsonFile(dir, path.join(dir, "results.json"))
      runs.push({ dir, label: labels[i], manifest, results })
    }
    return runs
  })
