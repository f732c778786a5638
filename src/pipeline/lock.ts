/**
 * The run-directory lock, `<run-dir>/.lock`: one run writes a run directory at a time.
 *
 * The lock file holds `{ pid, hostname, startedAt, token, procStart }` (`procStart`: the holder's start time from
 * `/proc/PID/stat`, on Linux). It is created exclusively: the content is written to a temporary file, fsynced, then
 * hard-linked to `.lock` (atomic, fails if `.lock` exists, and never exposes a half-written lock; where hard links are
 * not supported it falls back to `open(O_CREAT | O_EXCL)`). If the lock is held:
 * - by a live process, or by any process on another host: fail with `LockError` naming the holder, how to check
 *   it and which file to delete if it is gone;
 * - by a process of this host that no longer exists (a crash, `kill -9`), that is a zombie (state `Z`: killed but
 *   not yet reaped, as under a container init that does not reap), or whose pid now belongs to a process that
 *   started at another time (pid reuse): take it over with a warning.
 *
 * `acquireRunLock` (scoped) and `withRunLock` release the lock however the run ends: success, failure, interruption.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import { ArtifactError, LockError } from "./errors.ts"
import { errnoCode } from "../formats/file.ts"
import { pidAlive, procStat, trySync, uniqueSuffix, writeFileDurableSync } from "./fsAtomic.ts"
import { describeError } from "../errors/describe.ts"

export const LockInfo = Schema.Struct({
  pid: Schema.Number,
  hostname: Schema.String,
  startedAt: Schema.String,
  /** Random token, so a release never removes a lock another process took over. */
  token: Schema.String,
  /** The holder's start time (clock ticks after boot, `/proc/PID/stat` field 22), to tell it from a later process
   *  with the same pid. Absent off Linux and in locks written before it was recorded. */
  procStart: Schema.optionalKey(Schema.Number)
})
export type LockInfo = typeof LockInfo.Type

export const lockPath = (runDir: string): string => path.join(runDir, ".lock")

const describeHolder = (info: LockInfo): string => `pid ${info.pid} on ${info.hostname} since ${info.startedAt}`

/** Why a lock of this host is no longer held, or undefined when its holder is still running. */
const staleReason = (holder: LockInfo): string | undefined => {
  if (!pidAlive(holder.pid)) {
    return procStat(holder.pid)?.state === "Z" ? "process exited, a zombie not yet reaped" : "process no longer running"
  }
  if (holder.procStart === undefined) return undefined
  const now = procStat(holder.pid)
  if (now !== undefined && now.startTicks !== holder.procStart) {
    return `pid ${holder.pid} now belongs to another process, started after the lock was taken`
  }
  return undefined
}

/** Reads the lock file: its holder, "absent", or why it is unreadable (empty or corrupt). */
const readLock = (file: string): LockInfo | "absent" | { readonly unreadable: string } => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (cause) {
    if (errnoCode(cause) === "ENOENT") return "absent"
    throw cause
  }
  try {
    return Schema.decodeUnknownSync(LockInfo)(JSON.parse(text))
  } catch (cause) {
    return { unreadable: describeError(cause) }
  }
}

/** Exclusive creation of `file` with `body`; false when it already exists. */
const tryCreate = (file: string, body: string): boolean => {
  const tmp = `${file}.tmp-${uniqueSuffix()}`
  writeFileDurableSync(tmp, body)
  try {
    fs.linkSync(tmp, file)
    return true
  } catch (cause) {
    const code = errnoCode(cause)
    if (code === "EEXIST") return false
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw cause
    // No hard links on this file system: fall back to O_EXCL.
    let fd: number
    try {
      fd = fs.openSync(file, "wx")
    } catch (inner) {
      if (errnoCode(inner) === "EEXIST") return false
      throw inner
    }
    try {
      fs.writeFileSync(fd, body)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    return true
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/**
 * Creates the lock of `runDir` (see the module doc). Prefer `acquireRunLock` / `withRunLock`, which also release it.
 * A stale lock (its process is gone from this host, or the file is unreadable) is taken over with a `warn`ing.
 */
export const lockRunDir = Effect.fn("RunLock.acquire")(function*(runDir: string, warn: (message: string) => void) {
  const file = lockPath(runDir)
  yield* trySync(runDir, "create run folder", () => fs.mkdirSync(runDir, { recursive: true }))
  const own = yield* trySync(file, "read /proc/self/stat", () => procStat(process.pid))
  const info: LockInfo = {
    pid: process.pid,
    hostname: os.hostname(),
    startedAt: new Date().toISOString(),
    token: `${uniqueSuffix()}-${Math.random().toString(36).slice(2)}`,
    ...(own === undefined ? {} : { procStart: own.startTicks })
  }
  const body = `${JSON.stringify(info)}\n`
  for (let attempt = 0; attempt < 5; attempt++) {
    if (yield* trySync(file, "create lock", () => tryCreate(file, body))) return info
    const holder = yield* trySync(file, "read lock", () => readLock(file))
    if (holder === "absent") continue
    if ("pid" in holder) {
      const sameHost = holder.hostname === os.hostname()
      const stale = sameHost ? yield* trySync(file, "check the lock holder", () => staleReason(holder)) : undefined
      if (stale === undefined) {
        return yield* new LockError({
          runDir,
          holder: describeHolder(holder),
          message: `run directory ${runDir} is locked by another run (${describeHolder(holder)}); ` +
            (sameHost
              ? `wait for it to finish or use another --run-dir. To check the holder: ps -o pid,stat,lstart,args -p ` +
                `${holder.pid}; if it is not an llink run, delete ${file}`
              : `check on ${holder.hostname} with ps -o pid,stat,lstart,args -p ${holder.pid}; if that run is gone, ` +
                `delete ${file}`)
        })
      }
      warn(`taking over a stale lock on ${runDir} (${describeHolder(holder)}: ${stale})`)
    } else {
      warn(`taking over an unreadable lock file ${file} (${holder.unreadable})`)
    }
    yield* trySync(file, "remove stale lock", () => fs.rmSync(file, { force: true }))
  }
  return yield* new LockError({
    runDir,
    holder: "unknown",
    message: `could not acquire the lock ${file}: it keeps reappearing (another run is starting?)`
  })
})

/** Removes the lock of `runDir` if it is still the one `info` describes (never one another run took over). */
export const unlockRunDir = (runDir: string, info: LockInfo): Effect.Effect<void> =>
  Effect.sync(() => {
    const file = lockPath(runDir)
    try {
      const current = readLock(file)
      if (typeof current === "object" && "token" in current && current.token === info.token) {
        fs.rmSync(file, { force: true })
      }
    } catch (cause) {
      process.stderr.write(`warning: could not release the lock ${file}: ${describeError(cause)}\n`)
    }
  })

/** Takes the lock of `runDir` for the current scope (released when the scope closes, however it closes). */
export const acquireRunLock = (
  runDir: string,
  warn: (message: string) => void
): Effect.Effect<LockInfo, LockError | ArtifactError, Scope.Scope> =>
  Effect.acquireRelease(lockRunDir(runDir, warn), (info) => unlockRunDir(runDir, info))

/** Runs `use` while holding the lock of `runDir` (released on success, failure and interruption). */
export const withRunLock = <A, E, R>(
  runDir: string,
  warn: (message: string) => void,
  use: (lock: LockInfo) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | LockError | ArtifactError, R> =>
  Effect.acquireUseRelease(lockRunDir(runDir, warn), use, (info) => unlockRunDir(runDir, info))
