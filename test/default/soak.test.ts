/**
 * Crash soak: the embedded default (shrunk with `--set` so a run takes well under a minute) is killed with SIGKILL
 * at 3 random points (the whole process group, as a container stop or the OOM killer would), resumed after each
 * kill, and run to the end. Every data artifact (each stage's outputs in the manifest, the report's folder aside:
 * it shows the lineage, which differs) must have the digest of an uninterrupted run in a separate cache. The kill
 * points are fractions of the uninterrupted run's duration (in its first 60%), drawn from a seeded generator (`LLINK_SOAK_SEED`
 * overrides the seed), printed so a failure can be replayed.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { SMALL_DEFAULT } from "../support/smallDefault.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")

const SMALL = SMALL_DEFAULT.flatMap((s) => ["--set", s])

const args = (runDir: string, cacheDir: string) =>
  [path.join(repoRoot, "bin/llink.mjs"), "run", "--run-dir", runDir, "--set", `cacheDir=${cacheDir}`, ...SMALL]
const env = { ...process.env, OPENAI_BASE_URL: "" }

interface Manifest {
  readonly stages: Readonly<Record<string, { readonly status: string; readonly outputs: Readonly<Record<string, { readonly digest: string }>> }>>
}
const manifest = (runDir: string) => JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")) as Manifest

/** Output digests of every stage but the report (whose folder holds the lineage of the run that made it). */
const dataDigests = (m: Manifest): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [stage, entry] of Object.entries(m.stages)) {
    if (stage === "report") continue
    for (const [name, o] of Object.entries(entry.outputs)) out[`${stage}/${name}`] = o.digest
  }
  return out
}

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Starts a run in its own process group and SIGKILLs the group after `ms` (unless it ended first). */
const runAndKill = (runDir: string, cacheDir: string, ms: number, log: string): Promise<"killed" | "finished"> =>
  new Promise((resolve, reject) => {
    const out = fs.openSync(log, "a")
    const child = spawn(process.execPath, args(runDir, cacheDir), { cwd: repoRoot, env, detached: true, stdio: ["ignore", out, out] })
    let killed = false
    const timer = setTimeout(() => {
      killed = true
      process.kill(-(child.pid ?? 0), "SIGKILL")
    }, ms)
    child.once("error", reject)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      fs.closeSync(out)
      if (killed && signal === "SIGKILL") resolve("killed")
      else if (code === 0) resolve("finished")
      else reject(new Error(`llink run exited ${code ?? signal} before the kill; see ${log}`))
    })
  })

describe("crash soak (SIGKILL at 3 random points)", () => {
  it("resumed after each kill, ends with every data artifact equal to an uninterrupted run's", { timeout: 900_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-soak-"))
    const started = Date.now()
    const ref = spawnSync(process.execPath, args(path.join(dir, "ref-run"), path.join(dir, "ref-cache")), { cwd: repoRoot, env, encoding: "utf8" })
    if (ref.status !== 0) throw new Error(`uninterrupted run exited ${ref.status}:\n${ref.stdout}\n${ref.stderr}`)
    const duration = Date.now() - started
    const expected = dataDigests(manifest(path.join(dir, "ref-run")))
    expect(Object.keys(expected).length).toBeGreaterThanOrEqual(30)

    const seed = Number(process.env["LLINK_SOAK_SEED"] ?? 11)
    const rand = mulberry32(seed)
    // one point in each third of the first 60% of the run (early, middle and late stages get hit): a resumed run
    // skips what is published and reaches the end sooner than the uninterrupted one did, so later points would often
    // find it finished
    const points = [0, 1, 2].map((k) => 0.05 + (0.55 * (k + rand())) / 3)
    const runDir = path.join(dir, "run")
    const cacheDir = path.join(dir, "cache")
    const log = path.join(dir, "soak.log")
    const outcomes: Array<string> = []
    let at = 0
    for (const p of points) {
      // each run resumes where the last one was killed, so it waits only the rest of the way to the next point
      const wait = Math.max(500, Math.round((p - at) * duration))
      at = p
      outcomes.push(`${(p * 100).toFixed(0)}% (+${wait} ms): ${await runAndKill(runDir, cacheDir, wait, log)}`)
    }
    console.log(`soak seed ${seed}, uninterrupted ${duration} ms, kills at ${outcomes.join("; ")}`)
    expect(outcomes.filter((o) => o.endsWith("killed")).length).toBeGreaterThanOrEqual(2)

    const last = spawnSync(process.execPath, args(runDir, cacheDir), { cwd: repoRoot, env, encoding: "utf8" })
    if (last.status !== 0) throw new Error(`resumed run exited ${last.status}:\n${last.stdout}\n${last.stderr}\n(log ${log})`)
    expect(dataDigests(manifest(runDir))).toEqual(expected)
    // nothing of the killed runs is left behind: no temporary folder in the cache, no lock in the run dir
    const leftovers = fs.readdirSync(cacheDir, { recursive: true, encoding: "utf8" }).filter((f) => /(^|\/)\.(tmp|old)-/.test(f))
    expect(leftovers).toEqual([])
    expect(fs.existsSync(path.join(runDir, ".lock"))).toBe(false)
    fs.rmSync(dir, { recursive: true, force: true })
  })
})
