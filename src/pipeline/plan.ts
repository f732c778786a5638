/**
 * Planning a stage run without running it: decode the stage's parameters, digest its external inputs, compute its
 * content key (`prepareStage`); and `explainStatus`, which does that for every stage and says, for each, whether it
 * is up to date and if not why (the `llink status` command).
 *
 * Keys and locations: a parameter string equal to one of the stage's external input paths enters the key as
 * `$external:<i>` (its position), so a key depends on the content of a corpus or model folder, not on where it lives
 * (moving a checkout, or the config's folder, keeps the cache valid). The manifest still records the real params.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Option, Schema } from "effect"
import { ArtifactStore, type StageMeta } from "./cache.ts"
import { buildDag, type AnyStage, type DagError } from "./dag.ts"
import { canonicalJson, stageKey } from "./digest.ts"
import { ArtifactError, ConfigError, StageError } from "./errors.ts"
import { type CodeRecord, readManifest, type ManifestStage } from "./manifest.ts"
import { describeIssues } from "./schemaIssues.ts"
import { openSourceGraph, type SourceGraph } from "./sourceGraph.ts"
import { describeError } from "../errors/describe.ts"

/** The part of a loaded config the engine needs (`LoadedConfig` from `configLoad.ts` fits). */
export interface RunConfig {
  /** The decoded config, handed to each stage's `selectParams`. */
  readonly value: unknown
  /** The config file, or null for all defaults. */
  readonly file: string | null
  readonly digest: string
  readonly overrides: ReadonlyArray<string>
}

export interface DecodedParams {
  /** What the stage's `params` Schema decoded (handed to `run` as `ctx.params`). */
  readonly value: unknown
  /** The same as plain JSON (sorted keys): recorded in the manifest and `_meta.json`. */
  readonly json: unknown
}


/** Decodes a stage's parameters from the config; failures are `ConfigError`s naming the stage and the field. */
export const decodeStageParams = <R>(
  stage: AnyStage<R>,
  config: RunConfig
): Effect.Effect<DecodedParams, ConfigError> =>
  Effect.gen(function*() {
    const file = config.file ?? "(defaults)"
    const configError = (at: string, message: string) =>
      new ConfigError({
        file,
        path: at === "" ? stage.name : `${stage.name}.${at}`,
        message: `${stage.name}: ${message}`
      })
    const selected = yield* Effect.try({
      try: () => stage.selectParams(config.value),
      catch: (cause) => configError("", `selectParams failed: ${describeError(cause)}`)
    })
    const value = yield* Schema.decodeUnknownEffect(stage.params)(selected).pipe(
      Effect.mapError((error) => {
        const issues = describeIssues(error.issue)
        const described = issues.map((i) => (i.path === "" ? i.text.replace(/^\(root\)/, "(params)") : i.text))
        return configError(issues[0]?.path ?? "", `invalid parameters: ${described.join("; ")}`)
      })
    )
    const json = yield* Effect.try({
      try: () => JSON.parse(canonicalJson(value)) as unknown,
      catch: (cause) => configError("", `parameters are not JSON: ${describeError(cause)}`)
    })
    return { value, json }
  }).pipe(Effect.withSpan("Plan.decodeParams"))

/** A published artifact a stage reads. */
export interface UpstreamArtifact {
  readonly path: string
  readonly digest: string
}

/** Where and what an upstream artifact is, from its producer's `_meta.json`. */
export const upstreamArtifact = (
  cacheRoot: string,
  meta: StageMeta,
  artifact: string
): UpstreamArtifact | undefined => {
  const out = meta.outputs[artifact]
  if (out === undefined) return undefined
  return { path: path.join(cacheRoot, meta.stage, meta.key, out.file), digest: out.digest }
}

/** The `src` folder above a source file (the root whose files count), else the file's own folder. */
const sourceRootOf = (file: string): string => {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (path.basename(dir) === "src") return dir
  }
  return path.dirname(file)
}

/** One graph per source root for the life of the process: each file is read and digested once per CLI call. */
const graphs = new Map<string, SourceGraph>()

/**
 * The source files a stage's declaration reaches through runtime imports (its lazily imported work module and
 * everything that imports), with their digests; null for a stage that names no `source`.
 */
export const stageCode = <R>(stage: AnyStage<R>): Effect.Effect<CodeRecord | null, StageError> =>
  stage.source === undefined
    ? Effect.succeed(null)
    : Effect.try({
      try: () => {
        const file = stage.source!.startsWith("file:") ? fileURLToPath(stage.source!) : path.resolve(stage.source!)
        const root = sourceRootOf(file)
        let graph = graphs.get(root)
        if (graph === undefined) {
          graph = openSourceGraph(root)
          graphs.set(root, graph)
        }
        const closure = graph.closure(file)
        return { digest: closure.digest, files: closure.files }
      },
      catch: (cause) =>
        new StageError({ stage: stage.name, message: `cannot read the stage's source files: ${describeError(cause)}`, cause })
    })

/** Everything about a stage run that is known before running it. */
export interface PreparedStage {
  readonly name: string
  readonly version: string
  readonly params: DecodedParams
  /** Input artifact name → digest. */
  readonly inputs: Readonly<Record<string, string>>
  /** Input artifact name → absolute path of the published file. */
  readonly inputPaths: Readonly<Record<string, string>>
  /** External input (absolute path) → digest, in declared order. */
  readonly externalInputs: Readonly<Record<string, string>>
  /** The stage's code: digest and files (null when it names no `source`). */
  readonly code: CodeRecord | null
  readonly key: string
}

const replaceExternalPaths = (json: unknown, externals: ReadonlyArray<string>): unknown => {
  const walk = (u: unknown): unknown => {
    if (typeof u === "string") {
      const i = externals.findIndex((p) => p === u || (u !== "" && path.resolve(u) === p))
      return i >= 0 ? `$external:${i}` : u
    }
    if (Array.isArray(u)) return u.map(walk)
    if (typeof u === "object" && u !== null) {
      return Object.fromEntries(Object.entries(u as Record<string, unknown>).map(([k, v]) => [k, walk(v)]))
    }
    return u
  }
  return walk(json)
}

/**
 * Decodes params, resolves inputs through `upstream` (artifact name → published artifact; an optional input that is
 * not available is left out), digests external inputs (through the digest cache) and the stage's code, and computes
 * the key.
 */
export const prepareStage = <R>(
  stage: AnyStage<R>,
  config: RunConfig,
  upstream: (artifact: string) => UpstreamArtifact | undefined
): Effect.Effect<PreparedStage, ConfigError | StageError | ArtifactError, ArtifactStore> =>
  Effect.gen(function*() {
    const store = yield* ArtifactStore
    const params = yield* decodeStageParams(stage, config)
    const inputs: Record<string, string> = {}
    const inputPaths: Record<string, string> = {}
    for (const name of stage.inputs) {
      const found = upstream(name)
      if (found === undefined) {
        return yield* new StageError({ stage: stage.name, message: `input artifact "${name}" is not available` })
      }
      inputs[name] = found.digest
      inputPaths[name] = found.path
    }
    for (const name of stage.optionalInputs ?? []) {
      const found = upstream(name)
      if (found === undefined) continue
      inputs[name] = found.digest
      inputPaths[name] = found.path
    }
    const code = yield* stageCode(stage)
    const externalPaths = yield* Effect.try({
      try: () => (stage.externalInputs?.(params.value) ?? []).map((p) => path.resolve(p)),
      catch: (cause) =>
        new StageError({ stage: stage.name, message: `externalInputs failed: ${describeError(cause)}`, cause })
    })
    const externalInputs: Record<string, string> = {}
    const externalDigests: Array<string> = []
    for (const file of externalPaths) {
      if (!fs.existsSync(file)) {
        return yield* new StageError({ stage: stage.name, file, message: "external input not found" })
      }
      const digest = yield* store.digestExternal(file)
      externalInputs[file] = digest
      externalDigests.push(digest)
    }
    const key = yield* Effect.try({
      try: () =>
        stageKey({
          stage: stage.name,
          version: stage.version,
          params: replaceExternalPaths(params.json, externalPaths),
          inputs,
          externalInputs: externalDigests,
          code: code?.digest
        }),
      catch: (cause) => new StageError({ stage: stage.name, message: `cannot compute the key: ${describeError(cause)}` })
    })
    return { name: stage.name, version: stage.version, params, inputs, inputPaths, externalInputs, code, key }
  }).pipe(Effect.withSpan("Plan.prepareStage"))

const shortDigest = (d: string | undefined): string => (d === undefined ? "(none)" : d.slice(0, 12))

/** Leaf values of a JSON value by dotted path (arrays are leaves). */
const flatten = (u: unknown, prefix: string, out: Map<string, string>): Map<string, string> => {
  if (typeof u === "object" && u !== null && !Array.isArray(u)) {
    const entries = Object.entries(u as Record<string, unknown>)
    if (entries.length === 0 && prefix !== "") out.set(prefix, "{}")
    for (const [k, v] of entries) flatten(v, prefix === "" ? k : `${prefix}.${k}`, out)
  } else {
    out.set(prefix === "" ? "(params)" : prefix, JSON.stringify(u))
  }
  return out
}

/** Per-parameter differences, `param seed: 17 → 18`. */
export const diffParams = (recorded: unknown, current: unknown): Array<string> => {
  const before = flatten(recorded, "", new Map())
  const after = flatten(current, "", new Map())
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort()
  return keys.flatMap((k) =>
    before.get(k) === after.get(k) ? [] : [`param ${k}: ${before.get(k) ?? "(absent)"} → ${after.get(k) ?? "(absent)"}`]
  )
}

/** Per-file differences of a stage's code: `code changed: src/nodes/stageB/work.ts` (added and removed files too). */
export const diffCode = (recorded: CodeRecord | null, current: CodeRecord | null): Array<string> => {
  if (current === null || recorded === null) {
    return current === null && recorded === null ? [] : current === null ? ["code: the stage no longer names its source"] : ["code: not recorded before"]
  }
  if (recorded.digest === current.digest) return []
  const changed: Array<string> = []
  const added: Array<string> = []
  const removed: Array<string> = []
  for (const [file, digest] of Object.entries(current.files)) {
    const before = recorded.files[file]
    if (before === undefined) added.push(file)
    else if (before !== digest) changed.push(file)
  }
  for (const file of Object.keys(recorded.files)) if (current.files[file] === undefined) removed.push(file)
  const out: Array<string> = []
  if (changed.length > 0) out.push(`code changed: ${changed.sort().join(", ")}`)
  if (added.length > 0) out.push(`code added: ${added.sort().join(", ")}`)
  if (removed.length > 0) out.push(`code removed: ${removed.sort().join(", ")}`)
  return out.length > 0 ? out : ["code changed"]
}

/** Why `current` differs from the state recorded in the manifest (empty when nothing visible changed). */
export const explainChange = (
  recorded: ManifestStage,
  current: {
    readonly version: string
    readonly params: unknown
    readonly inputs?: Readonly<Record<string, string>>
    readonly externalInputs?: Readonly<Record<string, string>>
    readonly code?: CodeRecord | null
  }
): Array<string> => {
  const reasons: Array<string> = []
  if (recorded.version !== null && recorded.version !== current.version) {
    reasons.push(`stage version ${recorded.version} → ${current.version}`)
  }
  if (current.code !== undefined) reasons.push(...diffCode(recorded.code ?? null, current.code))
  reasons.push(...diffParams(recorded.params, current.params))
  if (current.inputs !== undefined) {
    const names = [...new Set([...Object.keys(recorded.inputs), ...Object.keys(current.inputs)])].sort()
    for (const name of names) {
      const before = recorded.inputs[name]
      const after = current.inputs[name]
      if (before !== after) reasons.push(`input ${name} changed (${shortDigest(before)} → ${shortDigest(after)})`)
    }
  }
  if (current.externalInputs !== undefined) {
    const before = Object.values(recorded.externalInputs).sort().join(",")
    const after = Object.values(current.externalInputs).sort().join(",")
    if (before !== after) {
      const files = [...new Set([...Object.keys(recorded.externalInputs), ...Object.keys(current.externalInputs)])]
      for (const file of files.sort()) {
        const b = recorded.externalInputs[file]
        const a = current.externalInputs[file]
        if (b !== a) reasons.push(`external input ${file} changed (${shortDigest(b)} → ${shortDigest(a)})`)
      }
    }
  }
  return reasons
}

/**
 * - `up-to-date`: published in the cache for the current key, and the run dir records that key.
 * - `cached`: published for the current key (by another run dir or an older run); a run reuses it without running.
 * - `will-run`: not published for the current key; `reasons` says what changed.
 * - `blocked`: an upstream stage will rerun, so this stage's inputs (and key) are not known yet.
 * - `error`: the key cannot be computed (invalid params, missing external input).
 */
export type StageState = "up-to-date" | "cached" | "will-run" | "blocked" | "error"

export interface StageStatusReport {
  readonly stage: string
  readonly state: StageState
  /** The current key, when it can be computed. */
  readonly key: string | null
  readonly reasons: ReadonlyArray<string>
}

/**
 * Computes every stage's current key (no stage runs) and compares it with the cache and the run dir's manifest.
 */
export const explainStatus = <R>(
  stages: ReadonlyArray<AnyStage<R>>,
  options: { readonly config: RunConfig; readonly runDir: string; readonly warn?: (message: string) => void }
): Effect.Effect<ReadonlyArray<StageStatusReport>, DagError | ArtifactError, ArtifactStore> =>
  Effect.gen(function*() {
    const warn = options.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`))
    const store = yield* ArtifactStore
    const dag = yield* buildDag(stages)
    const manifest = yield* readManifest(path.resolve(options.runDir), warn)
    const published = new Map<string, StageMeta>()
    const reports: Array<StageStatusReport> = []
    const notReady = new Set<string>()
    for (const name of dag.order) {
      const stage = dag.stage(name)
      const entry = manifest?.stages[name]
      const recorded = entry !== undefined && entry.key !== null ? entry : undefined
      const lastFailure = entry?.status === "failed" && entry.error !== undefined ? [`last run failed: ${entry.error}`] : []
      const blockers = dag.upstream(name).filter((u) => notReady.has(u))
      if (blockers.length > 0) {
        const params = yield* Effect.result(decodeStageParams(stage, options.config))
        const code = yield* Effect.result(stageCode(stage))
        const own = recorded !== undefined && params._tag === "Success"
          ? explainChange(recorded, {
            version: stage.version,
            params: params.success.json,
            ...(code._tag === "Success" ? { code: code.success } : {})
          })
          : []
        notReady.add(name)
        reports.push({
          stage: name,
          state: "blocked",
          key: null,
          reasons: [...blockers.map((u) => `upstream ${u} will rerun`), ...own]
        })
        continue
      }
      const prepared = yield* Effect.result(
        prepareStage(stage, options.config, (artifact) => {
          const producer = dag.artifacts.get(artifact)
          const meta = producer === undefined ? undefined : published.get(producer.stage)
          return meta === undefined ? undefined : upstreamArtifact(store.root, meta, artifact)
        })
      )
      if (prepared._tag === "Failure") {
        notReady.add(name)
        const e = prepared.failure
        const text = e._tag === "StageError" && e.file !== undefined ? `${e.file}: ${e.message}` : e.message
        reports.push({ stage: name, state: "error", key: null, reasons: [text] })
        continue
      }
      const p = prepared.success
      const current = { version: p.version, params: p.params.json, inputs: p.inputs, externalInputs: p.externalInputs, code: p.code }
      const hit = yield* store.lookup(name, p.key)
      if (Option.isSome(hit)) {
        published.set(name, hit.value)
        if (recorded?.key === p.key && entry?.status !== "failed") {
          reports.push({ stage: name, state: "up-to-date", key: p.key, reasons: [] })
        } else {
          const changes = recorded === undefined
            ? ["not yet recorded in this run dir"]
            : explainChange(recorded, current)
          reports.push({
            stage: name,
            state: "cached",
            key: p.key,
            reasons: [`published in the cache for the current inputs (reused without running)`, ...changes]
          })
        }
        continue
      }
      notReady.add(name)
      let reasons: Array<string>
      if (recorded === undefined) reasons = ["never run in this run dir"]
      else {
        reasons = explainChange(recorded, current)
        if (reasons.length === 0) {
          reasons = recorded.key === p.key
            ? [`its published output is missing from the cache (${store.publishedDir(name, p.key)})`]
            : ["its key changed (a change not visible in params, inputs or version)"]
        }
      }
      reports.push({ stage: name, state: "will-run", key: p.key, reasons: [...lastFailure, ...reasons] })
    }
    yield* store.saveDigests
    return reports
  }).pipe(Effect.withSpan("Status.explain"))
