/**
 * `llink doctor [--model DIR] [--config FILE]`: which tensor backend this machine gets and why, the WebGPU adapter (vendor,
 * architecture, device, limits) or why there is none, the OpenBLAS library behind `cpu-blas` (path, threads, build
 * config, kernel family), the Node version, a 256³ sgemm checked against a plain JS loop, and with `--model` the
 * memory plan of a snapshot (weights, training state, activations per micro-batch), and with `--config` the
 * pre-flight `llink run` does (src/pipeline/preflight.ts): exit code 1 when it finds a problem.
 *
 * tfjs and the backend modules are imported inside the handler, so the CLI's other commands do not load them.
 * Exit code 1 when the selected (or forced) backend cannot start or the sgemm check disagrees.
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as os from "node:os"
import { loadConfig } from "../nodes/config.ts"
import { ArtifactStore } from "../pipeline/cache.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { formatPreflight, runPreflight } from "../pipeline/preflight.ts"
import { reportCommandError, runDirFlag, setFlag } from "./kit.ts"
import { describeError } from "../errors/describe.ts"

/** A 256³ sgemm through OpenBLAS against a float64 JS triple loop: max |difference| and time. */
export const sgemmCheck = async (n = 256): Promise<{ maxAbsDiff: number; ok: boolean; blasMs: number; gflops: number }> => {
  const { loadBlas } = await import("../backend/blas.ts")
  const blas = loadBlas()
  let seed = 12345
  const next = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    return seed / 4294967296 - 0.5
  }
  const a = Float32Array.from({ length: n * n }, next)
  const b = Float32Array.from({ length: n * n }, next)
  const c = new Float32Array(n * n)
  let blasMs = Infinity // best of 5 (the first calls start OpenBLAS's threads)
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now()
    blas.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
    blasMs = Math.min(blasMs, performance.now() - t0)
  }
  let maxAbsDiff = 0
  const row = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    row.fill(0)
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]
      for (let j = 0; j < n; j++) row[j] += aik * b[k * n + j]
    }
    for (let j = 0; j < n; j++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(row[j] - c[i * n + j]))
  }
  // Entries are sums of 256 products of U(−½,½) values (|c| ≲ 2); float32 accumulation error stays far below 1e-3.
  return { maxAbsDiff, ok: maxAbsDiff < 1e-3, blasMs, gflops: (2 * n * n * n) / (blasMs * 1e6) }
}

/** The doctor's report as lines; `ok` is false when the backend failed to start or the sgemm check failed. */
export const doctorReport = async (): Promise<{ lines: Array<string>; ok: boolean; error?: unknown }> => {
  const lines: Array<string> = []
  const row = (k: string, v: string): void => {
    lines.push(`${k.padEnd(14)}${v}`)
  }
  row("node", `${process.version} (${process.platform} ${process.arch}), ${os.availableParallelism()} CPUs available`)
  row("LLINK_BACKEND", process.env.LLINK_BACKEND === undefined ? "(unset: auto)" : process.env.LLINK_BACKEND)
  const { tryLoadBlas, BlasUnavailableError } = await import("../backend/blas.ts")
  const blas = tryLoadBlas()
  if (blas instanceof BlasUnavailableError) {
    row("openblas", `not available: ${blas.message}`)
    for (const t of blas.tried) row("", `tried ${t}`)
  } else {
    row("openblas", blas.path)
    row("  config", blas.config)
    row("  kernels", blas.coreName + (blas.coreTypeSet !== undefined ? ` (OPENBLAS_CORETYPE=${blas.coreTypeSet} set by llink from the CPU flags)` : ""))
    row("  threads", `${blas.threads()}${process.env.LLINK_BLAS_THREADS !== undefined ? " (LLINK_BLAS_THREADS)" : " (os.availableParallelism)"}`)
  }
  const webgpu = await import("../backend/webgpu.ts")
  const probe = await webgpu.probeWebgpu()
  if (probe.ok) {
    const a = probe.adapter
    row("webgpu", webgpu.describeAdapter(a))
    row("  vendor", `${a.vendor}, architecture ${a.architecture}, device ${a.device || "(unnamed)"}`)
    row("  limits", Object.entries(a.limits).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", "))
    if (a.drivers.length > 0) row("  drivers", a.drivers.join(", "))
    const nodes = webgpu.gpuDeviceNodes()
    row(
      "  auto",
      a.software
        ? "not chosen automatically: a software adapter is slower than the CPU backends (LLINK_BACKEND=webgpu forces it)"
        : nodes.length === 0
        ? "not probed automatically: no GPU device node (/dev/nvidia*, /dev/dri/renderD*)"
        : "chosen automatically unless tfjs-node(-gpu) is installed"
    )
  } else {
    row("webgpu", `not available (${probe.missing}): ${probe.why}`)
  }
  let ok = true
  let error: unknown
  const { initBackend } = await import("../backend/select.ts")
  try {
    const info = await initBackend()
    row("backend", info.description)
    row("why", info.reason)
    if (info.notice !== undefined) row("notice", info.notice)
  } catch (cause) {
    ok = false
    error = cause
    row("backend", `FAILED: ${describeError(cause)}`)
  }
  if (!(blas instanceof BlasUnavailableError)) {
    const check = await sgemmCheck()
    row(
      "sgemm 256³",
      `${check.ok ? "ok" : "MISMATCH"}: max |diff| vs JS loop ${check.maxAbsDiff.toExponential(2)}, ` +
        `${check.blasMs.toFixed(2)} ms (${check.gflops.toFixed(1)} GFLOP/s)`
    )
    ok = ok && check.ok
  }
  return error === undefined ? { lines, ok } : { lines, ok, error }
}

/** The memory plan of the model in `dir` (see src/models/memoryPlan.ts), as lines. */
export const memoryPlanLines = (dir: string) =>
  Effect.gen(function*() {
    const { loadModelConfig } = yield* Effect.promise(() => import("../models/hfconfig.ts"))
    const plans = yield* Effect.promise(() => import("../models/memoryPlan.ts"))
    const mc = yield* loadModelConfig(dir)
    const plan = mc.kind === "llama"
      ? plans.decoderPlan(mc.config, {
        batch: 8,
        seqLen: 768,
        loraRank: 16,
        loraTargets: ["q", "k", "v", "o", "gate", "up", "down"],
        slots: 8,
        encoderDim: 768
      })
      : plans.encoderPlan(mc.config, 32, 256)
    const title = mc.kind === "llama"
      ? "memory plan, Stage B at the paper's shapes (micro-batch 8 × 768 tokens, LoRA r16, K = 8):"
      : "memory plan, encoding at batch 32 × 256 tokens:"
    return [
      `${title} ${dir}`,
      ...plan.lines.map((l) => `  ${plans.formatBytes(l.bytes).padStart(10)}  ${l.what}`),
      `  ${plans.formatBytes(plan.totalBytes).padStart(10)}  total`,
      `  largest single tensor: ${plan.largestTensor.what}, ${plans.formatBytes(plan.largestTensor.bytes)} ` +
      "(a WebGPU adapter must allow a storage binding this large: maxStorageBufferBindingSize above)"
    ]
  })

/** The `doctor` subcommand; `--config` runs the pre-flight of `llink run` over `stages` (nothing runs). */
export const makeDoctorCommand = <R>(stages: ReadonlyArray<AnyStage<R>>) =>
  Command.make("doctor", {
    model: Flag.String("model").pipe(Flag.withDescription("also print the memory plan of this Hugging Face snapshot folder"), Flag.optional),
    config: Flag.String("config").pipe(
      Flag.withDescription("also check what a run of this config needs: corpus, snapshot folders, endpoints, cache folder"),
      Flag.optional
    ),
    set: setFlag,
    runDir: runDirFlag
  }, ({ model, config, set, runDir }) =>
    Effect.gen(function*() {
      const report = yield* Effect.promise(() => doctorReport())
      yield* Console.log(report.lines.join("\n"))
      if (Option.isSome(model)) yield* Console.log((yield* memoryPlanLines(model.value)).join("\n"))
      let preflightOk = true
      if (Option.isSome(config)) {
        const loaded = yield* loadConfig({ file: config.value, sets: set })
        const checked = yield* runPreflight(stages, { config: loaded, runDir, cacheDir: loaded.value.cacheDir }).pipe(
          Effect.provide(ArtifactStore.layer(loaded.value.cacheDir))
        )
        yield* Console.log(formatPreflight(checked))
        preflightOk = checked.problems.length === 0
      }
      if (report.error !== undefined) return yield* Effect.fail(report.error)
      if (!report.ok) return yield* Effect.fail(new Error("sgemm check failed: OpenBLAS disagrees with the JS reference"))
      if (!preflightOk) process.exitCode = 1
    }).pipe(reportCommandError)
  ).pipe(Command.withDescription("Show the tensor backend, OpenBLAS details, and check sgemm; with --config, a run's pre-flight"))
