import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { LockError } from "../../src/pipeline/errors.ts"
import { pidAlive, procStat, removeStaleTempFiles } from "../../src/pipeline/fsAtomic.ts"
import { lockPath, withRunLock } from "../../src/pipeline/lock.ts"
import { cacheEntries, makeToyStages, makeWorkspace, publishedKeys, runToy, statusOf, tmpDir, type ToyHooks } from "../support/toy.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeBin = path.resolve(here, "../../node_modules/.bin/node")

/** A pid that existed and has exited (its process was reaped by spawnSync). */
const deadPid = (): number => {
  const child = spawnSync(nodeBin, ["-e", ""])
  return child.pid ?? 999_999_999
}

const writeLock = (runDir: string, info: { pid: number; hostname: string; procStart?: number }) => {
  fs.mkdirSync(runDir, { recursive: true })
  fs.writeFileSync(lockPath(runDir), JSON.stringify({ ...info, startedAt: "2025-01-01T00:00:00.000Z", token: "t" }))
}

describe("run-dir lock", () => {
  it("a second run on the same run dir fails with LockError while the first holds it", async () => {
    const ws = makeWorkspace("lock")
    const hooks: ToyHooks = { calls: {} }
    let reached!: () => void
    const halfway = new Promise<void>((resolve) => (reached = resolve))
    hooks.hangDouble = () => reached()
    const first = Effect.runFork(runToy(ws, makeToyStages(hooks)))
    await halfway
    const error = await Effect.runPromise(Effect.flip(runToy(ws, makeToyStages({ calls: {} }))))
    expect(error).toBeInstanceOf(LockError)
    expect(error.message).toContain(`locked by another run (pid ${process.pid} on ${os.hostname()}`)
    await Effect.runPromise(Fiber.interrupt(first))
    expect(fs.existsSync(lockPath(ws.runDir))).toBe(false)
  })

  it("is released after success and after failure", async () => {
    const dir = tmpDir("lockrel")
    await Effect.runPromise(withRunLock(dir, () => undefined, () => Effect.void))
    expect(fs.existsSync(lockPath(dir))).toBe(false)
    await Effect.runPromise(Effect.flip(withRunLock(dir, () => undefined, () => Effect.fail("boom"))))
    expect(fs.existsSync(lockPath(dir))).toBe(false)
  })

  it("takes over a stale lock (dead pid on this host) with a warning", async () => {
    const dir = tmpDir("stale")
    const pid = deadPid()
    writeLock(dir, { pid, hostname: os.hostname() })
    const warnings: Array<string> = []
    const seen = await Effect.runPromise(
      withRunLock(dir, (m) => warnings.push(m), (lock) => Effect.succeed(lock.pid))
    )
    expect(seen).toBe(process.pid)
    expect(warnings).toEqual([expect.stringContaining(`stale lock on ${dir} (pid ${pid} on ${os.hostname()}`)])
  })

  it("never takes over a lock of another host", async () => {
    const dir = tmpDir("otherhost")
    writeLock(dir, { pid: deadPid(), hostname: "some-other-host" })
    const error = await Effect.runPromise(Effect.flip(withRunLock(dir, () => undefined, () => Effect.void)))
    expect(error).toBeInstanceOf(LockError)
    expect(error.message).toContain("if that run is gone, delete")
    expect(fs.existsSync(lockPath(dir))).toBe(true)
  })

  it.skipIf(!fs.existsSync("/proc/self/stat"))("takes over a lock whose holder is a zombie (needs Linux /proc)", async () => {
    // `sh` starts a child that exits a second later, then execs into `sleep`, which never reaps it: once it has
    // exited, the child stays a zombie (exiting later than the exec, so `sh` cannot reap it first)
    const parent = spawn("sh", ["-c", "sleep 1 & echo $!; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] })
    try {
      const zombie = await new Promise<number>((resolve, reject) => {
        parent.stdout.once("data", (d: Buffer) => resolve(Number(String(d).trim())))
        parent.once("error", reject)
      })
      for (let i = 0; i < 300 && procStat(zombie)?.state !== "Z"; i++) await new Promise((r) => setTimeout(r, 50))
      expect(procStat(zombie)?.state).toBe("Z")
      expect(pidAlive(zombie)).toBe(false)
      const dir = tmpDir("zombie")
      writeLock(dir, { pid: zombie, hostname: os.hostname(), procStart: procStat(zombie)?.startTicks })
      const warnings: Array<string> = []
      await Effect.runPromise(withRunLock(dir, (m) => warnings.push(m), () => Effect.void))
      expect(warnings).toEqual([expect.stringContaining(`pid ${zombie} on ${os.hostname()}`)])
      expect(warnings[0]).toContain("zombie")
    } finally {
      parent.kill("SIGKILL")
    }
  })

  it.skipIf(!fs.existsSync("/proc/self/stat"))("takes over a lock whose pid now belongs to a process started at another time", async () => {
    const dir = tmpDir("reused")
    const mine = procStat(process.pid)?.startTicks ?? 0
    writeLock(dir, { pid: process.pid, hostname: os.hostname(), procStart: mine + 1 })
    const warnings: Array<string> = []
    await Effect.runPromise(withRunLock(dir, (m) => warnings.push(m), () => Effect.void))
    expect(warnings).toEqual([expect.stringContaining(`pid ${process.pid} now belongs to another process`)])
  })

  it("a lock held by a live process (same start time) fails, saying how to check the holder and what to delete", async () => {
    const holder = spawn("sleep", ["30"], { stdio: "ignore" })
    try {
      const pid = holder.pid ?? 0
      const dir = tmpDir("held")
      const start = procStat(pid)?.startTicks
      writeLock(dir, { pid, hostname: os.hostname(), ...(start === undefined ? {} : { procStart: start }) })
      const error = await Effect.runPromise(Effect.flip(withRunLock(dir, () => undefined, () => Effect.void)))
      expect(error).toBeInstanceOf(LockError)
      expect(error.message).toContain(`locked by another run (pid ${pid} on ${os.hostname()}`)
      expect(error.message).toContain(`ps -o pid,stat,lstart,args -p ${pid}`)
      expect(error.message).toContain(`delete ${lockPath(dir)}`)
      // a lock written before start times were recorded: a live pid still holds it
      writeLock(dir, { pid, hostname: os.hostname() })
      expect(await Effect.runPromise(Effect.flip(withRunLock(dir, () => undefined, () => Effect.void)))).toBeInstanceOf(LockError)
    } finally {
      holder.kill("SIGKILL")
    }
  })

  it("records the holder's start time in the lock file", async () => {
    const dir = tmpDir("procstart")
    const recorded = await Effect.runPromise(withRunLock(dir, () => undefined, () =>
      Effect.sync(() => JSON.parse(fs.readFileSync(lockPath(dir), "utf8")) as { procStart?: number })))
    expect(recorded.procStart).toBe(procStat(process.pid)?.startTicks)
  })

  it("takes over an unreadable lock file", async () => {
    const dir = tmpDir("garbage")
    fs.writeFileSync(lockPath(dir), "")
    const warnings: Array<string> = []
    await Effect.runPromise(withRunLock(dir, (m) => warnings.push(m), () => Effect.void))
    expect(warnings[0]).toContain("unreadable lock file")
  })
})

describe("crash safety", () => {
  it("removes temporary files of dead processes only", async () => {
    const dir = tmpDir("stalefiles")
    const dead = `.manifest.json.tmp-${deadPid()}-3`
    const mine = `.manifest.json.tmp-${process.pid}-4`
    for (const name of [dead, mine, "manifest.json"]) fs.writeFileSync(path.join(dir, name), "")
    expect(await Effect.runPromise(removeStaleTempFiles(dir))).toBe(1)
    expect(fs.readdirSync(dir).sort()).toEqual([mine, "manifest.json"].sort())
  })

  it("a process killed mid-stage leaves no published output; the next run cleans up and reruns", async () => {
    const ws = makeWorkspace("crash")
    const child = spawn(nodeBin, [path.join(here, "../support/fixtures/crashChild.ts"), ws.root, ws.cacheDir, ws.runDir], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("HALF")) resolve()
      })
      child.on("exit", (code) => reject(new Error(`child exited early (${code}): ${stderr}`)))
    })
    const exited = new Promise((resolve) => child.on("exit", resolve))
    child.kill("SIGKILL")
    await exited

    // The kill left a temporary folder with the half-written output, a stale lock and the manifest so far.
    expect(publishedKeys(ws, "double")).toEqual([])
    const temps = cacheEntries(ws, "double").filter((n) => n.startsWith(".tmp-"))
    expect(temps).toHaveLength(1)
    expect(fs.existsSync(path.join(ws.cacheDir, "double", temps[0], "doubled.json"))).toBe(true)
    expect(JSON.parse(fs.readFileSync(lockPath(ws.runDir), "utf8")).pid).toBe(child.pid)
    const manifest = JSON.parse(fs.readFileSync(path.join(ws.runDir, "manifest.json"), "utf8"))
    expect(manifest.stages.gen.status).toBe("ran")
    expect(manifest.stages.double.status).toBe("skipped")

    const hooks: ToyHooks = { calls: {} }
    const { report, lines } = await Effect.runPromise(runToy(ws, makeToyStages(hooks)))
    expect(statusOf(report)).toEqual({ gen: "cached", double: "ran", sum: "ran", side: expect.any(String) })
    expect(lines.some((l) => l.includes("taking over a stale lock"))).toBe(true)
    expect(lines).toContain("[double] removed 1 temporary folder(s) left by an interrupted run")
    expect(cacheEntries(ws, "double").filter((n) => n.startsWith(".tmp-"))).toEqual([])
    expect(publishedKeys(ws, "double")).toHaveLength(1)
  })
})
