/**
 * The run manifest, `<run-dir>/manifest.json`: the lock file of a run directory (what DVC calls `dvc.lock`).
 *
 * One entry per stage, keyed by stage name: the content key, what happened in the latest run (`status`), and the
 * lineage of the last state recorded here (params, input and external digests, outputs with digests, rows and cache
 * paths, metrics, duration, tool versions). The manifest is cumulative: a stage that the latest run did not execute
 * (`status: "skipped"`, with a `reason`) keeps the lineage recorded for it before, so `llink status` can still
 * explain what would change. It is rewritten atomically after every stage, so a crash leaves the lineage so far.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema, Version } from "effect"
import { ArtifactError } from "./errors.ts"
import { readTextIfExists, writeFileAtomic } from "./fsAtomic.ts"
import type { StageMeta } from "./cache.ts"
import type { PreparedStage } from "./plan.ts"

/** Versions of the software that produced a result. */
export const ToolInfo = Schema.Struct({ llink: Schema.String, node: Schema.String, effect: Schema.String })
export type ToolInfo = typeof ToolInfo.Type

const readLlinkVersion = (): string => {
  const file = new URL("../../package.json", import.meta.url)
  const json: unknown = JSON.parse(fs.readFileSync(file, "utf8"))
  return typeof json === "object" && json !== null && "version" in json && typeof json.version === "string"
    ? json.version
    : "unknown"
}

let cachedTool: ToolInfo | undefined
/** llink's version (package.json), Node's and effect's. */
export const toolInfo = (): ToolInfo => {
  cachedTool ??= { llink: readLlinkVersion(), node: process.version, effect: Version.getCurrentVersion() }
  return cachedTool
}

export const StageStatus = Schema.Literals(["ran", "cached", "failed", "skipped"])
export type StageStatus = typeof StageStatus.Type

export const ManifestOutput = Schema.Struct({
  digest: Schema.String,
  /** Rows reported by the stage, null for outputs that are not row-shaped. */
  rows: Schema.NullOr(Schema.Number),
  /** Absolute path of the published file (or folder) in the cache. */
  path: Schema.String
})
export type ManifestOutput = typeof ManifestOutput.Type

/** The source files a stage's code digest covers (`src/pipeline/sourceGraph.ts`): file → sha256, and their digest. */
export const CodeRecord = Schema.Struct({
  digest: Schema.String,
  files: Schema.Record(Schema.String, Schema.String)
})
export type CodeRecord = typeof CodeRecord.Type

export const ManifestStage = Schema.Struct({
  /** Content key of the recorded state; null when this run dir never got as far as computing it. */
  key: Schema.NullOr(Schema.String),
  status: StageStatus,
  /** Why a stage was skipped (excluded by --only/--until, upstream failure, not reached). */
  reason: Schema.optionalKey(Schema.String),
  version: Schema.NullOr(Schema.String),
  params: Schema.Unknown,
  inputs: Schema.Record(Schema.String, Schema.String),
  externalInputs: Schema.Record(Schema.String, Schema.String),
  /** The stage's code when this state was recorded (absent: no source declared, or an older manifest). */
  code: Schema.optionalKey(Schema.NullOr(CodeRecord)),
  outputs: Schema.Record(Schema.String, ManifestOutput),
  metrics: Schema.Record(Schema.String, Schema.Unknown),
  durationMs: Schema.Number,
  /** The failure message (`status: "failed"`). */
  error: Schema.optionalKey(Schema.String),
  /** When this entry's state was recorded. */
  recordedAt: Schema.String,
  tool: ToolInfo
})
export type ManifestStage = typeof ManifestStage.Type

export const ManifestConfig = Schema.Struct({
  /** The config file (absolute), or null when none existed and all defaults were used. */
  path: Schema.NullOr(Schema.String),
  /** sha256 of the canonical JSON of the effective (decoded) config. */
  digest: Schema.String,
  /** The `--set path=value` overrides applied on top of the file. */
  overrides: Schema.Array(Schema.String),
  /** The effective config itself. */
  value: Schema.Unknown
})
export type ManifestConfig = typeof ManifestConfig.Type

export const Manifest = Schema.Struct({
  manifestVersion: Schema.Literal(1),
  /** When the latest run started. */
  createdAt: Schema.String,
  /** When the manifest was last written. */
  updatedAt: Schema.String,
  config: ManifestConfig,
  /** The options of the latest run (`only`, `until`, `force`). */
  options: Schema.Struct({
    only: Schema.NullOr(Schema.String),
    until: Schema.NullOr(Schema.String),
    force: Schema.Array(Schema.String)
  }),
  stages: Schema.Record(Schema.String, ManifestStage),
  tool: ToolInfo
})
export type Manifest = typeof Manifest.Type

export const manifestPath = (runDir: string): string => path.join(runDir, "manifest.json")

/**
 * Reads `<run-dir>/manifest.json`; a missing file is None. A file that does not decode (an older format, a hand
 * edit) is also None, reported through `warn`, since the manifest is rebuilt by the next run.
 */
export const readManifest = Effect.fn("Manifest.read")(function*(runDir: string, warn: (message: string) => void) {
  const file = manifestPath(runDir)
  const text = yield* readTextIfExists(file)
  if (text === undefined) return undefined
  const decoded = yield* Effect.result(
    Effect.try({ try: () => JSON.parse(text) as unknown, catch: (cause) => cause }).pipe(
      Effect.flatMap((json) => Schema.decodeUnknownEffect(Manifest)(json))
    )
  )
  if (decoded._tag === "Success") return decoded.success
  warn(`ignoring unreadable manifest ${file}: ${String(decoded.failure)}`)
  return undefined
})

/** Writes the manifest atomically (temporary file + fsync + rename + fsync of the folder). */
export const writeManifest = (runDir: string, manifest: Manifest): Effect.Effect<void, ArtifactError> =>
  writeFileAtomic(manifestPath(runDir), `${JSON.stringify(manifest, null, 2)}\n`)

// ---- entry builders (the runner records one per stage) ---------------------------------------------------------

/** An entry for a stage with no recorded lineage, skipped for `reason`. */
export const emptyEntry = (reason: string): ManifestStage => ({
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
export const skippedEntry = (previous: ManifestStage | undefined, reason: string): ManifestStage => {
  if (previous === undefined) return emptyEntry(reason)
  const { error: _error, ...rest } = previous
  return { ...rest, status: "skipped", reason }
}

/** The entry of a published stage (`ran`, `cached`, or `skipped` when --only used its outputs). */
export const entryFromMeta = (
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

/** The entry of a stage that failed, with what was known of it (nothing before its key was computed). */
export const failedEntry = (
  version: string,
  prepared: PreparedStage | undefined,
  error: string,
  durationMs: number
): ManifestStage => ({
  key: prepared?.key ?? null,
  status: "failed",
  version,
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
