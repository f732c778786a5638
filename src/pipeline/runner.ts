/**
 * The runner: executes the stage DAG in topological order against the content-addressed cache.
 *
 * For each selected stage, once its upstream stages are done: decode params, digest inputs, compute the key
 * (`plan.ts`). If `<cacheDir>/<stage>/<key>/` is published the stage is `cached`; otherwise (or with `--force`) it
 * runs into a temporary folder and is published atomically (`cache.ts`), status `ran`. A failing stage is `failed`
 * (its error message recorded); stages below it are `skipped`, independent branches go on. Independent stages run
 * concurrently, at most `concurrency` (default 2) at a time; a freed slot goes to the waiting stage on the longest
 * path of stages (`permits.ts`). Given a child script, `heavy` stages run in child processes
 * (`childStage.ts`), so concurrent stages compute on separate cores.
 *
 * Selection: everything by default; `until` = that stage and its ancestors; `only` = that stage alone, whose
 * upstream artifacts must already be published for the current config (else `MissingUpstreamError`).
 *
 * Around the run: the run-dir lock (`lock.ts`), leftover temporary folders of dead processes removed, the manifest
 * (`manifest.ts`) rewritten atomically after every stage, and `<run-dir>/artifacts/<file>` symlinks to the published
 * files the run used. A stage's Effect may require services (`R`): they pass through to the caller.
 *
 * The steps, each a named effect: `selectStages` (pure), `openRun` (the manifest from the previous one, every stage
 * "not reached"), `useOnlyAncestors` (--only), `scheduleStage` (wait for upstream) → `executeStage` (prepare, look
 * up, else `runAndPublish`), `reportOf`. The manifest's entries are built in `manifest.ts`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Cause, Deferred, Effect, Exit, Option, Semaphore } from "effect"
import { ArtifactStore, type StageMeta } from "./cache.ts"
import { buildDag, requireStage, type AnyStage, type Dag, type DagError } from "./dag.ts"
import { canonicalJson } from "./digest.ts"
import {
  ArtifactError,
  ConfigError,
  LockError,
  MissingUpstreamError,
  StageError,
  UnknownStageError
} from "./errors.ts"
import { errnoCode } from "../formats/file.ts"
import { removeStaleTempFiles, trySync, uniqueSuffix } from "./fsAtomic.ts"
import { withRunLock } from "./lock.ts"
import {
  entryFromMeta,
  failedEntry,
  manifestPath,
  readManifest,
  skippedEntry,
  toolInfo,
  writeManifest,
  type Manifest,
  type ManifestStage,
  type StageStatus
} from "./manifest.ts"
import { prepareStage, upstreamArtifact, type PreparedStage, type RunConfig, type UpstreamArtifact } from "./plan.ts"
import { checkOutput } from "./shapes.ts"
import { onCluster, removeShards, runShardedStage } from "./shards.ts"
import { runStageInChild } from "./childStage.ts"
import { makePriorityPermits, type PriorityPermits, stagePriorities } from "./permits.ts"
import { makeConsoleReporter, type Reporter } from "./progress.ts"
import { describeError } from "../errors/describe.ts"

export interface RunOptions {
  readonly config: RunConfig
  /** The run directory (manifest, artifact links, lock). */
  readonly runDir: string
  /** Run just this stage (its upstream artifacts must be published). */
  readonly only?: string | undefined
  /** Run this stage and its ancestors only. */
  readonly until?: string | undefined
  /** Rerun these stages even when their key is published. */
  readonly force?: ReadonlyArray<string> | undefined
  /** How many stages may run at once (default 2). */
  readonly concurrency?: number | undefined
  /** The script that runs one stage in a child process (`childStage.ts`; the CLI's `stageChild.ts`). Given, the
   *  `heavy` stages run there (sharded ones only when no cluster takes their shards); absent, every stage runs in
   *  this process. */
  readonly childScript?: string | undefined
  /** Environment variables added to every child's (e.g. how many BLAS threads each may use). */
  readonly childEnv?: Readonly<Record<string, string>> | undefined
  /** Console output (default: progress bars and logs on stderr). */
  readonly reporter?: Reporter | undefined
}

export interface StageRunReport {
  readonly stage: string
  readonly status: StageStatus
  readonly key: string | null
  /** Time this run spent on the stage (ms). */
  readonly durationMs: number
  /** Rows per output artifact (null for outputs that are not row-shaped). */
  readonly rows: Readonly<Record<string, number | null>>
  /** `status: "failed"`: the error, formatted (`<file>:<line>: <reason>` where known). */
  readonly error?: string
  /** `status: "skipped"`: why. */
  readonly reason?: string
}

export interface RunReport {
  readonly runDir: string
  readonly manifestPath: string
  /** In topological order. */
  readonly stages: ReadonlyArray<StageRunReport>
  readonly failed: boolean
  readonly manifest: Manifest
}

export type RunError =
  | DagError
  | UnknownStageError
  | MissingUpstreamError
  | LockError
  | ArtifactError
  | ConfigError

/** A stage failure as one line: `<file>:<line>: <reason>` for errors that carry a location. */
export const formatFailure = (error: unknown): string => {
  const text = formatError(error)
  const full = diskFull(error)
  if (full === undefined) return text
  return `${text}${text.includes(full) ? "" : ` (${full})`}: the disk is full; free space and rerun (published ` +
    `results are unchanged, only this stage's temporary folder was discarded)`
}

const formatError = (error: unknown): string => {
  if (error instanceof StageError) {
    const where = error.file !== undefined ? `${error.file}${error.line !== undefined ? `:${error.line}` : ""}: ` : ""
    return `${where}${error.message}`
  }
  if (error instanceof ArtifactError) return `${error.path}: ${error.message}`
  if (error instanceof Error) return error.message
  return String(error)
}

/** `ENOSPC` / `EDQUOT` when `error` or one of its causes is a full-disk (or quota) error. */
const diskFull = (error: unknown): string | undefined => {
  let e: unknown = error
  for (let depth = 0; depth < 6 && e instanceof Error; depth++) {
    const code = errnoCode(e)
    if (code === "ENOSPC" || code === "EDQUOT") return code
    e = e.cause
  }
  return undefined
}

const describeCauseOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) return formatFailure(failure.value)
  const defect = Cause.findDefect(cause)
  if (defect._tag === "Success") {
    const d = defect.success
    return d instanceof Error ? `defect: ${d.stack ?? d.message}` : `defect: ${String(d)}`
  }
  return Cause.hasInterrupts(cause) ? "interrupted" : Cause.pretty(cause)
}

/**
 * Points `<run-dir>/artifacts/<linkName>` at each published output (relative symlinks, replaced atomically), and makes
 * the copies an output declares (`runCopy`: results.json and the report). Links and copies are a convenience (the
 * manifest has the paths), so a failure (no symlinks on this file system) is only a warning.
 */
const linkArtifacts = <R>(
  dag: Dag<R>,
  runDir: string,
  cacheRoot: string,
  meta: StageMeta,
  warn: (message: string) => void
) =>
  Effect.forEach(Object.entries(meta.outputs), ([name, output]) => {
    const linkName = dag.artifacts.get(name)?.linkName ?? output.file
    const link = path.join(runDir, "artifacts", linkName)
    return trySync(link, "link artifact", () => {
      fs.mkdirSync(path.dirname(link), { recursive: true })
      const tmp = `${link}.tmp-${uniqueSuffix()}`
      fs.symlinkSync(path.relative(path.dirname(link), target(cacheRoot, meta, output.file)), tmp, output.kind === "dir" ? "dir" : "file")
      fs.renameSync(tmp, link)
    }).pipe(
      Effect.andThen(copyIntoRunDir(runDir, target(cacheRoot, meta, output.file), dag.artifacts.get(name)?.decl.runCopy)),
      Effect.catch((error) => Effect.sync(() => warn(`could not link or copy ${name}: ${error.message}`)))
    )
  }, { discard: true })

const target = (cacheRoot: string, meta: StageMeta, file: string) => path.join(cacheRoot, meta.stage, meta.key, file)

/** The declared `runCopy` of one output (see `DeclBase.runCopy`); each copy is written whole, then renamed. */
const copyIntoRunDir = (runDir: string, source: string, mode: "file" | "contents" | undefined) =>
  trySync(source, "copy into the run directory", () => {
    if (mode === undefined) return
    const files = mode === "file"
      ? [source]
      : fs.readdirSync(source, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(source, e.name))
    for (const file of files) {
      const dest = path.join(runDir, path.basename(file))
      const tmp = `${dest}.tmp-${uniqueSuffix()}`
      fs.copyFileSync(file, tmp)
      fs.renameSync(tmp, dest)
    }
  })

/** Rows per output, in the stage's declaration order. */
const rowsOf = <R>(stage: AnyStage<R>, outputs: Readonly<Record<string, { readonly rows: number | null }>>) =>
  Object.fromEntries(
    stage.outputs.flatMap((o) => (outputs[o.name] === undefined ? [] : [[o.name, outputs[o.name].rows] as const]))
  )

/** The stages a run selects, and what a stage outside it is excluded by. */
export interface Selection {
  readonly selected: ReadonlySet<string>
  readonly excludedBy: string
}

/**
 * Everything by default; `until` = that stage, its ancestors, and the summaries (stages with optional inputs, such
 * as the report) whose required inputs are all selected, run on what the selection computes; `only` = that stage.
 */
export const selectStages = <R>(dag: Dag<R>, only: string | undefined, until: string | undefined): Selection => {
  const selected = new Set<string>(only !== undefined ? [only] : until !== undefined ? [...dag.ancestors(until), until] : dag.order)
  if (only === undefined && until !== undefined) {
    for (const name of dag.order) {
      const stage = dag.stage(name)
      if ((stage.optionalInputs ?? []).length > 0 && dag.requiredUpstream(name).every((u) => selected.has(u))) selected.add(name)
    }
  }
  return { selected, excludedBy: only !== undefined ? `--only ${only}` : `--until ${until}` }
}

/** One run's shared state: the selection, the manifest being written, and each stage's outcome. */
interface Run<R> {
  readonly dag: Dag<R>
  readonly store: ArtifactStore["Service"]
  readonly options: RunOptions
  readonly runDir: string
  readonly reporter: Reporter
  readonly force: ReadonlySet<string>
  readonly selection: Selection
  readonly previous: Manifest | undefined
  readonly reports: Map<string, StageRunReport>
  /** The published meta of each stage whose outputs this run can use. */
  readonly published: Map<string, StageMeta>
  /** Per stage: its published meta once done, or None when its outputs are not available (failed, skipped). */
  readonly done: Map<string, Deferred.Deferred<Option.Option<StageMeta>>>
  /** Replaces a stage's manifest entry and rewrites the manifest. */
  readonly record: (name: string, entry: ManifestStage) => Effect.Effect<void, ArtifactError>
  /** Sets an entry without writing (before the first write). */
  readonly setEntry: (name: string, entry: ManifestStage) => void
  readonly manifest: () => Manifest
}

/** The manifest starts from the previous one: every stage is "skipped" until this run reaches it. */
const openRun = Effect.fn("Runner.openRun")(function*<R>(dag: Dag<R>, options: RunOptions, reporter: Reporter, selection: Selection) {
  const store = yield* ArtifactStore
  const runDir = path.resolve(options.runDir)
  const previous = yield* readManifest(runDir, reporter.warn)
  const startedAt = new Date().toISOString()
  const entries: Record<string, ManifestStage> = {}
  for (const name of dag.order) {
    entries[name] = skippedEntry(
      previous?.stages[name],
      selection.selected.has(name) ? "not reached (the run stopped before this stage)" : `excluded by ${selection.excludedBy}`
    )
  }
  const force = new Set(options.force ?? [])
  const manifest = (): Manifest => ({
    manifestVersion: 1,
    createdAt: startedAt,
    updatedAt: new Date().toISOString(),
    config: { path: options.config.file, digest: options.config.digest, overrides: [...options.config.overrides], value: options.config.value },
    options: { only: options.only ?? null, until: options.only === undefined ? options.until ?? null : null, force: [...force] },
    stages: { ...entries },
    tool: toolInfo()
  })
  const manifestLock = yield* Semaphore.make(1)
  const done = new Map<string, Deferred.Deferred<Option.Option<StageMeta>>>()
  for (const name of dag.order) done.set(name, yield* Deferred.make<Option.Option<StageMeta>>())
  const run: Run<R> = {
    dag,
    store,
    options,
    runDir,
    reporter,
    force,
    selection,
    previous,
    reports: new Map(),
    published: new Map(),
    done,
    record: (name, entry) =>
      manifestLock.withPermits(1)(
        Effect.suspend(() => {
          entries[name] = entry
          return writeManifest(runDir, manifest())
        })
      ),
    setEntry: (name, entry) => {
      entries[name] = entry
    },
    manifest
  }
  return run
})

/** The path of `artifact` in the store, once the stage that makes it has published in this run. */
const upstreamOf = <R>(run: Run<R>) => (artifact: string): UpstreamArtifact | undefined => {
  const producer = run.dag.artifacts.get(artifact)
  const meta = producer === undefined ? undefined : run.published.get(producer.stage)
  return meta === undefined ? undefined : upstreamArtifact(run.store.root, meta, artifact)
}

/** --only: every ancestor must already be published for the current config; their outputs are used as they are. */
const useOnlyAncestors = <R>(run: Run<R>, only: string): Effect.Effect<void, MissingUpstreamError | ArtifactError | ConfigError, R | ArtifactStore> =>
  Effect.gen(function*() {
    for (const name of run.dag.ancestors(only)) {
      const prepared = yield* prepareStage(run.dag.stage(name), run.options.config, upstreamOf(run)).pipe(
        Effect.catchTag("StageError", (e) =>
          Effect.fail(
            new MissingUpstreamError({
              stage: only,
              upstream: name,
              artifact: "",
              message: `--only ${only}: cannot check upstream stage ${name}: ${formatFailure(e)}`
            })
          ))
      )
      const hit = yield* run.store.lookup(name, prepared.key)
      if (Option.isNone(hit)) {
        const artifacts = run.dag.stage(name).outputs.map((o) => o.name)
        return yield* new MissingUpstreamError({
          stage: only,
          upstream: name,
          artifact: artifacts.join(", "),
          message: `--only ${only}: upstream stage ${name} (artifact${artifacts.length === 1 ? "" : "s"} ` +
            `${artifacts.join(", ")}) is not published for the current config; ` +
            `run \`llink run --until ${only}\` (or \`--until ${name}\`) first`
        })
      }
      run.published.set(name, hit.value)
      run.setEntry(name, entryFromMeta(run.store.root, hit.value, "skipped", { reason: `excluded by --only ${only}; its published outputs were used` }))
      yield* linkArtifacts(run.dag, run.runDir, run.store.root, hit.value, run.reporter.warn)
      yield* Deferred.succeed(run.done.get(name)!, Option.some(hit.value))
    }
  }).pipe(Effect.withSpan("Runner.useOnlyAncestors"))

/** Runs one stage into a temporary folder and publishes it (the stage's error or an interruption fails the Effect). */
const runAndPublish = <R>(run: Run<R>, stage: AnyStage<R>, prepared: PreparedStage, elapsed: () => number) => {
  const name = stage.name
  const { store } = run
  return store.withTempDir(name, prepared.key, (tmpDir) =>
    Effect.gen(function*() {
      const scratchDir = store.scratchDir(name, prepared.key)
      const outputs: Record<string, string> = {}
      for (const decl of stage.outputs) outputs[decl.name] = path.join(tmpDir, decl.file)
      yield* trySync(tmpDir, "prepare output folders", () => {
        fs.mkdirSync(scratchDir, { recursive: true })
        for (const file of Object.values(outputs)) fs.mkdirSync(path.dirname(file), { recursive: true })
      })
      run.reporter.log(name, run.force.has(name) ? "running (forced)" : "running")
      const runStart = performance.now()
      const ctx = {
        params: prepared.params.value,
        inputs: prepared.inputPaths,
        outputs,
        scratchDir,
        runDir: run.runDir,
        progress: (label: string, total?: number) => run.reporter.progress(name, label, total),
        log: (message: string) => run.reporter.log(name, message)
      }
      const cluster = yield* onCluster
      const script = run.options.childScript
      const outcome = yield* (script !== undefined && stage.heavy === true && !(stage.sharding !== undefined && cluster)
        ? runStageInChild(script, {
          stage: name,
          key: prepared.key,
          root: store.root,
          params: prepared.params.json,
          inputs: prepared.inputPaths,
          outputs,
          scratchDir,
          runDir: run.runDir
        }, ctx.log, run.options.childEnv)
        : stage.sharding === undefined
        ? stage.run(ctx)
        : runShardedStage(stage, ctx, { root: store.root, key: prepared.key }))
      const durationMs = Math.round(performance.now() - runStart)
      for (const decl of stage.outputs) yield* checkOutput(name, decl, outputs[decl.name])
      const metrics = yield* Effect.try({
        try: () => JSON.parse(canonicalJson(outcome.metrics ?? {})) as Record<string, unknown>,
        catch: (cause) => new StageError({ stage: name, message: `metrics are not JSON: ${describeError(cause)}` })
      })
      return yield* store.publish({
        stage: name,
        key: prepared.key,
        tmpDir,
        outputs: stage.outputs,
        rows: outcome.rows,
        meta: {
          version: stage.version,
          params: prepared.params.json,
          inputs: prepared.inputs,
          externalInputs: prepared.externalInputs,
          ...(prepared.code === null ? {} : { code: prepared.code }),
          metrics,
          durationMs,
          tool: toolInfo()
        },
        replace: run.force.has(name)
      })
    })
  ).pipe(
    Effect.onInterrupt(() =>
      run.record(name, failedEntry(stage.version, prepared, "interrupted", elapsed())).pipe(
        Effect.catch((e) => Effect.sync(() => run.reporter.warn(`could not record the interruption of ${name}: ${e.message}`)))
      )
    )
  )
}

/** Prepares, looks up and (if needed) runs and publishes one stage. None when its outputs are unavailable. */
const executeStage = <R>(run: Run<R>, name: string): Effect.Effect<Option.Option<StageMeta>, ArtifactError, R | ArtifactStore> =>
  Effect.gen(function*() {
    const { dag, store } = run
    const stage = dag.stage(name)
    const t0 = performance.now()
    const elapsed = () => Math.round(performance.now() - t0)
    const fail = (prepared: PreparedStage | undefined, error: string) =>
      Effect.gen(function*() {
        run.reports.set(name, { stage: name, status: "failed", key: prepared?.key ?? null, durationMs: elapsed(), rows: {}, error })
        yield* run.record(name, failedEntry(stage.version, prepared, error, elapsed()))
        return Option.none<StageMeta>()
      })

    const preparedResult = yield* Effect.result(prepareStage(stage, run.options.config, upstreamOf(run)))
    if (preparedResult._tag === "Failure") return yield* fail(undefined, formatFailure(preparedResult.failure))
    const prepared = preparedResult.success

    if (!run.force.has(name)) {
      const lookup = yield* Effect.result(store.lookup(name, prepared.key))
      if (lookup._tag === "Failure") return yield* fail(prepared, formatFailure(lookup.failure))
      const hit = lookup.success
      if (Option.isSome(hit)) {
        // Scratch space of an earlier, interrupted (e.g. forced) run of this key is stale now.
        const scratch = store.scratchDir(name, prepared.key)
        if (fs.existsSync(scratch)) {
          yield* trySync(scratch, "remove stale scratch folder", () => fs.rmSync(scratch, { recursive: true, force: true }))
        }
        run.reports.set(name, { stage: name, status: "cached", key: prepared.key, durationMs: elapsed(), rows: rowsOf(stage, hit.value.outputs) })
        yield* run.record(name, entryFromMeta(store.root, hit.value, "cached"))
        yield* linkArtifacts(dag, run.runDir, store.root, hit.value, run.reporter.warn)
        return hit
      }
    }

    const exit = yield* Effect.exit(runAndPublish(run, stage, prepared, elapsed))
    if (Exit.isFailure(exit)) return yield* fail(prepared, describeCauseOf(exit.cause))
    const meta = exit.value
    if (stage.sharding !== undefined) {
      yield* removeShards(store.root, name, prepared.key).pipe(
        Effect.catch((e) => Effect.sync(() => run.reporter.warn(`could not remove the shards of ${name}: ${e.message}`)))
      )
    }
    run.reports.set(name, { stage: name, status: "ran", key: meta.key, durationMs: elapsed(), rows: rowsOf(stage, meta.outputs) })
    yield* run.record(name, entryFromMeta(store.root, meta, "ran"))
    yield* linkArtifacts(dag, run.runDir, store.root, meta, run.reporter.warn)
    run.reporter.log(name, `done in ${(meta.durationMs / 1000).toFixed(1)}s`)
    return Option.some(meta)
  }).pipe(Effect.withSpan("Runner.executeStage", { attributes: { stage: name } }))

/** Waits for a stage's upstream stages, then executes it (or records it skipped when a required one is missing). */
const scheduleStage = <R>(run: Run<R>, permits: PriorityPermits, priority: number, name: string): Effect.Effect<void, ArtifactError, R | ArtifactStore> => {
  const deferred = run.done.get(name)!
  return Effect.gen(function*() {
    const missing: Array<string> = []
    const required = run.dag.requiredUpstream(name)
    for (const up of run.dag.upstream(name)) {
      // An optional input's producer is waited for only when this run selected it; its absence is fine.
      if (!required.includes(up) && !run.selection.selected.has(up)) continue
      const result = yield* Deferred.await(run.done.get(up)!)
      if (Option.isNone(result) && required.includes(up)) missing.push(up)
    }
    if (missing.length > 0) {
      const reason = `upstream ${missing.join(", ")} did not complete`
      run.reports.set(name, { stage: name, status: "skipped", key: null, durationMs: 0, rows: {}, reason })
      yield* run.record(name, skippedEntry(run.previous?.stages[name], reason))
      yield* Deferred.succeed(deferred, Option.none())
      return
    }
    // The stage's result is announced while it still holds its slot, and the stages it wakes get a few turns to ask
    // for one, so the freed slot goes to the best of them (Stage A, woken by teacher) rather than to a baseline that
    // only asked earlier.
    yield* permits.withPermit(priority)(
      Effect.gen(function*() {
        const result = yield* executeStage(run, name)
        if (Option.isSome(result)) run.published.set(name, result.value)
        yield* Deferred.succeed(deferred, result)
        for (let i = 0; i < 4; i++) yield* Effect.yieldNow
      })
    )
  }).pipe(Effect.onExit(() => Deferred.succeed(deferred, Option.none())))
}

/** The run's report: this run's outcome per stage, the manifest's entry for the rest. */
const reportOf = <R>(run: Run<R>, final: Manifest): RunReport => {
  const stages = run.dag.order.map((name): StageRunReport => {
    const report = run.reports.get(name)
    if (report !== undefined) return report
    const entry = final.stages[name]
    return {
      stage: name,
      status: entry.status,
      key: entry.key,
      durationMs: 0,
      rows: rowsOf(run.dag.stage(name), entry.outputs),
      ...(entry.reason !== undefined ? { reason: entry.reason } : {})
    }
  })
  return { runDir: run.runDir, manifestPath: manifestPath(run.runDir), stages, failed: stages.some((r) => r.status === "failed"), manifest: final }
}

/** Runs the pipeline (see the module doc). Stage failures do not fail the Effect: see `RunReport.failed`. */
export const runPipeline = <R>(
  stages: ReadonlyArray<AnyStage<R>>,
  options: RunOptions
): Effect.Effect<RunReport, RunError, R | ArtifactStore> =>
  Effect.gen(function*() {
    const reporter = options.reporter ?? makeConsoleReporter()
    const warn = reporter.warn
    const dag = yield* buildDag(stages)
    for (const name of options.force ?? []) yield* requireStage(dag, name, "--force")
    const only = options.only
    const until = only === undefined ? options.until : undefined
    if (only !== undefined) yield* requireStage(dag, only, "--only")
    if (until !== undefined) yield* requireStage(dag, until, "--until")
    const selection = selectStages(dag, only, until)
    for (const name of options.force ?? []) {
      if (!selection.selected.has(name)) warn(`--force ${name} has no effect: ${name} is excluded by ${selection.excludedBy}`)
    }
    const store = yield* ArtifactStore
    const runDir = path.resolve(options.runDir)

    return yield* withRunLock(runDir, warn, () =>
      Effect.gen(function*() {
        for (const name of dag.order) {
          const removed = yield* store.cleanupTemps(name)
          if (removed > 0) reporter.log(name, `removed ${removed} temporary folder(s) left by an interrupted run`)
        }
        for (const dir of [runDir, path.join(runDir, "artifacts"), store.root]) yield* removeStaleTempFiles(dir)

        const run = yield* openRun(dag, options, reporter, selection)
        if (only !== undefined) yield* useOnlyAncestors(run, only)
        yield* writeManifest(runDir, run.manifest())

        const permits = makePriorityPermits(options.concurrency ?? 2)
        const priorities = stagePriorities(dag)
        yield* Effect.forEach(dag.order.filter((n) => selection.selected.has(n)), (name) => scheduleStage(run, permits, priorities.get(name) ?? 0, name), {
          concurrency: "unbounded",
          discard: true
        })
        yield* store.saveDigests
        const final = run.manifest()
        yield* writeManifest(runDir, final)
        return reportOf(run, final)
      }))
  }).pipe(Effect.withSpan("Runner.run"))
