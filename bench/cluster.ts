/**
 * `npm run bench -- cluster`: `synthesize` on the cluster against a loopback endpoint that answers after 200 ms.
 * With R = 1, 2, 3 runners (`--slots 1`, C requests in flight per runner: two overlapping shards share them), the
 * request rate while the shards run, against the ideal R × C / latency, and the most requests the endpoint saw open at
 * once (which must stay ≤ R × C); then the same shards again with every answer already in the request cache, as the
 * cluster's cost per shard with no work in it (the message round trip, the tables read, the cache looked up).
 * Needs PostgreSQL (`LLINK_TEST_POSTGRES`, or pg_ctl to start a throwaway one); prints a note and exits otherwise.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startTestPostgres } from "../test/support/postgres.ts"
import { startFakeOpenAI } from "../test/support/fakeOpenAI.ts"

const repo = path.resolve(import.meta.dirname, "..")
const main = path.join(repo, "src/cli/main.ts")
const LATENCY_MS = 200
const C = 4
/**
 * Requests per run: training candidates plus 20 validation ones (`LLINK_BENCH_CANDIDATES`, default 1,200: 19 shards
 * of 16 × C, so that the start of a run and the last shard's tail do not dominate as they do with 7).
 */
const CANDIDATES = Number(process.env["LLINK_BENCH_CANDIDATES"] ?? 1200)
const pg = startTestPostgres()
if (!pg.ok) {
  console.log(`cluster: skipped: ${pg.reason}`)
  process.exit(0)
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-cluster-"))
const reply = (prompt: string) => {
  const task = /^Task type: (\S+)/m.exec(prompt)?.[1] ?? ""
  const english = /Reference English translation:\n([\s\S]*?)\n\nReturn exactly/.exec(prompt)?.[1] ?? ""
  return task === "qa_about_text"
    ? JSON.stringify({ question: "What does the foreign text say?", answer: english })
    : JSON.stringify({ instruction: `Please do ${task} for the foreign text.`, answer: english })
}
// The embedded sample (~600 pairs) repeated with a copy number on both sides, so that the train split can hold every
// candidate (clean drops exact duplicates).
const corpus = path.join(work, "corpus.tsv")
const sample = fs.readFileSync(path.join(repo, "datasets/km-en-sample/km-en.sample.tsv"), "utf8").split("\n").filter((l) => /^[^\t]+\t[^\t]+$/.test(l))
const copies = Math.ceil((CANDIDATES + 200) / sample.length) + 1
fs.writeFileSync(corpus, Array.from({ length: copies }, (_, k) => sample.map((l) => l.replace("\t", ` (${k})\t`) + ` (${k})`).join("\n")).join("\n") + "\n")
const server = await startFakeOpenAI({ content: (r) => reply(r.prompt), faults: () => "slow", slowMs: LATENCY_MS })
const procs: Array<ChildProcess> = []

const startRunner = (url: string, port: number) =>
  new Promise<ChildProcess>((resolve, reject) => {
    const p = spawn(process.execPath, [main, "runner", "--cluster", url, "--listen", `127.0.0.1:${port}`, "--lease", "10s"], { stdio: ["ignore", "pipe", "pipe"] })
    procs.push(p)
    let log = ""
    const on = (b: Buffer) => {
      log += b.toString()
      if (log.includes("Listening on")) resolve(p)
    }
    p.stdout!.on("data", on)
    p.stderr!.on("data", on)
    p.on("exit", (code) => reject(new Error(`runner exited ${code}: ${log.slice(-1000)}`)))
  })

/** Runs `llink run --until synthesize --cluster`; returns the shard phase's duration and requests. */
const runOnce = (url: string, cacheDir: string, label: string) =>
  new Promise<{ shards: number; seconds: number; requests: number; maxOpen: number }>((resolve, reject) => {
    const args = [main, "run", "--until", "synthesize", "--cluster", url, "--lease", "10s",
      "--set", "synth.mode=endpoint", "--set", `synth.endpoint.baseUrl=${server.baseUrl}`, "--set", `synth.endpoint.concurrency=${C}`,
      "--set", `corpus.path=${corpus}`, "--set", `split.train=${CANDIDATES + 20}`, "--set", "split.holdout=120", "--set", "split.evalN=20",
      "--set", `synth.train=${CANDIDATES - 20}`, "--set", "synth.val=20", "--set", "synth.evalPerBucket=2",
      "--set", `cacheDir=${cacheDir}`, "--run-dir", path.join(work, label)]
    const p = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENAI_API_KEY: "bench" } })
    let t0 = 0, r0 = 0, shards = 0, out = ""
    p.stderr!.on("data", (b: Buffer) => {
      const text = b.toString()
      out += text
      const m = /\[synthesize\] (\d+) shard\(s\)/.exec(text)
      if (m !== null) {
        shards = Number(m[1])
        t0 = performance.now()
        r0 = server.received()
        server.resetMaxOpen()
      }
      if (/\[synthesize\] shards: /.test(text) && t0 > 0) {
        const seconds = (performance.now() - t0) / 1000
        const requests = server.received() - r0
        const maxOpen = server.maxOpen()
        p.on("exit", (code) => (code === 0 ? resolve({ shards, seconds, requests, maxOpen }) : reject(new Error(out.slice(-2000)))))
        t0 = -1
      }
    })
    p.on("exit", (code) => {
      if (t0 !== -1) reject(new Error(`llink run exited ${code} before the shards finished: ${out.slice(-2000)}`))
    })
  })

try {
  console.log(`loopback endpoint: ${LATENCY_MS} ms per answer; C = ${C} requests in flight per runner (synth.endpoint.concurrency)`)
  console.log("runners  shards  requests  seconds  req/s   ideal R×C/latency  fraction  most in flight (limit R×C)")
  for (const R of [1, 2, 3]) {
    const url = pg.url(`bench${R}`)
    await Promise.all(Array.from({ length: R }, (_, i) => startRunner(url, 34800 + R * 10 + i)))
    const cacheDir = path.join(work, `cache${R}`)
    const r = await runOnce(url, cacheDir, `run${R}`)
    const rate = r.requests / r.seconds
    const ideal = (R * C * 1000) / LATENCY_MS
    console.log(`${String(R).padEnd(9)}${String(r.shards).padEnd(8)}${String(r.requests).padEnd(10)}${r.seconds.toFixed(1).padEnd(9)}${rate.toFixed(1).padEnd(8)}${ideal.toFixed(1).padEnd(19)}${(rate / ideal).toFixed(2).padEnd(10)}${r.maxOpen} (${R * C})`)
    if (R === 3) {
      // same shards, every answer cached: what a shard costs with nothing to do
      fs.rmSync(path.join(cacheDir, "synthesize"), { recursive: true, force: true })
      const again = await runOnce(url, cacheDir, "cached")
      console.log(`per-shard overhead (all answers cached, ${R} runners, ${again.shards} shards): ${((again.seconds * R) / again.shards).toFixed(2)} s of runner time per shard; ${again.requests} requests sent`)
    }
    for (const p of procs.splice(0)) p.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 500))
  }
} finally {
  for (const p of procs) p.kill("SIGKILL")
  await server.close()
  pg.stop()
  fs.rmSync(work, { recursive: true, force: true })
}
