/**
 * End to end on loopback: PostgreSQL, three `llink runner --cluster` processes and `llink run --cluster` on the
 * embedded default (cut to `--until stageA`, with small batches so that `encode` and `teacher` have three shards each).
 * Every stage's output digest equals the single-process run's, each shard is computed once; then again with one
 * runner SIGKILLed while it computes a `teacher` shard: the shard moves to another runner after the lease, and the
 * digests are still those of the single-process run; a runner SIGKILLed mid-`synthesize`; and the whole embedded
 * default (shrunk), where every sharded stage (generate and retrievalFull included, in runner child processes) merges
 * to the single-process digests. Skips when PostgreSQL is not installed.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { computed, digests, main, makeClusterHarness, type Manifest, repo, type Runner } from "../support/clusterHarness.ts"
import { type FakeOpenAI, type FakeRequest, startFakeOpenAI } from "../support/fakeOpenAI.ts"
import { startTestPostgres } from "../support/postgres.ts"
import { SMALL_DEFAULT, testSizeDefault } from "../support/smallDefault.ts"
import { skipFor } from "../support/envGate.ts"

const pg = startTestPostgres()
const noPostgres = skipFor("postgres", pg.ok ? undefined : pg.reason)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-cluster-"))
const LEASE = "8s"

const SETS = [
  ...testSizeDefault(repo),
  "stageA.steps=20",
  "stageA.warmupSteps=2",
  "stageA.checkpointEvery=10",
  "stageA.evalEvery=10",
  "encode.batchSize=4",
  "teacher.batchSize=4"
].flatMap((s) => ["--set", s])

const harness = makeClusterHarness(dir)
afterAll(() => {
  harness.killAll()
  if (pg.ok) pg.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

const llinkRun = (label: string, extra: ReadonlyArray<string>, until: string | null = "stageA", sets: ReadonlyArray<string> = SETS) =>
  harness.llinkRun(label, extra, until, sets)

const startRunner = (url: string, port: number): Promise<Runner> => harness.startRunner(url, `127.0.0.1:${port}`, ["--lease", LEASE])

const SHARDED = ["encode", "teacher"]
const SHARDS_PER_STAGE = 3 // train: 400 rows in windows of 4 × 64 = 256; holdout: 120 rows

describe.skipIf(noPostgres)("llink on a cluster (PostgreSQL on loopback, 3 runners)", () => {
  let single: Manifest = { stages: {} }

  it("the single-process reference run", { timeout: 300_000 }, async () => {
    const r = await llinkRun("single", [])
    expect(r.code, r.out.slice(-3000)).toBe(0)
    single = r.manifest
    for (const s of [...SHARDED, "stageA"]) expect(single.stages[s].status).toBe("ran")
  })

  it("3 runners: every stage's digests equal the single-process run's, each shard computed once", { timeout: 400_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    const url = pg.url("e2e")
    const runners = await Promise.all([34611, 34612, 34613].map((p) => startRunner(url, p)))
    const r = await llinkRun("cluster", ["--cluster", url, "--lease", LEASE])
    expect(r.code, r.out.slice(-3000)).toBe(0)
    expect(r.out).toMatch(/\[encode\] 3 shard\(s\): 0 already published, 3 to run in the cluster \(3 runners\)/)
    expect(digests(r.manifest)).toEqual(digests(single))
    const done = runners.flatMap((x) => computed(x.log))
    expect(done.filter((d) => d.startsWith("encode")).length).toBe(SHARDS_PER_STAGE)
    expect(done.filter((d) => d.startsWith("teacher")).length).toBe(SHARDS_PER_STAGE)
    expect(new Set(done).size).toBe(done.length)
    // placed one per runner (the coordinator's lanes), not by the hash of the shard ids
    for (const x of runners) {
      expect(computed(x.log).filter((d) => d.startsWith("encode")).length, x.log.slice(-2000)).toBe(1)
      expect(computed(x.log).filter((d) => d.startsWith("teacher")).length, x.log.slice(-2000)).toBe(1)
    }
    const status = spawnSync(process.execPath, [main, "cluster", "status", "--cluster", url], { cwd: repo, encoding: "utf8" })
    expect(status.status, status.stderr).toBe(0)
    expect(status.stdout).toMatch(/127\.0\.0\.1:34611\s+yes/)
    expect(status.stdout).toMatch(new RegExp(`teacher\\s+${SHARDS_PER_STAGE}\\s+0\\s+0`))
    for (const x of runners) x.proc.kill("SIGTERM")
  })

  it("a runner SIGKILLed mid-teacher: its shard moves to another runner, the digests are unchanged", { timeout: 400_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    const url = pg.url("kill")
    const runners = await Promise.all([34621, 34622, 34623].map((p) => startRunner(url, p)))
    let killed: Runner | undefined
    let killedShard = ""
    // killed the moment its log says a teacher shard started (the data event, not a polling timer): the shard takes
    // far longer than the pipe's delivery, so it is cut mid-way
    for (const x of runners) {
      const onData = () => {
        if (killed !== undefined) return
        const m = /\] (teacher \w+\[\d+, \d+\)): started/.exec(x.log)
        if (m === null) return
        killed = x
        killedShard = m[1]
        x.proc.removeAllListeners("exit")
        x.proc.kill("SIGKILL")
      }
      x.proc.stdout!.on("data", onData)
      x.proc.stderr!.on("data", onData)
    }
    const r = await llinkRun("killed", ["--cluster", url, "--lease", LEASE])
    expect(r.code, r.out.slice(-3000)).toBe(0)
    expect(killed, "no runner started a teacher shard").toBeDefined()
    expect(digests(r.manifest)).toEqual(digests(single))
    const survivors = runners.filter((x) => x !== killed)
    const done = survivors.flatMap((x) => computed(x.log))
    const about = (log: string) => log.split("\n").filter((l) => l.includes(killedShard)).join("\n")
    expect(done, `survivors on ${killedShard}:\n${survivors.map((x) => about(x.log)).join("\n")}\nkilled:\n${about(killed!.log)}`).toContain(killedShard)
    expect(computed(killed!.log)).not.toContain(killedShard)
    for (const x of survivors) x.proc.kill("SIGTERM")
  })

  it("a runner SIGKILLed mid-synthesize (endpoint with faults): the same tables, and only requests in flight at the kill are sent again", { timeout: 400_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    const reply = (r: FakeRequest): string => {
      const task = /^Task type: (\S+)/m.exec(r.prompt)?.[1] ?? ""
      const english = /Reference English translation:\n([\s\S]*?)\n\nReturn exactly/.exec(r.prompt)?.[1] ?? ""
      return task === "qa_about_text"
        ? JSON.stringify({ question: "What does the foreign text say?", answer: english })
        : JSON.stringify({ instruction: `Please do ${task} for the foreign text.`, answer: english })
    }
    // every 9th request first fails with a 500 (retried by the endpoint), the others answer after 40 ms
    const faults = (r: FakeRequest) => (r.attemptForPrompt === 0 && r.index % 9 === 4 ? "server_error" as const : "slow" as const)
    // The kill is driven by events: the first runner whose log says a synthesize shard started is SIGKILLed as the
    // server writes the 2nd answer after that, so it cannot have finished its shard (16 candidates) whatever the load.
    let killed: Runner | undefined
    let answeredAtStart = 0
    let logAtKill = ""
    const onAnswered = (_: FakeRequest, total: number) => {
      if (killed === undefined || logAtKill !== "" || total < answeredAtStart + 2) return
      logAtKill = killed.log
      killed.proc.removeAllListeners("exit")
      killed.proc.kill("SIGKILL")
    }
    const servers: Array<FakeOpenAI> = [
      await startFakeOpenAI({ content: reply, faults, slowMs: 40 }),
      await startFakeOpenAI({ content: reply, faults, slowMs: 40, onAnswered })
    ]
    try {
      const synthSets = (url: string) =>
        ["synth.mode=endpoint", `synth.endpoint.baseUrl=${url}`, "synth.endpoint.concurrency=2", "synth.endpoint.backoffBaseMs=1",
          "synth.train=100", "synth.val=10", "synth.evalPerBucket=2"].flatMap((x) => ["--set", x])
      // the reference: one process (both runs' keys hold the URL, so each caches its own answers)
      const ref = await llinkRun("synth-single", synthSets(servers[0].baseUrl), "synthesize")
      expect(ref.code, ref.out.slice(-3000)).toBe(0)

      const url = pg.url("synth")
      const runners = await Promise.all([34631, 34632, 34633].map((p) => startRunner(url, p)))
      for (const x of runners) {
        const onData = () => {
          if (killed !== undefined || !/\] synthesize train\[\d+, \d+\): started/.test(x.log)) return
          killed = x
          answeredAtStart = [...servers[1].answeredByPrompt.values()].reduce((a, b) => a + b, 0)
        }
        x.proc.stdout!.on("data", onData)
        x.proc.stderr!.on("data", onData)
      }
      const r = await llinkRun("synth-killed", [...synthSets(servers[1].baseUrl), "--cluster", url, "--lease", LEASE], "synthesize")
      expect(r.code, r.out.slice(-3000)).toBe(0)
      expect(killed, "no runner started a synthesize shard").toBeDefined()
      expect(logAtKill, "the runner was not killed").not.toBe("")
      expect(logAtKill, "the killed runner had finished its shard").not.toMatch(/synthesize train\[\d+, \d+\): done/)
      // 110 candidates in shards of max(16, 4 × concurrency 2)
      expect(r.out).toMatch(/\[synthesize\] 7 shard\(s\): 0 already published, 7 to run in the cluster/)
      const tables = (m: Manifest) => m.stages["synthesize"].outputs
      for (const name of ["sft.train", "sft.val", "sft.eval", "synthesize.quarantine"]) {
        expect(tables(r.manifest)[name].digest).toBe(tables(ref.manifest)[name].digest)
      }
      // answered more than once: at most the requests in flight on the killed runner (2 per runner)
      const twice = [...servers[1].answeredByPrompt.values()].filter((n) => n > 1).length
      expect(twice).toBeLessThanOrEqual(2)
      expect(Math.max(...servers[0].answeredByPrompt.values())).toBe(1)
      for (const x of runners) if (x !== killed) x.proc.kill("SIGTERM")
    } finally {
      for (const s of servers) await s.close()
    }
  })

  it("the whole embedded default (shrunk), 3 runners: every stage's digests equal the single-process run's", { timeout: 600_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    // every stage runs; generate and retrievalFull get two shards each (4 examples in batches of 2; 16 pairs in 8s)
    const small = [
      ...SMALL_DEFAULT,
      "generate.batchSize=2", "generate.shardBatches=1", "generate.maxNewTokens=8",
      "retrievalFull.batchSize=8", "retrievalFull.shardBatches=1",
      "encode.batchSize=4", "teacher.batchSize=4"
    ].flatMap((x) => ["--set", x])
    const ref = await llinkRun("full-single", [], null, small)
    expect(ref.code, ref.out.slice(-3000)).toBe(0)
    const url = pg.url("full")
    const runners = await Promise.all([34641, 34642, 34643].map((p) => startRunner(url, p)))
    const r = await llinkRun("full-cluster", ["--cluster", url, "--lease", LEASE], null, small)
    expect(r.code, r.out.slice(-3000)).toBe(0)
    expect(r.out).toMatch(/\[generate\] 2 shard\(s\): 0 already published, 2 to run in the cluster/)
    expect(r.out).toMatch(/\[retrievalFull\] 2 shard\(s\): 0 already published, 2 to run in the cluster/)
    expect(Object.keys(digests(r.manifest)).sort()).toEqual(Object.keys(digests(ref.manifest)).sort())
    expect(digests(r.manifest)).toEqual(digests(ref.manifest))
    const done = runners.flatMap((x) => computed(x.log))
    expect(done.filter((d) => d.startsWith("generate")).sort()).toEqual(["generate sft.eval[0, 2)", "generate sft.eval[2, 4)"])
    expect(done.filter((d) => d.startsWith("retrievalFull")).sort()).toEqual(["retrievalFull eval[0, 8)", "retrievalFull eval[8, 16)"])
    for (const x of runners) x.proc.kill("SIGTERM")
  })

  it("a runner whose --listen port is taken says so and exits 1", { timeout: 60_000 }, async () => {
    if (!pg.ok) throw new Error("unreachable: this suite skips without PostgreSQL")
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(34651, "127.0.0.1", resolve))
    try {
      const r = spawnSync(process.execPath, [main, "runner", "--cluster", pg.url("port"), "--listen", "127.0.0.1:34651"], { cwd: repo, encoding: "utf8", timeout: 50_000 })
      expect(r.status, r.stdout + r.stderr).toBe(1)
      expect(r.stdout + r.stderr).toMatch(/EADDRINUSE[^\n]*127\.0\.0\.1:34651 \(another process holds that address: pick another port with --listen\)/)
    } finally {
      holder.close()
    }
  })
})
