/**
 * Content digests and cache keys.
 *
 * - `canonicalJson`: JSON with object keys sorted at every level and no whitespace, so equal values always produce
 *   equal text (the basis of every key).
 * - `digestFile` / `digestPath`: sha256 of a file's content; of a folder, sha256 over its files sorted by relative
 *   path (`<relative posix path>\t<file digest>\n` per file), so renaming, adding or changing any file changes it.
 * - `stageKey`: the content-addressed key of one stage run (name, version, canonical params, input digests by
 *   artifact name, external input digests in declared order, and the digest of the stage's code).
 * - `DigestCache`: file digests remembered by (absolute path, size, mtimeMs) in `<cacheDir>/digests.json`, so a large
 *   external input (a 2.5 GB corpus, a model folder) is hashed once, not on every run. A file rewritten within the
 *   same millisecond with the same size would be missed; that is the usual trade-off of make/DVC-style caches.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { ArtifactError } from "./errors.ts"
import { trySync, tryAsync, writeFileAtomicSync } from "./fsAtomic.ts"

/** sha256 of a string (UTF-8) or bytes, as lowercase hex. */
export const sha256 = (data: string | Uint8Array): string => crypto.createHash("sha256").update(data).digest("hex")

/**
 * Canonical JSON: keys sorted, no whitespace, `undefined` object fields dropped. Throws a `TypeError` for values JSON
 * cannot represent faithfully (functions, symbols, bigints, non-finite numbers, class instances without `toJSON`).
 */
export const canonicalJson = (value: unknown): string => {
  const walk = (v: unknown, at: string): string => {
    if (v === null) return "null"
    switch (typeof v) {
      case "string":
      case "boolean":
        return JSON.stringify(v)
      case "number":
        if (!Number.isFinite(v)) throw new TypeError(`canonicalJson: non-finite number at ${at}`)
        return JSON.stringify(v)
      case "object": {
        if (Array.isArray(v)) return `[${v.map((x, i) => walk(x, `${at}[${i}]`)).join(",")}]`
        const proto: unknown = Object.getPrototypeOf(v)
        if (proto !== Object.prototype && proto !== null) {
          const toJSON: unknown = (v as { toJSON?: unknown }).toJSON
          if (typeof toJSON === "function") return walk(toJSON.call(v), at)
          throw new TypeError(`canonicalJson: not a plain object at ${at}`)
        }
        const record = v as Record<string, unknown>
        const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort()
        return `{${keys.map((k) => `${JSON.stringify(k)}:${walk(record[k], `${at}.${k}`)}`).join(",")}}`
      }
      default:
        throw new TypeError(`canonicalJson: cannot encode a ${typeof v} at ${at}`)
    }
  }
  return walk(value, "$")
}

/** Streams a file through sha256 (1 MiB reads); with `fsync`, also flushes the file to disk before closing it. */
export const digestFile = (file: string, options?: { readonly fsync?: boolean }): Effect.Effect<string, ArtifactError> =>
  tryAsync(file, options?.fsync ? "fsync and digest file" : "digest file", async () => {
    const handle = await fs.promises.open(file, "r")
    try {
      const hash = crypto.createHash("sha256")
      const buffer = Buffer.allocUnsafe(1 << 20)
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null)
        if (bytesRead === 0) break
        hash.update(buffer.subarray(0, bytesRead))
      }
      if (options?.fsync) await handle.sync()
      return hash.digest("hex")
    } finally {
      await handle.close()
    }
  })

/** Relative posix paths of every file under `dir` (following symlinks), sorted by code unit. */
export const listFilesSync = (dir: string): Array<string> => {
  const out: Array<string> = []
  const walk = (abs: string, rel: string): void => {
    for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
      const childAbs = path.join(abs, entry.name)
      const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`
      const isDir = entry.isSymbolicLink() ? fs.statSync(childAbs).isDirectory() : entry.isDirectory()
      if (isDir) walk(childAbs, childRel)
      else out.push(childRel)
    }
  }
  walk(dir, "")
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/** Combines per-file digests of a folder into one digest (the files must be sorted by relative path). */
export const combineDirDigest = (files: ReadonlyArray<readonly [relative: string, digest: string]>): string =>
  sha256(files.map(([rel, digest]) => `${rel}\t${digest}\n`).join(""))

/**
 * Digest of a file or folder. `fileDigest` computes one file's digest (default: `digestFile`), which lets the digest
 * cache and the publisher (fsync while hashing) plug in. With `fsync`, each folder is fsynced too.
 */
export const digestPath = (
  target: string,
  options?: {
    readonly fileDigest?: (file: string) => Effect.Effect<string, ArtifactError>
    readonly fsyncDirs?: boolean
  }
): Effect.Effect<string, ArtifactError> =>
  Effect.gen(function*() {
    const fileDigest = options?.fileDigest ?? ((file: string) => digestFile(file))
    const stat = yield* trySync(target, "stat", () => fs.statSync(target))
    if (!stat.isDirectory()) return yield* fileDigest(target)
    const files = yield* trySync(target, "list folder", () => listFilesSync(target))
    const digests: Array<readonly [string, string]> = []
    for (const rel of files) digests.push([rel, yield* fileDigest(path.join(target, ...rel.split("/")))])
    if (options?.fsyncDirs && process.platform !== "win32") {
      const dirs = new Set<string>([target])
      for (const rel of files) {
        const parts = rel.split("/")
        for (let i = 1; i < parts.length; i++) dirs.add(path.join(target, ...parts.slice(0, i)))
      }
      for (const dir of dirs) {
        yield* trySync(dir, "fsync folder", () => {
          const fd = fs.openSync(dir, "r")
          try {
            fs.fsyncSync(fd)
          } finally {
            fs.closeSync(fd)
          }
        })
      }
    }
    return combineDirDigest(digests)
  }).pipe(Effect.withSpan("Digest.path"))

/** Everything that determines a stage run's output. */
export interface KeyMaterial {
  readonly stage: string
  readonly version: string
  /** The canonical (decoded, JSON-safe) parameters. */
  readonly params: unknown
  /** Input artifact name → digest. */
  readonly inputs: Readonly<Record<string, string>>
  /** Digests of the external inputs, in the order the stage declares them (paths do not enter the key). */
  readonly externalInputs: ReadonlyArray<string>
  /** Digest of the source files the stage's declaration reaches (`sourceGraph.ts`); absent (and left out of the
   *  key) when the stage names no `source`. */
  readonly code?: string | undefined
}

/** The content-addressed key of a stage run: sha256 of the canonical JSON of its key material. */
export const stageKey = (material: KeyMaterial): string =>
  sha256(
    canonicalJson({
      stage: material.stage,
      version: material.version,
      params: material.params,
      inputs: material.inputs,
      externalInputs: material.externalInputs,
      code: material.code
    })
  )

const DigestCacheEntry = Schema.Struct({ size: Schema.Number, mtimeMs: Schema.Number, digest: Schema.String })
const DigestCacheFile = Schema.Struct({
  version: Schema.Literal(1),
  entries: Schema.Record(Schema.String, DigestCacheEntry)
})
type DigestCacheEntry = typeof DigestCacheEntry.Type

/** File digests remembered by (absolute path, size, mtimeMs). */
export interface DigestCache {
  /** Digest of a file or folder (folders digest each file through the cache). */
  readonly digest: (target: string) => Effect.Effect<string, ArtifactError>
  /** Writes the cache file atomically if anything changed. */
  readonly save: Effect.Effect<void, ArtifactError>
  /** How many file digests were computed (not found in the cache) since the cache was opened. */
  readonly misses: () => number
}

/**
 * Opens the digest cache stored in `file` (missing or unreadable = empty: the cache is only an optimisation, so a
 * corrupt file is replaced on the next save, with a warning through `warn`).
 */
export const openDigestCache = Effect.fn("DigestCache.open")(function*(
  file: string,
  warn: (message: string) => void = () => undefined
) {
  const entries = new Map<string, DigestCacheEntry>()
  const text = yield* trySync(file, "read digest cache", () =>
    fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined
  )
  if (text !== undefined) {
    const parsed = yield* Effect.result(
      Effect.try({ try: () => JSON.parse(text) as unknown, catch: (cause) => cause }).pipe(
        Effect.flatMap((json) => Schema.decodeUnknownEffect(DigestCacheFile)(json))
      )
    )
    if (parsed._tag === "Success") for (const [k, v] of Object.entries(parsed.success.entries)) entries.set(k, v)
    else warn(`ignoring unreadable digest cache ${file} (it will be rewritten)`)
  }
  let dirty = false
  let misses = 0
  const fileDigest = (target: string): Effect.Effect<string, ArtifactError> =>
    Effect.gen(function*() {
      const abs = path.resolve(target)
      const stat = yield* trySync(abs, "stat", () => fs.statSync(abs))
      const hit = entries.get(abs)
      if (hit !== undefined && hit.size === stat.size && hit.mtimeMs === stat.mtimeMs) return hit.digest
      const digest = yield* digestFile(abs)
      misses++
      entries.set(abs, { size: stat.size, mtimeMs: stat.mtimeMs, digest })
      dirty = true
      return digest
    })
  const cache: DigestCache = {
    digest: (target) => digestPath(path.resolve(target), { fileDigest }),
    save: Effect.suspend(() => {
      if (!dirty) return Effect.void
      const body = JSON.stringify({ version: 1, entries: Object.fromEntries(entries) })
      return trySync(file, "write digest cache", () => writeFileAtomicSync(file, body)).pipe(
        Effect.tap(() => Effect.sync(() => (dirty = false)))
      )
    }),
    misses: () => misses
  }
  return cache
})
