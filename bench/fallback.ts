/**
 * `npm run bench -- fallback`: the embedded default (`llink run`, fresh cache and run dir) with OpenBLAS and then on
 * a machine without it (OpenBLAS hidden with `unshare -m` and bind mounts, so auto selection falls back to wasm, as
 * on a fresh machine), and the ratio of the two wall times, stage by stage. The goal is ≤ 3×. Needs root for the
 * mount namespace; without it, says why and runs `LLINK_BACKEND=wasm` instead (the same kernels, but not the
 * auto selection). Prints measurements, never verdicts.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { hideBlasUnavailable, runWithoutBlas } from "../test/support/hideBlas.ts"

const repoRoot = path.resolve(import.meta.dirname, "..")
const llink = path.join(repoRoot, "bin/llink.mjs")
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-fallback-"))

interface Outcome {
  readonly seconds: number
  readonly stages: Record<string, number>
  readonly notice: string | undefined
}

const run = (label: string, hidden: boolean, backend?: string): Outcome => {
  const runDir = path.join(tmp, `${label}-run`)
  const argv = [process.execPath, llink, "run", "--run-dir", runDir, "--set", `cacheDir=${path.join(tmp, `${label}-cache`)}`]
  const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_BASE_URL: "" }
  delete env.LLINK_BACKEND
  if (backend !== undefined) env.LLINK_BACKEND = backend
  const t = performance.now()
  const r = hidden
    ? runWithoutBlas(argv, { cwd: repoRoot, env, timeoutMs: 3_600_000 })
    : spawnSync(argv[0], argv.slice(1), { cwd: repoRoot, env, encoding: "utf8", maxBuffer: 64 << 20 })
  const seconds = (performance.now() - t) / 1000
  if (r.status !== 0) throw new Error(`${label}: llink run exited ${r.status}\n${r.stdout}\n${r.stderr}`)
  const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")) as { stages: Record<string, { durationMs?: number }> }
  const stages = Object.fromEntries(Object.entries(manifest.stages).map(([k, v]) => [k, (v.durationMs ?? 0) / 1000]))
  return { seconds, stages, notice: r.stderr.split("\n").find((l) => l.startsWith("notice: ")) }
}

try {
  const unavailable = hideBlasUnavailable()
  console.log(`cpu: ${os.cpus()[0]?.model ?? "?"} × ${os.availableParallelism()}; load average ${os.loadavg()[0].toFixed(1)}`)
  const blas = run("blas", false)
  console.log(`with OpenBLAS: ${blas.seconds.toFixed(1)} s`)
  if (unavailable !== undefined) console.log(`cannot hide OpenBLAS here (${unavailable}): LLINK_BACKEND=wasm instead`)
  const fallback = unavailable === undefined ? run("hidden", true) : run("wasm", false, "wasm")
  console.log(`without OpenBLAS: ${fallback.seconds.toFixed(1)} s; notice: ${fallback.notice ?? "(none)"}`)
  console.log(`ratio ${(fallback.seconds / blas.seconds).toFixed(2)}× (goal ≤ 3×)`)
  console.log("stage            with   without  ratio")
  for (const [stage, s] of Object.entries(blas.stages)) {
    const w = fallback.stages[stage] ?? Number.NaN
    console.log(`${stage.padEnd(15)} ${s.toFixed(1).padStart(6)} ${w.toFixed(1).padStart(8)}  ${s > 0.5 ? (w / s).toFixed(1) + "×" : "-"}`)
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true })
}
