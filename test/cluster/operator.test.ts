/**
 * The cluster as an operator runs it (issue "Runners an operator can live with"), on loopback PostgreSQL:
 * - two runners on one machine with `--listen 127.0.0.1:0` both register (on ports they picked) and both take shards,
 *   and `llink cluster status` lists them with their heartbeat's age;
 * - a runner whose database is gone writes one line about it and, on SIGTERM, exits within its grace period plus 2 s
 *   with under 10 lines of log from the loss to the exit;
 * - the shrunk default on 2 runners with PostgreSQL stopped while a `teacher` shard runs (the shard's "started"
 *   line is the trigger) and started 10 s later: the run finishes with every output digest equal to the
 *   single-process run's, and no endpoint request is answered twice.
 * The last two stop and start a server of their own. Skips when PostgreSQL is not installed.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { computed, digests, main, makeClusterHarness, repo, type Runner } from "../support/clusterHarness.ts"
import { skipFor } from "../support/envGate.ts"
import { type FakeRequest, startFakeOpenAI } from "../support/fakeOpenAI.ts"
import { startPrivatePostgres, startTestPostgres } from "../support/postgres.ts"
import { SMALL_DEFAULT, testSizeDefault } from "../support/smallDefault.ts"

const pg = startTestPostgres()
const noPostgres = skipFor("postgres", pg.ok ? undefined : pg.reason)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-operator-"))
const harness = makeClusterHarness(dir)
const own: Array<() => void> = []
afterAll(() => {
  harness.killAll()
  for (const stop of own) stop()
  if (pg.ok) pg.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** A private server on a port of its own (away from startTestPostgres's 40000 + pid % 10000). */
const privatePostgres = (n: number) => {
  const p = startPrivatePostgres(50000 + ((process.pid * 3 + n) % 9000))
  if (!p.ok) throw new Error(p.reason)
  own.push(p.stop)
  return p
}

/** Resolves when `runner`'s log matches `re` (checked on every chunk it writes). */
const logMatches = (runner: Runner, re: RegExp): Promise<RegExpExecArray> =>
  new Promise((resolve) => {
    const check = () => {
      const m = re.exec(runner.log)
      if (m === null) return
      runner.proc.stdout!.off("data", check)
      runner.proc.stderr!.off("data", check)
      resolve(m)
    }
    runner.proc.stdout!.on("data", check)
    runner.proc.stderr!.on("data", check)
    check()
  })

const exited = (runner: Runner): Promise<number | null> =>
  new Promise((resolve) => {
    if (runner.proc.exitCode !== null || runner.proc.signalCode !== null) resolve(runner.proc.exitCode)
    runner.proc.removeAllListeners("exit")
    runner.proc.on("exit", (code) => resolve(code))
  })

const QUICK = [
  ...testSizeDefault(repo),
  "stageA.steps=20", "stageA.warmupSteps=2", "stageA.checkpointEvery=10", "stageA.evalEvery=10",
  "encode.batchSize=4", "teacher.batchSize=4"
].flatMap((s) => ["--set", s])

describe.skipIf(noPostgres)("runners an operator can live with", () => {
  it("two runners with --listen 127.0.0.1:0 on one machine both register and both take shards", { timeout: 400_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    const url = pg.url("listen0")
    const runners = await Promise.all([0, 1].map(() => harness.startRunner(url, "127.0.0.1:0", ["--lease", "8s"])))
    const ports = runners.map((r) => Number(r.address.split(":")[1]))
    expect(ports.every((p) => p > 0)).toBe(true)
    expect(new Set(ports).size).toBe(2)
    const r = await harness.llinkRun("listen0", ["--cluster", url, "--lease", "8s"], "teacher", QUICK)
    expect(r.code, r.out.slice(-3000)).toBe(0)
    for (const x of runners) expect(computed(x.log).length, x.log.slice(-2000)).toBeGreaterThan(0)
    const status = spawnSync(process.execPath, [main, "cluster", "status", "--cluster", url, "--lease", "8s"], { cwd: repo, encoding: "utf8" })
    expect(status.status, status.stderr).toBe(0)
    for (const x of runners) expect(status.stdout).toMatch(new RegExp(`${x.address.replace(/\./g, "\\.")}\\s+yes\\s+[\\d.]+ s ago\\s+held`))
    for (const x of runners) x.proc.kill("SIGTERM")
  })

  it("SIGTERM while a shard runs: the shard finishes within the grace period, no new one starts, the lease is released", { timeout: 400_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    const url = pg.url("drain")
    const [stopping, other] = await Promise.all([
      harness.startRunner(url, "127.0.0.1:0", ["--lease", "30s", "--grace", "60s"]),
      harness.startRunner(url, "127.0.0.1:0", ["--lease", "30s"])
    ])
    const done = exited(stopping)
    let shard = ""
    void logMatches(stopping, /\] (teacher \w+\[\d+, \d+\)): started/).then((m) => {
      shard = m[1]
      stopping.proc.kill("SIGTERM")
    })
    const t0 = performance.now()
    const r = await harness.llinkRun("drain", ["--cluster", url, "--lease", "30s"], "teacher", QUICK)
    expect(r.code, r.out.slice(-3000)).toBe(0)
    expect(shard, "the runner started no teacher shard").not.toBe("")
    await done
    // its shard was finished by it (not left to the lease: the run took less than the 30 s lease after the signal
    // would allow otherwise), and nothing started after the signal
    expect(computed(stopping.log)).toContain(shard)
    const afterSignal = stopping.log.slice(stopping.log.indexOf("stopping:"))
    expect(afterSignal).not.toMatch(/: started/)
    expect(afterSignal).toMatch(/releasing the lease/)
    expect(computed(other.log)).not.toContain(shard)
    console.log(`[operator] SIGTERM mid-shard: run finished in ${((performance.now() - t0) / 1000).toFixed(1)} s; stopping runner:\n${stopping.log.split("\n").filter((l) => l.startsWith("[runner")).join("\n")}`)
    other.proc.kill("SIGTERM")
  })

  it("SIGTERM without the database: one line about the loss, and an exit within the grace period plus 2 s", { timeout: 120_000 }, async () => {
    const server = privatePostgres(1)
    const runner = await harness.startRunner(server.url, "127.0.0.1:0", ["--grace", "4s"])
    server.pause()
    await logMatches(runner, /lost PostgreSQL at /)
    const fromLoss = runner.log.lastIndexOf("\n", runner.log.indexOf("lost PostgreSQL")) + 1
    const done = exited(runner)
    const t0 = performance.now()
    runner.proc.kill("SIGTERM")
    await done
    const seconds = (performance.now() - t0) / 1000
    const tail = runner.log.slice(fromLoss).trimEnd().split("\n")
    console.log(`[operator] SIGTERM without PostgreSQL: exited in ${seconds.toFixed(1)} s; log from the loss:\n${tail.join("\n")}`)
    expect(seconds).toBeLessThan(4 + 2)
    expect(tail.length).toBeLessThan(10)
    expect(tail.join("\n")).not.toMatch(/\n\s+at /) // no stack
    server.resume()
  })

  it("PostgreSQL stopped mid-teacher and started 10 s later: the shrunk default finishes with the single-process digests, no request answered twice", { timeout: 600_000 }, async () => {
    const reply = (r: FakeRequest): string => {
      const task = /^Task type: (\S+)/m.exec(r.prompt)?.[1] ?? ""
      const english = /Reference English translation:\n([\s\S]*?)\n\nReturn exactly/.exec(r.prompt)?.[1] ?? ""
      return task === "qa_about_text"
        ? JSON.stringify({ question: "What does the foreign text say?", answer: english })
        : JSON.stringify({ instruction: `Please do ${task} for the foreign text.`, answer: english })
    }
    const servers = [await startFakeOpenAI({ content: reply }), await startFakeOpenAI({ content: reply })]
    try {
      const sets = (endpoint: string) =>
        [...SMALL_DEFAULT, "encode.batchSize=4", "teacher.batchSize=4", "synth.mode=endpoint", `synth.endpoint.baseUrl=${endpoint}`]
          .flatMap((x) => ["--set", x])
      const ref = await harness.llinkRun("restart-single", [], "retrievalFull", sets(servers[0].baseUrl))
      expect(ref.code, ref.out.slice(-3000)).toBe(0)

      const server = privatePostgres(2)
      const runners = await Promise.all([0, 1].map(() => harness.startRunner(server.url, "127.0.0.1:0", ["--lease", "8s"])))
      let paused = false
      let resumed: Promise<void> | undefined
      for (const x of runners) {
        void logMatches(x, /\] teacher \w+\[\d+, \d+\): started/).then(() => {
          if (paused) return
          paused = true
          server.pause()
          resumed = new Promise((resolve) => setTimeout(() => {
            server.resume()
            resolve()
          }, 10_000))
        })
      }
      const r = await harness.llinkRun("restart-cluster", ["--cluster", server.url, "--lease", "8s"], "retrievalFull", sets(servers[1].baseUrl))
      await resumed
      expect(paused, "no teacher shard started on a runner").toBe(true)
      expect(r.code, r.out.slice(-3000)).toBe(0)
      expect(digests(r.manifest)).toEqual(digests(ref.manifest))
      const answers = [...servers[1].answeredByPrompt.values()]
      expect(answers.length).toBeGreaterThan(0)
      expect(Math.max(...answers)).toBe(1)
      for (const x of runners) {
        const lines = x.log.split("\n")
        console.log(`[operator] runner ${x.address} through the outage:\n${lines.filter((l) => /PostgreSQL|teacher/.test(l)).join("\n")}`)
        expect(lines.filter((l) => /WARN|ERROR/.test(l)).length, x.log.slice(-3000)).toBeLessThan(5)
      }
      for (const x of runners) x.proc.kill("SIGTERM")
    } finally {
      for (const s of servers) await s.close()
    }
  })
})
