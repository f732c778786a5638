/**
 * The run-directory lock, `<run-dir>/.lock`: one run writes a run directory at a time.
 *
 * The lock file holds `{ pid, hostname, startedAt, token }`. It is created exclusively: the content is written to a
 * temporary file, fsynced, then hard-linked to `.lock` (atomic, fails if `.lock` exists, and never exposes a
 * half-written lock; where hard links are not supported it falls back to `open(O_CREAT | O_EXCL)`). If the lock is held:
 * - by a live process, or by any process on another host: fail with `LockError` naming the holder;
 * - by a process of this host that no longer exists (a crash, `kill -9`): take it over with a warning.
 *
 * `acquireRunLock` (scoped) and `withRunLock` release the lock however the run ends: success, failure, interruption.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import { ArtifactError, LockError } from "./errors.ts"
import { describeCause, errnoCode, pidAlive, trySync, uniqueSuffix, writeFileDurableSync } from "./fsAtomic.ts"

export const LockInfo = Schema.Struct({
  pid: Schema.Number,
  hostname: Schema.String,
  startedAt: Schema.String,
  /** Random token, so a release never removes a lock another process took over. */
  token: Schema.String
})
export type LockInfo = typeof LockInfo.Type

export const lockPath = (runDir: string): string => path.join(runDir, ".lock")

const describeHolder = (info: LockInfo): string => `pid ${info.pid} on ${info.hostname} since ${info.startedAt}`

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
    return { unreadable: describeCause(cause) }
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
  const info: LockInfo = {
    pid: process.pid,
    hostname: os.hostname(),
    startedAt: new Date().toISOString(),
    token: `${uniqueSuffix()}-${Math.random().toString(36).slice(2)}`
  }
  const body = `${JSON.stringify(info)}\n`
  for (let attempt = 0; attempt < 5; attempt++) {
    if (yield* trySync(file, "create lock", () => tryCreate(file, body))) return info
    const holder = yield* trySync(file, "read lock", () => readLock(file))
    if (holder === "absent") continue
    if ("pid" in holder) {
      const sameHost = holder.hostname === os.hostname()
      if (!sameHost || pidAlive(holder.pid)) {
        return yield* new LockError({
          runDir,
          holder: describeHolder(holder),
          message: `run directory ${runDir} is locked by another run (${describeHolder(holder)}); ` +
            (sameHost
              ? "wait for it to finish or use another --run-dir"
              : `if that run is gone, delete ${file}`)
        })
      }
      warn(`taking over a stale lock on ${runDir} (${describeHolder(holder)}: process no longer running)`)
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
      process.stderr.write(`warning: could not release the lock ${file}: ${describeCause(cause)}\n`)
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
