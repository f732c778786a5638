// Processes for the cluster tests (test/cluster/*.test.ts): `llink run` (optionally `--cluster`) into a folder of its
// own, `llink runner` processes whose logs are kept, and what the tests read back (shards computed, digests).
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

export const repo = path.resolve(import.meta.dirname, "../..")
export const main = path.join(repo, "src/cli/main.ts")

export interface Manifest {
  readonly stages: Record<string, { readonly status: string; readonly outputs: Record<string, { readonly digest: string }> }>
}

export interface Runner {
  readonly proc: ChildProcess
  /** The address it registered, once its log says so. */
  address: string
  log: string
}

/** `stage range` of every shard a runner computed (not those it found published). */
export const computed = (log: string): Array<string> =>
  [...log.matchAll(/\] (\w+ [\w.]+\[\d+, \d+\)): done in/g)].map((m) => m[1])

/** Output digests per stage; the human-facing `report` document is left out: it names the run folder. */
export const digests = (m: Manifest) =>
  Object.fromEntries(
    Object.entries(m.stages)
      .filter(([, s]) => s.status === "ran" || s.status === "cached")
      .map(([name, s]) => [
        name,
        Object.fromEntries(Object.entries(s.outputs).filter(([o]) => o !== "report").map(([o, v]) => [o, v.digest]))
      ])
  )

export const makeClusterHarness = (dir: string) => {
  const procs: Array<ChildProcess> = []

  const llinkRun = (
    label: string,
    extra: ReadonlyArray<string>,
    until: string | null,
    sets: ReadonlyArray<string>
  ): Promise<{ code: number | null; out: string; manifest: Manifest }> =>
    new Promise((resolve) => {
      const args = [main, "run", ...(until === null ? [] : ["--until", until]), ...sets, "--set", `cacheDir=${path.join(dir, label, "cache")}`, "--run-dir", path.join(dir, label, "run"), ...extra]
      const child = spawn(process.execPath, args, { cwd: repo, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENAI_API_KEY: "test" } })
      let out = ""
      child.stdout.on("data", (b: Buffer) => (out += b.toString()))
      child.stderr.on("data", (b: Buffer) => (out += b.toString()))
      child.on("exit", (code) => {
        const file = path.join(dir, label, "run", "manifest.json")
        const manifest = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Manifest) : { stages: {} }
        resolve({ code, out, manifest })
      })
    })

  /** A runner, resolved once it listens. `listen` is `--listen`'s value (`127.0.0.1:0` takes a free port). */
  const startRunner = (url: string, listen: string, extra: ReadonlyArray<string> = []): Promise<Runner> =>
    new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, [main, "runner", "--cluster", url, "--listen", listen, ...extra], {
        cwd: repo,
        stdio: ["ignore", "pipe", "pipe"]
      })
      procs.push(proc)
      const runner: Runner = { proc, address: "", log: "" }
      const onData = (b: Buffer) => {
        runner.log += b.toString()
        const m = /Listening on: (\S+)/.exec(runner.log)
        if (m !== null && runner.address === "") {
          runner.address = m[1]
          resolve(runner)
        }
      }
      proc.stdout!.on("data", onData)
      proc.stderr!.on("data", onData)
      proc.on("exit", (code) => reject(new Error(`runner ${listen} exited (${code}): ${runner.log.slice(-2000)}`)))
    })

  /** SIGKILLs every runner still alive. */
  const killAll = () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL")
  }

  return { llinkRun, startRunner, killAll }
}
