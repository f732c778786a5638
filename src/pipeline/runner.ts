/**
 * The runner: executes the stage DAG in topological order against the content-addressed cache.
 *
 * For each selected stage, once its upstream stages are done: decode params, digest inputs, compute the key
 * (`plan.ts`). If `<cacheDir>/<stage>/<key>/` is published the stage is `cached`; otherwise (or with `--force`) it
 * runs into a temporary folder and is published atomically (`cache.ts`), status `ran`. A failing stage is `failed`
 * (its error message recorded); stages below it are `skipped`, independent branches go on. Independent stages run
 * concurrently, at most `concurrency` (default 2) at a time.
 *
 * Selection: everything by default; `until` = that stage and its ancestors; `only` = that stage alone, whose
 * upstream artifacts must already be published for the current config (else `MissingUpstreamError`).
 *
 * Around the run: the run-dir lock (`lock.ts`), leftover temporary folders of dead processes removed, the manifest
 * (`manifest.ts`) rewritten atomically after every stage, and `<run-dir>/artifacts/<file>` symlinks to the published
 * files the run used. A stage's Effect may require services (`R`): they pass through to the caller.
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
  manifestPath,
  readManifest,
  toolInfo,
  writeManifest,
  type Manifest,
  type ManifestStage,
  type StageStatus
} from "./manifest.ts"
import { prepareStage, upstreamArtifact, type PreparedStage, type RunConfig } from "./plan.ts"
import { checkOutput } from "./shapes.ts"
import { removeShards, runShardedStage } from "./shards.ts"
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

const emptyEntry = (reason: string): ManifestStage => ({
  key: null,
  status: "skipped",
  reason,
  version: null,
  params: null,
  inputs: {},
  externalInputs: {},
  outputs: {},
  metrics: {},
  durationMs: 0,
  recordedAt: new Date().toISOString(),
  tool: toolInfo()
})

/** A skipped entry: keeps the lineage recorded before (if any), marks it skipped with `reason`. */
const skippedEntry = (previous: ManifestStage | undefined, reason: string): ManifestStage => {
  if (previous === undefined) return emptyEntry(reason)
  const { error: _error, ...rest } = previous
  return { ...rest, status: "skipped", reason }
}

const entryFromMeta = (
  cacheRoot: string,
  meta: StageMeta,
  status: StageStatus,
  extra?: { readonly reason?: string }
): ManifestStage => ({
  key: meta.key,
  status,
  ...(extra?.reason !== undefined ? { reason: extra.reason } : {}),
  version: meta.version,
  params: meta.params,
  inputs: meta.inputs,
  externalInputs: meta.externalInputs,
  ...(meta.code === undefined ? {} : { code: meta.code }),
  outputs: Object.fromEntries(
    Object.entries(meta.outputs).map(([name, o]) => [
      name,
      { digest: o.digest, rows: o.rows, path: path.join(cacheRoot, meta.stage, meta.key, o.file) }
    ])
  ),
  metrics: meta.metrics,
  durationMs: meta.durationMs,
  recordedAt: new Date().toISOString(),
  tool: meta.tool
})

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

/** Runs the pipeline (see the module doc). Stage failures do not fail the Effect: see `RunReport.failed`. */
export const runPipeline = <R>(
  stages: ReadonlyArray<AnyStage<R>>,
  options: RunOptions
): Effect.Effect<RunReport, RunError, R | ArtifactStore> =>
  Effect.gen(function*() {
    const reporter = options.reporter ?? makeConsoleReporter()
    const warn = reporter.warn
    const store = yield* ArtifactStore
    const dag = yield* buildDag(stages)
    const runDir = path.resolve(options.runDir)
    const force = new Set(options.force ?? [])
    for (const name of force) yield* requireStage(dag, name, "--force")
    const only = options.only
    const until = only === undefined ? options.until : undefined
    if (only !== undefined) yield* requireStage(dag, only, "--only")
    if (until !== undefined) yield* requireStage(dag, until, "--until")

    const selected = new Set<string>(
      only !== undefined ? [only] : until !== undefined ? [...dag.ancestors(until), until] : dag.order
    )
    // --until: summaries (stages with optional inputs, such as the report) whose required inputs are all selected
    // run too, on what the selection computes.
    if (until !== undefined) {
      for (const name of dag.order) {
        const stage = dag.stage(name)
        if ((stage.optionalInputs ?? []).length > 0 && dag.requiredUpstream(name).every((u) => selected.has(u))) {
          selected.add(name)
        }
      }
    }
    const excludedBy = only !== undefined ? `--only ${only}` : `--until ${until}`
    for (const name of force) {
      if (!selected.has(name)) warn(`--force ${name} has no effect: ${name} is excluded by ${excludedBy}`)
    }

    return yield* withRunLock(runDir, warn, () =>
      Effect.gen(function*() {
        for (const name of dag.order) {
          const removed = yield* store.cleanupTemps(name)
          if (removed > 0) reporter.log(name, `removed ${removed} temporary folder(s) left by an interrupted run`)
        }
        for (const dir of [runDir, path.join(runDir, "artifacts"), store.root]) yield* removeStaleTempFiles(dir)

        // The manifest starts from the previous one: every stage is "skipped" until this run reaches it.
        const previous = yield* readManifest(runDir, warn)
        const startedAt = new Date().toISOString()
        const entries: Record<string, ManifestStage> = {}
        for (const name of dag.order) {
          entries[name] = skippedEntry(
            previous?.stages[name],
            selected.has(name) ? "not reached (the run stopped before this stage)" : `excluded by ${excludedBy}`
          )
        }
        const manifest = (): Manifest => ({
          manifestVersion: 1,
          createdAt: startedAt,
          updatedAt: new Date().toISOString(),
          config: {
            path: options.config.file,
            digest: options.config.digest,
            overrides: [...options.config.overrides],
            value: options.config.value
          },
          options: { only: only ?? null, until: until ?? null, force: [...force] },
          stages: { ...entries },
          tool: toolInfo()
        })
        const manifestLock = yield* Semaphore.make(1)
        const record = (name: string, entry: ManifestStage) =>
          manifestLock.withPermits(1)(
            Effect.suspend(() => {
              entries[name] = entry
              return writeManifest(runDir, manifest())
            })
          )

        const reports = new Map<string, StageRunReport>()
        /** Per stage: its published meta once done, or None when its outputs are not available (failed, skipped). */
        const done = new Map<string, Deferred.Deferred<Option.Option<StageMeta>>>()
        for (const name of dag.order) done.set(name, yield* Deferred.make<Option.Option<StageMeta>>())
        const published = new Map<string, StageMeta>()
        const upstreamOf = (artifact: string) => {
          const producer = dag.artifacts.get(artifact)
          const meta = producer === undefined ? undefined : published.get(producer.stage)
          return meta === undefined ? undefined : upstreamArtifact(store.root, meta, artifact)
        }

        // --only: every ancestor must already be published for the current config.
        if (only !== undefined) {
          for (const name of dag.ancestors(only)) {
            const prepared = yield* prepareStage(dag.stage(name), options.config, upstreamOf).pipe(
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
            const hit = yield* store.lookup(name, prepared.key)
            if (Option.isNone(hit)) {
              const artifacts = dag.stage(name).outputs.map((o) => o.name)
              return yield* new MissingUpstreamError({
                stage: only,
                upstream: name,
                artifact: artifacts.join(", "),
                message: `--only ${only}: upstream stage ${name} (artifact${artifacts.length === 1 ? "" : "s"} ` +
                  `${artifacts.join(", ")}) is not published for the current config; ` +
                  `run \`llink run --until ${only}\` (or \`--until ${name}\`) first`
              })
            }
            published.set(name, hit.value)
            entries[name] = entryFromMeta(store.root, hit.value, "skipped", {
              reason: `excluded by --only ${only}; its published outputs were used`
            })
            yield* linkArtifacts(dag, runDir, store.root, hit.value, warn)
            yield* Deferred.succeed(done.get(name)!, Option.some(hit.value))
          }
        }

        yield* writeManifest(runDir, manifest())

        const permits = yield* Semaphore.make(Math.max(1, options.concurrency ?? 2))

        const failedEntry = (
          name: string,
          prepared: PreparedStage | undefined,
          error: string,
          durationMs: number
        ): ManifestStage => ({
          key: prepared?.key ?? null,
          status: "failed",
          version: dag.stage(name).version,
          params: prepared?.params.json ?? null,
          inputs: prepared?.inputs ?? {},
          externalInputs: prepared?.externalInputs ?? {},
          ...(prepared === undefined ? {} : { code: prepared.code }),
          outputs: {},
          metrics: {},
          durationMs,
          error,
          recordedAt: new Date().toISOString(),
          tool: toolInfo()
        })

        /** Prepares, looks up and (if needed) runs and publishes one stage. None when its outputs are unavailable. */
        const execute = (
          name: string
        ): Effect.Effect<Option.Option<StageMeta>, ArtifactError, R | ArtifactStore> =>
          Effect.gen(function*() {
            const stage = dag.stage(name)
            const t0 = performance.now()
            const elapsed = () => Math.round(performance.now() - t0)
            const fail = (prepared: PreparedStage | undefined, error: string) =>
              Effect.gen(function*() {
                const key = prepared?.key ?? null
                reports.set(name, { stage: name, status: "failed", key, durationMs: elapsed(), rows: {}, error })
                yield* record(name, failedEntry(name, prepared, error, elapsed()))
                return Option.none<StageMeta>()
              })

            const preparedResult = yield* Effect.result(prepareStage(stage, options.config, upstreamOf))
            if (preparedResult._tag === "Failure") return yield* fail(undefined, formatFailure(preparedResult.failure))
            const prepared = preparedResult.success

            if (!force.has(name)) {
              const lookup = yield* Effect.result(store.lookup(name, prepared.key))
              if (lookup._tag === "Failure") return yield* fail(prepared, formatFailure(lookup.failure))
              const hit = lookup.success
              if (Option.isSome(hit)) {
                // Scratch space of an earlier, interrupted (e.g. forced) run of this key is stale now.
                const scratch = store.scratchDir(name, prepared.key)
                if (fs.existsSync(scratch)) {
                  yield* trySync(scratch, "remove stale scratch folder", () =>
                    fs.rmSync(scratch, { recursive: true, force: true }))
                }
                const rows = rowsOf(stage, hit.value.outputs)
                reports.set(name, { stage: name, status: "cached", key: prepared.key, durationMs: elapsed(), rows })
                yield* record(name, entryFromMeta(store.root, hit.value, "cached"))
                yield* linkArtifacts(dag, runDir, store.root, hit.value, warn)
                return hit
              }
            }

            const attempt = store.withTempDir(name, prepared.key, (tmpDir) =>
              Effect.gen(function*() {
                const scratchDir = store.scratchDir(name, prepared.key)
                const outputs: Record<string, string> = {}
                for (const decl of stage.outputs) outputs[decl.name] = path.join(tmpDir, decl.file)
                yield* trySync(tmpDir, "prepare output folders", () => {
                  fs.mkdirSync(scratchDir, { recursive: true })
                  for (const file of Object.values(outputs)) fs.mkdirSync(path.dirname(file), { recursive: true })
                })
                reporter.log(name, force.has(name) ? "running (forced)" : "running")
                const runStart = performance.now()
                const ctx = {
                  params: prepared.params.value,
                  inputs: prepared.inputPaths,
                  outputs,
                  scratchDir,
                  runDir,
                  progress: (label: string, total?: number) => reporter.progress(name, label, total),
                  log: (message: string) => reporter.log(name, message)
                }
                const outcome = yield* (stage.sharding === undefined
                  ? stage.run(ctx)
                  : runShardedStage(stage, ctx, { root: store.root, key: prepared.key }))
                const durationMs = Math.round(performance.now() - runStart)
                for (const decl of stage.outputs) yield* checkOutput(name, decl, outputs[decl.name])
                const metrics = yield* Effect.try({
                  try: () => JSON.parse(canonicalJson(outcome.metrics ?? {})) as Record<string, unknown>,
                  catch: (cause) =>
                    new StageError({ stage: name, message: `metrics are not JSON: ${describeError(cause)}` })
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
                  replace: force.has(name)
                })
              })
            ).pipe(
              Effect.onInterrupt(() =>
                record(name, failedEntry(name, prepared, "interrupted", elapsed())).pipe(
                  Effect.catch((e) =>
                    Effect.sync(() => warn(`could not record the interruption of ${name}: ${e.message}`))
                  )
                )
              )
            )

            const exit = yield* Effect.exit(attempt)
            if (Exit.isFailure(exit)) return yield* fail(prepared, describeCauseOf(exit.cause))
            const meta = exit.value
            if (stage.sharding !== undefined) {
              yield* removeShards(store.root, name, prepared.key).pipe(
                Effect.catch((e) => Effect.sync(() => warn(`could not remove the shards of ${name}: ${e.message}`)))
              )
            }
            const rows = rowsOf(stage, meta.outputs)
            reports.set(name, { stage: name, status: "ran", key: meta.key, durationMs: elapsed(), rows })
            yield* record(name, entryFromMeta(store.root, meta, "ran"))
            yield* linkArtifacts(dag, runDir, store.root, meta, warn)
            reporter.log(name, `done in ${(meta.durationMs / 1000).toFixed(1)}s`)
            return Option.some(meta)
          })

        const runNode = (name: string): Effect.Effect<void, ArtifactError, R | ArtifactStore> => {
          const deferred = done.get(name)!
          return Effect.gen(function*() {
            const missing: Array<string> = []
            const required = dag.requiredUpstream(name)
            for (const up of dag.upstream(name)) {
              // An optional input's producer is waited for only when this run selected it; its absence is fine.
              if (!required.includes(up) && !selected.has(up)) continue
              const result = yield* Deferred.await(done.get(up)!)
              if (Option.isNone(result) && required.includes(up)) missing.push(up)
            }
            if (missing.length > 0) {
              const reason = `upstream ${missing.join(", ")} did not complete`
              reports.set(name, { stage: name, status: "skipped", key: null, durationMs: 0, rows: {}, reason })
              yield* record(name, skippedEntry(previous?.stages[name], reason))
              yield* Deferred.succeed(deferred, Option.none())
              return
            }
            const result = yield* permits.withPermits(1)(execute(name))
            if (Option.isSome(result)) published.set(name, result.value)
            yield* Deferred.succeed(deferred, result)
          }).pipe(Effect.onExit(() => Deferred.succeed(deferred, Option.none())))
        }

        yield* Effect.forEach(dag.order.filter((n) => selected.has(n)), runNode, {
          concurrency: "unbounded",
          discard: true
        })
        yield* store.saveDigests

        const final = manifest()
        yield* writeManifest(runDir, final)
        const stageReports = dag.order.map((name): StageRunReport => {
          const report = reports.get(name)
          if (report !== undefined) return report
          const entry = final.stages[name]
          return {
            stage: name,
            status: entry.status,
            key: entry.key,
            durationMs: 0,
            rows: rowsOf(dag.stage(name), entry.outputs),
            ...(entry.reason !== undefined ? { reason: entry.reason } : {})
          }
        })
        return {
          runDir,
          manifestPath: manifestPath(runDir),
          stages: stageReports,
          failed: stageReports.some((r) => r.status === "failed"),
          manifest: final
        }
      }))
  }).pipe(Effect.withSpan("Runner.run"))
