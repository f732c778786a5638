/**
 * Crash soak: the embedded default (shrunk with `--set` so a run takes well under a minute) is killed with SIGKILL
 * at 3 random points (the whole process group, as a container stop or the OOM killer would), resumed after each
 * kill, and run to the end. Every data artifact (each stage's outputs in the manifest, the report's folder aside:
 * it shows the lineage, which differs) must have the digest of an uninterrupted run in a separate cache. The kill
 * points are progress events, not times: the n-th line a given stage prints, on three stages of one dependency
 * chain, drawn from a seeded generator (`LLINK_SOAK_SEED` overrides the seed) and printed so a failure can be
 * replayed.
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
  readonly stages: Readonly<
    Record<string, { readonly status: string; readonly inputs: Readonly<Record<string, string>>; readonly outputs: Readonly<Record<string, { readonly digest: string }>> }>
  >
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

/** A kill point: the `line`-th output line tagged `[stage]` of a run, or that stage's `done` line if it comes first. */
interface KillPoint {
  readonly stage: string
  readonly line: number
}

/**
 * Starts a run in its own process group and SIGKILLs the group as the run prints the kill point's line (an event of
 * the run's own progress, never a timer), unless the run ends first. Output is appended to `log`.
 */
const runAndKill = (runDir: string, cacheDir: string, point: KillPoint, log: string): Promise<"killed" | "finished"> =>
  new Promise((resolve, reject) => {
    const out = fs.openSync(log, "a")
    const child = spawn(process.execPath, args(runDir, cacheDir), { cwd: repoRoot, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    let killed = false
    let seen = 0
    let pending = ""
    const onData = (b: Buffer) => {
      fs.writeSync(out, b)
      pending += b.toString()
      const lines = pending.split("\n")
      pending = lines.pop() ?? ""
      for (const l of lines) {
        if (killed || !l.startsWith(`[${point.stage}] `)) continue
        seen++
        if (seen >= point.line || l.startsWith(`[${point.stage}] done in`)) {
          killed = true
          process.kill(-(child.pid ?? 0), "SIGKILL")
        }
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("error", reject)
    child.once("close", (code, signal) => {
      fs.closeSync(out)
      if (killed && signal === "SIGKILL") resolve("killed")
      else if (code === 0) resolve("finished")
      else reject(new Error(`llink run exited ${code ?? signal} before the kill; see ${log}`))
    })
  })

/** Stage → the stages whose outputs it reads, from a manifest's inputs and outputs. */
const upstreamOf = (m: Manifest): Map<string, Set<string>> => {
  const producer = new Map<string, string>()
  for (const [stage, e] of Object.entries(m.stages)) for (const o of Object.keys(e.outputs)) producer.set(o, stage)
  const up = new Map<string, Set<string>>()
  for (const [stage, e] of Object.entries(m.stages)) {
    up.set(stage, new Set(Object.keys(e.inputs).map((i) => producer.get(i)).filter((s): s is string => s !== undefined && s !== stage)))
  }
  return up
}

/** All stages `stage` depends on, directly or not. */
const ancestors = (up: Map<string, Set<string>>, stage: string): Set<string> => {
  const seen = new Set<string>()
  const todo = [...(up.get(stage) ?? [])]
  while (todo.length > 0) {
    const s = todo.pop()!
    if (seen.has(s)) continue
    seen.add(s)
    todo.push(...(up.get(s) ?? []))
  }
  return seen
}

describe("crash soak (SIGKILL at 3 random points)", () => {
  it("resumed after each kill, ends with every data artifact equal to an uninterrupted run's", { timeout: 900_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-soak-"))
    const ref = spawnSync(process.execPath, args(path.join(dir, "ref-run"), path.join(dir, "ref-cache")), { cwd: repoRoot, env, encoding: "utf8" })
    if (ref.status !== 0) throw new Error(`uninterrupted run exited ${ref.status}:\n${ref.stdout}\n${ref.stderr}`)
    const refManifest = manifest(path.join(dir, "ref-run"))
    const expected = dataDigests(refManifest)
    expect(Object.keys(expected).length).toBeGreaterThanOrEqual(30)

    // Three kill points on one dependency chain, S1 upstream of S2 upstream of S3: S_k cannot start before S_(k-1)
    // is published, and run k - 1 died inside S_(k-1), so run k runs S_k and every kill lands, on any machine load.
    // Within a stage, the point is a seeded line number among the lines the uninterrupted run printed for it.
    const seed = Number(process.env["LLINK_SOAK_SEED"] ?? 11)
    const rand = mulberry32(seed)
    const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(rand() * xs.length)]
    const up = upstreamOf(refManifest)
    const stages = Object.keys(refManifest.stages).sort()
    const depth = (s: string): number => Math.max(0, ...[...(up.get(s) ?? [])].map((u) => depth(u) + 1))
    const s3 = pick(stages.filter((s) => depth(s) >= 2))
    const s2 = pick([...ancestors(up, s3)].sort().filter((s) => depth(s) >= 1))
    const s1 = pick([...ancestors(up, s2)].sort())
    const refLines = `${ref.stdout}\n${ref.stderr}`.split("\n")
    const points: Array<KillPoint> = [s1, s2, s3].map((stage) => {
      const n = refLines.filter((l) => l.startsWith(`[${stage}] `) && !l.startsWith(`[${stage}] done in`)).length
      return { stage, line: 1 + Math.floor(rand() * Math.max(1, n)) }
    })
    const runDir = path.join(dir, "run")
    const cacheDir = path.join(dir, "cache")
    const log = path.join(dir, "soak.log")
    const outcomes: Array<string> = []
    for (const p of points) outcomes.push(`${p.stage} line ${p.line}: ${await runAndKill(runDir, cacheDir, p, log)}`)
    console.log(`soak seed ${seed}, kills at ${outcomes.join("; ")}`)
    expect(outcomes.filter((o) => o.endsWith("killed")), outcomes.join("; ")).toHaveLength(3)

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
