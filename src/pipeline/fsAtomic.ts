/**
 * Durable file-system primitives for the pipeline engine: every failure becomes an `ArtifactError` naming the path.
 *
 * - `writeFileAtomic`: write to a unique temporary sibling, fsync it, rename over the target, fsync the folder, so a
 *   reader (or a crash) sees either the old file or the new one, never a torn one.
 * - `fsyncDir`: make a folder's entries (a rename, a new file) durable. A no-op on Windows, where folders cannot be
 *   opened for fsync.
 * - `uniqueSuffix`: `<pid>-<n>`, unique within this machine for the life of the process.
 *
 * These are small synchronous calls (metadata, small JSON files); large files are hashed asynchronously in `digest.ts`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { errnoCode } from "../formats/file.ts"
import { ArtifactError } from "./errors.ts"
import { describeError } from "../errors/describe.ts"

/** Runs a synchronous file-system call; a throw becomes an `ArtifactError` for `file` saying what was attempted. */
export const trySync = <A>(file: string, what: string, f: () => A): Effect.Effect<A, ArtifactError> =>
  Effect.try({
    try: f,
    catch: (cause) => new ArtifactError({ path: file, message: `${what}: ${describeError(cause)}`, cause })
  })

/** Runs an asynchronous file-system call; a rejection becomes an `ArtifactError` for `file`. */
export const tryAsync = <A>(file: string, what: string, f: () => Promise<A>): Effect.Effect<A, ArtifactError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new ArtifactError({ path: file, message: `${what}: ${describeError(cause)}`, cause })
  })

let counter = 0
/** `<pid>-<n>`: a suffix for temporary names that no other live process on this machine can produce. */
export const uniqueSuffix = (): string => `${process.pid}-${++counter}`

/** fsync a folder so that renames and new entries in it survive a power loss (skipped on Windows). */
export const fsyncDirSync = (dir: string): void => {
  if (process.platform === "win32") return
  const fd = fs.openSync(dir, "r")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export const fsyncDir = (dir: string): Effect.Effect<void, ArtifactError> =>
  trySync(dir, "fsync folder", () => fsyncDirSync(dir))

/** Writes `data` to `file` and fsyncs it (no rename: use for files inside a not-yet-published folder). */
export const writeFileDurableSync = (file: string, data: string | Uint8Array): void => {
  const fd = fs.openSync(file, "w")
  try {
    fs.writeFileSync(fd, data)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Atomically replaces `file` with `data` (temporary sibling + fsync + rename + fsync of the folder). */
export const writeFileAtomicSync = (file: string, data: string | Uint8Array): void => {
  const dir = path.dirname(file)
  fs.mkdirSync(dir, { recursive: true })
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${uniqueSuffix()}`)
  try {
    writeFileDurableSync(tmp, data)
    fs.renameSync(tmp, file)
  } catch (cause) {
    fs.rmSync(tmp, { force: true })
    throw cause
  }
  fsyncDirSync(dir)
}

export const writeFileAtomic = (file: string, data: string | Uint8Array): Effect.Effect<void, ArtifactError> =>
  trySync(file, "write file atomically", () => writeFileAtomicSync(file, data))

/** Reads a UTF-8 file, or `undefined` when it does not exist. */
export const readTextIfExists = (file: string): Effect.Effect<string | undefined, ArtifactError> =>
  trySync(file, "read file", () => {
    try {
      return fs.readFileSync(file, "utf8")
    } catch (cause) {
      if (errnoCode(cause) === "ENOENT") return undefined
      throw cause
    }
  })

/**
 * What Linux's `/proc/PID/stat` says of a process: its state letter (`R`, `S`, `Z` for a zombie, …) and its start
 * time (clock ticks after boot, field 22), which tells a process from a later one that reuses its pid. Undefined
 * when the file is absent (no such process, or not Linux).
 */
export const procStat = (pid: number): { readonly state: string; readonly startTicks: number } | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
  } catch (cause) {
    const code = errnoCode(cause)
    if (code === "ENOENT" || code === "ESRCH" || code === "ENOTDIR") return undefined
    throw cause
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields start after the last ')'
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  const startTicks = Number(fields[19])
  return fields[0] === undefined || !Number.isFinite(startTicks) ? undefined : { state: fields[0], startTicks }
}

/**
 * Whether a process with this pid is alive on this machine (`EPERM` means alive but owned by another user). A zombie
 * (exited, not yet reaped by its parent: state `Z`, or `X` while being reaped) is not alive.
 */
export const pidAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (cause) {
    if (errnoCode(cause) !== "EPERM") return false
  }
  const stat = procStat(pid)
  if (stat !== undefined) return stat.state !== "Z" && stat.state !== "X"
  return !fs.existsSync("/proc/self/stat") // no procfs (not Linux): trust kill(0); with one, it has just exited
}

/**
 * Removes the temporary files `writeFileAtomic` (and the lock and link writers) leave behind when their process is
 * killed between write and rename: names ending in `.tmp-<pid>-<n>` whose pid is no longer alive. Returns how many.
 */
export const removeStaleTempFiles = (dir: string): Effect.Effect<number, ArtifactError> =>
  trySync(dir, "remove stale temporary files", () => {
    let names: Array<string>
    try {
      names = fs.readdirSync(dir)
    } catch (cause) {
      if (errnoCode(cause) === "ENOENT") return 0
      throw cause
    }
    let removed = 0
    for (const name of names) {
      const match = /\.tmp-(\d+)-\d+$/.exec(name)
      if (match === null) continue
      const pid = Number(match[1])
      if (pid === process.pid || pidAlive(pid)) continue
      fs.rmSync(path.join(dir, name), { force: true })
      removed++
    }
    return removed
  })
