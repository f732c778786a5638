/**
 * The content-addressed artifact store (`ArtifactStore` service; `ArtifactStore.layer(cacheDir)`).
 *
 * Layout under the cache root:
 * - `<stage>/<key>/`: a published stage run: its output files plus `_meta.json`. Only a folder with `_meta.json`
 *   counts as published, and published folders are never modified (a `--force` rerun replaces the whole folder).
 * - `<stage>/.tmp-<key>-<pid>-<n>/`: where a run writes. After the stage succeeds, `publish` fsyncs every output,
 *   digests it, writes and fsyncs `_meta.json`, fsyncs the folder, renames it to `<key>/` and fsyncs `<stage>/`.
 *   A crash at any point leaves at most a temporary folder, which lookups ignore and `cleanupTemps` removes once its
 *   process is gone.
 * - `<stage>/<key>.partial/`: scratch space for resumable work (kept across crashes, removed after publish).
 * - `digests.json`: the digest cache of external inputs (see `digest.ts`).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"
import { errnoCode } from "../formats/file.ts"
import { canonicalJson, digestFile, digestPath, openDigestCache } from "./digest.ts"
import { ArtifactError, StageError } from "./errors.ts"
import {
  fsyncDir,
  pidAlive,
  trySync,
  uniqueSuffix,
  writeFileDurableSync
} from "./fsAtomic.ts"
import { CodeRecord, ToolInfo } from "./manifest.ts"
import type { ArtifactDecl } from "./stage.ts"
import { describeError } from "../errors/describe.ts"

/** One published output, as recorded in `_meta.json`. */
export const MetaOutput = Schema.Struct({
  file: Schema.String,
  kind: Schema.Literals(["parquet", "arrow", "json", "dir"]),
  digest: Schema.String,
  /** Row count reported by the stage, or null for outputs that are not row-shaped. */
  rows: Schema.NullOr(Schema.Number)
})
export type MetaOutput = typeof MetaOutput.Type

/** `_meta.json` of a published stage run. */
export const StageMeta = Schema.Struct({
  stage: Schema.String,
  key: Schema.String,
  version: Schema.String,
  params: Schema.Unknown,
  /** Input artifact name → digest. */
  inputs: Schema.Record(Schema.String, Schema.String),
  /** External input path → digest. */
  externalInputs: Schema.Record(Schema.String, Schema.String),
  /** The source files of the stage's code digest (absent when the stage names no source). */
  code: Schema.optionalKey(Schema.NullOr(CodeRecord)),
  /** Output artifact name → file, digest, rows. */
  outputs: Schema.Record(Schema.String, MetaOutput),
  metrics: Schema.Record(Schema.String, Schema.Unknown),
  durationMs: Schema.Number,
  createdAt: Schema.String,
  tool: ToolInfo
})
export type StageMeta = typeof StageMeta.Type

/** What the runner knows about a finished stage run before it is published. */
export interface PublishRequest {
  readonly stage: string
  readonly key: string
  /** The temporary folder from `beginWrite`. */
  readonly tmpDir: string
  readonly outputs: ReadonlyArray<ArtifactDecl>
  readonly rows: Readonly<Record<string, number>>
  readonly meta: Omit<StageMeta, "outputs" | "createdAt" | "stage" | "key">
  /** Replace an existing published folder for the same key (`--force`); otherwise an existing one wins. */
  readonly replace: boolean
}

export interface ArtifactStoreShape {
  /** Absolute cache root. */
  readonly root: string
  /** `<root>/<stage>/<key>/`: the published folder of a stage run. */
  readonly publishedDir: (stage: string, key: string) => string
  /** `<root>/<stage>/<key>.partial/`: persistent scratch space of a stage run. */
  readonly scratchDir: (stage: string, key: string) => string
  /**
   * The `_meta.json` of a published run, or None. Reads only `_meta.json` plus one `stat` per output; a published
   * folder whose output files have gone missing is reported as None (with a warning) and replaced by the next publish.
   */
  readonly lookup: (stage: string, key: string) => Effect.Effect<Option.Option<StageMeta>, ArtifactError>
  /** Creates a fresh temporary folder for a run; the scope's end removes it unless it was published. */
  readonly beginWrite: (stage: string, key: string) => Effect.Effect<string, ArtifactError, Scope.Scope>
  /** `beginWrite` without a Scope: runs `use` with a fresh temporary folder, removed afterwards unless published. */
  readonly withTempDir: <A, E, R>(
    stage: string,
    key: string,
    use: (tmpDir: string) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | ArtifactError, R>
  /** fsync + digest the outputs, write `_meta.json`, rename into place (see the module doc). Removes the scratch dir. */
  readonly publish: (request: PublishRequest) => Effect.Effect<StageMeta, ArtifactError | StageError>
  /** Removes temporary folders under `<root>/<stage>/` left by processes that are no longer alive. */
  readonly cleanupTemps: (stage: string) => Effect.Effect<number, ArtifactError>
  /** Digest of an external file or folder, through the digest cache. */
  readonly digestExternal: (target: string) => Effect.Effect<string, ArtifactError>
  /** Saves the digest cache (also done when the layer is released). */
  readonly saveDigests: Effect.Effect<void, ArtifactError>
}

const META = "_meta.json"
const TMP_PATTERN = /^\.(tmp|old)-([0-9a-f]+)-(\d+)-(\d+)$/

const decodeMeta = (file: string, text: string): Effect.Effect<StageMeta, ArtifactError> =>
  Effect.try({ try: () => JSON.parse(text) as unknown, catch: (cause) => cause }).pipe(
    Effect.flatMap((json) => Schema.decodeUnknownEffect(StageMeta)(json)),
    Effect.mapError((cause) =>
      new ArtifactError({
        path: file,
        message: `unreadable ${META} (delete its folder to rerun the stage): ${
          describeError(cause)
        }`,
        cause
      })
    )
  )

/** Builds the store for `root` (warnings, e.g. about a corrupt digest cache, go to `warn`). */
export const makeArtifactStore = Effect.fn("ArtifactStore.make")(function*(
  root: string,
  warn: (message: string) => void = (message) => process.stderr.write(`warning: ${message}\n`)
) {
  const absRoot = path.resolve(root)
  yield* trySync(absRoot, "create cache folder", () => fs.mkdirSync(absRoot, { recursive: true }))
  const digests = yield* openDigestCache(path.join(absRoot, "digests.json"), warn)
  const stageDir = (stage: string) => path.join(absRoot, stage)
  const publishedDir = (stage: string, key: string) => path.join(absRoot, stage, key)
  const scratchDir = (stage: string, key: string) => path.join(absRoot, stage, `${key}.partial`)

  /** Moves a folder out of the way (to a `.old-*` name) and deletes it. */
  const discardDir = (stage: string, dir: string, key: string) =>
    trySync(dir, "remove folder", () => {
      const aside = path.join(stageDir(stage), `.old-${key}-${uniqueSuffix()}`)
      fs.renameSync(dir, aside)
      fs.rmSync(aside, { recursive: true, force: true })
    })

  const lookup = Effect.fn("ArtifactStore.lookup")(function*(stage: string, key: string) {
    const dir = publishedDir(stage, key)
    const metaFile = path.join(dir, META)
    const text = yield* trySync(metaFile, "read", () => {
      try {
        return fs.readFileSync(metaFile, "utf8")
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT" || errnoCode(cause) === "ENOTDIR") return undefined
        throw cause
      }
    })
    if (text === undefined) return Option.none()
    const meta = yield* decodeMeta(metaFile, text)
    const missing = Object.values(meta.outputs).filter((o) => !fs.existsSync(path.join(dir, o.file)))
    if (missing.length > 0) {
      warn(`${stage}: outputs missing from the published folder ${dir} (${missing.map((o) => o.file).join(", ")})`)
      return Option.none()
    }
    return Option.some(meta)
  })

  const createTemp = (stage: string, key: string) =>
    trySync(stageDir(stage), "create temporary folder", () => {
      const dir = path.join(stageDir(stage), `.tmp-${key}-${uniqueSuffix()}`)
      fs.mkdirSync(dir, { recursive: true })
      return dir
    })
  const removeTemp = (dir: string) =>
    trySync(dir, "remove temporary folder", () => fs.rmSync(dir, { recursive: true, force: true })).pipe(
      Effect.catch((error) => Effect.sync(() => warn(error.message)))
    )
  const beginWrite = (stage: string, key: string): Effect.Effect<string, ArtifactError, Scope.Scope> =>
    Effect.acquireRelease(createTemp(stage, key), removeTemp)
  const withTempDir = <A, E, R>(
    stage: string,
    key: string,
    use: (tmpDir: string) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | ArtifactError, R> => Effect.acquireUseRelease(createTemp(stage, key), use, removeTemp)

  const publish = Effect.fn("ArtifactStore.publish")(function*(request: PublishRequest) {
    const { stage, key, tmpDir } = request
    const outputs: Record<string, MetaOutput> = {}
    for (const decl of request.outputs) {
      const file = path.join(tmpDir, decl.file)
      if (!fs.existsSync(file)) {
        return yield* new StageError({
          stage,
          message: `did not write its declared output "${decl.name}" (${decl.file})`
        })
      }
      const digest = yield* digestPath(file, {
        fileDigest: (f) => digestFile(f, { fsync: true }),
        fsyncDirs: true
      })
      const rows = request.rows[decl.name]
      outputs[decl.name] = { file: decl.file, kind: decl.kind, digest, rows: rows ?? null }
    }
    const meta: StageMeta = {
      stage,
      key,
      ...request.meta,
      outputs,
      createdAt: new Date().toISOString()
    }
    yield* trySync(path.join(tmpDir, META), "write", () =>
      writeFileDurableSync(path.join(tmpDir, META), `${JSON.stringify(JSON.parse(canonicalJson(meta)), null, 2)}\n`))
    yield* fsyncDir(tmpDir)
    const target = publishedDir(stage, key)
    /** Another run published the same key meanwhile: same key, same content by construction; keep theirs. */
    const adoptExisting = Effect.gen(function*() {
      const published = yield* lookup(stage, key)
      if (Option.isNone(published) || request.replace) return Option.none<StageMeta>()
      yield* trySync(tmpDir, "remove", () => fs.rmSync(tmpDir, { recursive: true, force: true }))
      return published
    })
    if (fs.existsSync(target)) {
      const adopted = yield* adoptExisting
      if (Option.isSome(adopted)) return adopted.value
      // A forced rerun, or a folder without a valid `_meta.json`: replace it.
      if (fs.existsSync(target)) yield* discardDir(stage, target, key)
    }
    const renamed = yield* trySync(target, "publish (rename)", () => {
      try {
        fs.renameSync(tmpDir, target)
        return true
      } catch (cause) {
        const code = errnoCode(cause)
        if (code === "ENOTEMPTY" || code === "EEXIST") return false // lost a race with a concurrent publish
        throw cause
      }
    })
    if (!renamed) {
      const adopted = yield* adoptExisting
      if (Option.isSome(adopted)) return adopted.value
      return yield* new ArtifactError({ path: target, message: "publish (rename): the target appeared concurrently" })
    }
    yield* fsyncDir(stageDir(stage))
    const scratch = scratchDir(stage, key)
    yield* trySync(scratch, "remove scratch folder", () => fs.rmSync(scratch, { recursive: true, force: true }))
    return meta
  })

  const cleanupTemps = (stage: string): Effect.Effect<number, ArtifactError> =>
    trySync(stageDir(stage), "clean temporary folders", () => {
      let entries: Array<string>
      try {
        entries = fs.readdirSync(stageDir(stage))
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT") return 0
        throw cause
      }
      let removed = 0
      for (const name of entries) {
        const match = TMP_PATTERN.exec(name)
        if (match === null) continue
        const pid = Number(match[3])
        if (pid === process.pid || pidAlive(pid)) continue
        fs.rmSync(path.join(stageDir(stage), name), { recursive: true, force: true })
        removed++
      }
      return removed
    })

  const store: ArtifactStoreShape = {
    root: absRoot,
    publishedDir,
    scratchDir,
    lookup,
    beginWrite,
    withTempDir,
    publish,
    cleanupTemps,
    digestExternal: digests.digest,
    saveDigests: digests.save
  }
  return store
})

/** The artifact store service; provide it with `ArtifactStore.layer(cacheDir)`. */
export class ArtifactStore extends Context.Service<ArtifactStore, ArtifactStoreShape>()("llink/ArtifactStore") {
  /** A store rooted at `cacheDir`; the digest cache is saved when the layer is released. */
  static readonly layer = (cacheDir: string, warn?: (message: string) => void): Layer.Layer<ArtifactStore, ArtifactError> =>
    Layer.effect(
      ArtifactStore,
      Effect.acquireRelease(makeArtifactStore(cacheDir, warn), (store) =>
        store.saveDigests.pipe(
          Effect.catch((error) =>
            Effect.sync(() => process.stderr.write(`warning: could not save the digest cache: ${error.message}\n`))
          )
        ))
    )
}
