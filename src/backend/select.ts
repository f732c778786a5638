/**
 * Which tensorflow.js backend this process computes on, chosen once.
 *
 * Preference (auto):
 * 1. `@tensorflow/tfjs-node-gpu` (only when installed and an NVIDIA device is present; needs CUDA 11.2 + cuDNN 8.1);
 * 2. `@tensorflow/tfjs-node` (when installed);
 * 3. `webgpu` (Dawn + `@tensorflow/tfjs-backend-webgpu`, `./webgpu.ts`) on a HARDWARE adapter only — lavapipe and
 *    SwiftShader are correct but slower than the CPU backends, so only `LLINK_BACKEND=webgpu` uses them;
 * 4. `cpu-blas` (stock CPU kernels + OpenBLAS or Accelerate, when one loads);
 * 5. `wasm` (`@tensorflow/tfjs-backend-wasm`, XNNPACK on every core, `./wasmThreads.ts`; its sgemm ~6× slower than
 *    OpenBLAS on 2 cores here, ~60× faster than stock);
 * 6. the stock `cpu`, the last resort.
 * The slower fallbacks (wasm, cpu) carry a one-line `notice` with the measured speed and the install command that
 * fixes it. `LLINK_BACKEND` = `node-gpu` | `node` | `webgpu` | `blas` | `wasm` | `cpu` (or `auto`) forces one; a
 * forced backend that cannot run is a `BackendUnavailableError`, never a silent fallback.
 *
 * tfjs's own console output (the "running TensorFlow.js in Node.js" banner) is switched off (`PROD`).
 *
 * `initBackend` selects and starts a backend (benches and tests call it directly); the Effect service over it, which
 * the stages use, is `TensorBackend` in `./tensorBackend.ts` (lazy: it imports this module on first use).
 */
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import { blasInstallHint, tryLoadBlas } from "./blas.ts"
import { BackendUnavailableError, BlasUnavailableError } from "./errors.ts"
import { registerBlasBackend } from "./cpuBlas/register.ts"
import { BLAS_BACKEND } from "./cpuBlas/shared.ts"
import { type AdapterReport, describeAdapter, gpuDeviceNodes, probeWebgpu, startWebgpu, WEBGPU_BACKEND } from "./webgpu.ts"
import { describeError } from "../errors/describe.ts"

export { BackendUnavailableError } from "./errors.ts"

/** In automatic order: the first that starts wins (webgpu only on a hardware adapter). */
export const BACKEND_CHOICES = ["node-gpu", "node", "webgpu", "blas", "wasm", "cpu"] as const
export type BackendChoice = (typeof BACKEND_CHOICES)[number]

export interface BlasDetails {
  readonly path: string
  readonly threads: number
  readonly config: string
  readonly coreName: string
  /** Set when llink chose `OPENBLAS_CORETYPE` from the CPU flags. */
  readonly coreTypeSet: string | undefined
}

export interface BackendInfo {
  /** What runs: `node-gpu`, `node`, `webgpu`, `blas`, `wasm` or `cpu`. */
  readonly choice: BackendChoice
  /** The tensorflow.js backend name (`tensorflow`, `webgpu`, `cpu-blas`, `wasm`, `cpu`). */
  readonly tfBackend: string
  /** One line for humans, e.g. `cpu-blas: OpenBLAS /usr/lib/.../libopenblas.so.0, 16 threads (SkylakeX)`. */
  readonly description: string
  /** Why this one: forced by LLINK_BACKEND, or what auto selection found for each better candidate. */
  readonly reason: string
  readonly blas: BlasDetails | undefined
  /** The WebGPU adapter, on `webgpu`. */
  readonly adapter?: AdapterReport
  /**
   * One line to show once when this backend is markedly slower than what this machine could have (wasm or stock
   * cpu instead of OpenBLAS): which backend, how much slower, and the command that fixes it. Undefined otherwise.
   */
  readonly notice?: string
}

export interface TensorBackendShape extends BackendInfo {
  /** The tensorflow.js namespace, already switched to this backend. */
  readonly tf: typeof tf
}

const NODE_PACKAGES = { "node-gpu": "@tensorflow/tfjs-node-gpu", node: "@tensorflow/tfjs-node" } as const

/** Where a package resolves from, or why it does not. */
const resolvePackage = (pkg: string): { readonly ok: true; readonly path: string } | { readonly ok: false; readonly why: string } => {
  try {
    return { ok: true, path: createRequire(import.meta.url).resolve(pkg) }
  } catch (cause) {
    return { ok: false, why: `${pkg} is not installed (${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)})` }
  }
}

/** An NVIDIA device node or driver entry exists. */
export const gpuPresent = (): boolean =>
  fs.existsSync("/dev/nvidiactl") ||
  (fs.existsSync("/proc/driver/nvidia/gpus") && fs.readdirSync("/proc/driver/nvidia/gpus").length > 0)

type Attempt = { readonly ok: true; readonly info: BackendInfo } | { readonly ok: false; readonly why: string }

const tryNode = async (choice: "node-gpu" | "node", reason: string): Promise<Attempt> => {
  const pkg = NODE_PACKAGES[choice]
  const where = resolvePackage(pkg)
  if (!where.ok) return where
  if (choice === "node-gpu" && !gpuPresent()) return { ok: false, why: `${pkg} is installed but no NVIDIA GPU is present` }
  try {
    const spec: string = pkg
    await import(spec)
  } catch (cause) {
    return { ok: false, why: `${pkg} failed to load: ${describeError(cause)}` }
  }
  if (!(await tf.setBackend("tensorflow"))) return { ok: false, why: `${pkg} loaded but its 'tensorflow' backend did not start` }
  await tf.ready()
  return {
    ok: true,
    info: { choice, tfBackend: "tensorflow", description: `tensorflow (${pkg}, ${where.path})`, reason, blas: undefined }
  }
}

const tryBlas = async (reason: string): Promise<Attempt> => {
  const loaded = tryLoadBlas()
  if (loaded instanceof BlasUnavailableError) {
    return { ok: false, why: `${loaded.message}; tried: ${loaded.tried.join("; ")}` }
  }
  const blas = registerBlasBackend()
  if (!(await tf.setBackend(BLAS_BACKEND))) return { ok: false, why: `the ${BLAS_BACKEND} backend did not start` }
  await tf.ready()
  const details: BlasDetails = {
    path: blas.path,
    threads: blas.threads(),
    config: blas.config,
    coreName: blas.coreName,
    coreTypeSet: blas.coreTypeSet
  }
  return {
    ok: true,
    info: {
      choice: "blas",
      tfBackend: BLAS_BACKEND,
      description: `${BLAS_BACKEND}: OpenBLAS ${details.path}, ${details.threads} threads, ${details.coreName} kernels`,
      reason,
      blas: details
    }
  }
}

/** OpenBLAS sgemm on 2 cores of the project's machines (bench/backend.ts), for the slower backends' notice. */
const OPENBLAS_GFLOPS_2_CORES = 190

/**
 * GFLOP/s of an n³ matrix product on the current backend, for the notice: the best of three timed products after a
 * warm-up (one product on a 2-thread pool is a few ms, and a single timing was off by 2–4× under load), or the
 * warm-up alone where one product already takes over 200 ms (stock cpu).
 */
const measureGflops = async (n = 512): Promise<number> => {
  const a = tf.randomUniform([n, n])
  const timeOne = async (): Promise<number> => {
    const t0 = performance.now()
    const c = tf.matMul(a, a)
    await c.data()
    const ms = performance.now() - t0
    c.dispose()
    return ms
  }
  try {
    let best = await timeOne()
    if (best < 200) for (let i = 0; i < 3; i++) best = Math.min(best, await timeOne())
    return (2 * n ** 3) / (best * 1e6)
  } finally {
    a.dispose()
  }
}

const slowNotice = async (name: string, explicit: boolean): Promise<string | undefined> => {
  if (explicit) return undefined
  const gflops = await measureGflops()
  const ratio = OPENBLAS_GFLOPS_2_CORES / Math.max(gflops, 1e-3)
  return `backend ${name}: ${gflops.toFixed(1)} GFLOP/s here, about ${ratio.toFixed(0)}× slower than cpu-blas with OpenBLAS ` +
    `(~${OPENBLAS_GFLOPS_2_CORES} GFLOP/s on 2 cores); fix: ${blasInstallHint()}`
}

const tryWebgpu = async (reason: string, explicit: boolean): Promise<Attempt> => {
  if (!explicit && gpuDeviceNodes().length === 0) {
    return { ok: false, why: "no GPU device node (/dev/nvidia*, /dev/dri/renderD*): only software adapters could exist" }
  }
  const probe = await probeWebgpu()
  if (!probe.ok) return { ok: false, why: probe.why }
  if (probe.adapter.software && !explicit) {
    return { ok: false, why: `only a software adapter (${describeAdapter(probe.adapter)}), slower than the CPU backends` }
  }
  const adapter = await startWebgpu(tf)
  return {
    ok: true,
    info: { choice: "webgpu", tfBackend: WEBGPU_BACKEND, description: `webgpu: ${describeAdapter(adapter)}`, reason, blas: undefined, adapter }
  }
}

const tryWasm = async (reason: string, explicit: boolean): Promise<Attempt> => {
  let wasm: typeof import("@tensorflow/tfjs-backend-wasm")
  try {
    const spec: string = "@tensorflow/tfjs-backend-wasm"
    wasm = (await import(spec)) as typeof import("@tensorflow/tfjs-backend-wasm")
  } catch (cause) {
    return { ok: false, why: `@tensorflow/tfjs-backend-wasm failed to load: ${describeError(cause)}` }
  }
  const { startWasmBackend, wantedWasmThreads } = await import("./wasmThreads.ts")
  const wanted = wantedWasmThreads()
  // the threaded build is llink's own way in (see wasmThreads.ts): when it fails, run on one thread and say why
  let threadsFailed = ""
  let started = await startWasmBackend(tf, wasm, wanted).catch((cause: unknown) => {
    threadsFailed = describeError(cause)
    return { started: false, threads: 0 }
  })
  if (!started.started && wanted > 1) {
    if (threadsFailed === "") threadsFailed = "tf.setBackend('wasm') returned false"
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false)
    started = await startWasmBackend(tf, wasm, 1)
  }
  if (!started.started) return { ok: false, why: "the wasm backend did not start" }
  await tf.ready()
  const { registerWasmKernels } = await import("./wasmKernels.ts")
  registerWasmKernels()
  const threads = `${started.threads} thread${started.threads === 1 ? "" : "s"}${
    threadsFailed === "" ? "" : ` (the multi-threaded build did not start: ${threadsFailed})`
  }`
  const notice = await slowNotice(`wasm (XNNPACK, ${threads})`, explicit)
  return {
    ok: true,
    info: {
      choice: "wasm",
      tfBackend: "wasm",
      description: `wasm (@tensorflow/tfjs-backend-wasm, XNNPACK, ${threads})`,
      reason,
      blas: undefined,
      ...(notice === undefined ? {} : { notice })
    }
  }
}

const tryCpu = async (reason: string, explicit: boolean): Promise<Attempt> => {
  if (!(await tf.setBackend("cpu"))) return { ok: false, why: "the stock cpu backend did not start" }
  await tf.ready()
  const slow = await slowNotice("cpu (stock tensorflow.js kernels, the LAST RESORT)", explicit)
  const notice = slow === undefined ? undefined : `${slow}; the wasm backend (@tensorflow/tfjs-backend-wasm) did not start either`
  return {
    ok: true,
    info: { choice: "cpu", tfBackend: "cpu", description: "cpu (stock tensorflow.js kernels)", reason, blas: undefined, ...(notice === undefined ? {} : { notice }) }
  }
}

const attempt = (choice: BackendChoice, reason: string, explicit: boolean): Promise<Attempt> => {
  switch (choice) {
    case "node-gpu":
    case "node":
      return tryNode(choice, reason)
    case "webgpu":
      return tryWebgpu(reason, explicit)
    case "blas":
      return tryBlas(reason)
    case "wasm":
      return tryWasm(reason, explicit)
    case "cpu":
      return tryCpu(reason, explicit)
  }
}

/** Parse a backend request (`LLINK_BACKEND` syntax); undefined/empty/`auto` means automatic. */
export const parseBackendChoice = (raw: string | undefined): BackendChoice | "auto" => {
  const s = (raw ?? "").trim().toLowerCase()
  if (s === "" || s === "auto") return "auto"
  const found = BACKEND_CHOICES.find((c) => c === s)
  if (found === undefined) {
    throw new BackendUnavailableError({
      requested: raw ?? "",
      message: `unknown backend '${raw}': expected one of ${BACKEND_CHOICES.join(", ")} or auto`
    })
  }
  return found
}

/**
 * Select and start the backend: `choice`, else `LLINK_BACKEND`, else automatic. Rejects with
 * `BackendUnavailableError` when a forced choice cannot run (or is not a backend name).
 */
export const initBackend = async (choice?: BackendChoice | "auto"): Promise<BackendInfo> => {
  // tfjs's own console messages (the "running TensorFlow.js in Node.js" banner, read-back warnings) are not for
  // llink's users: what runs, and why, is in BackendInfo.
  tf.env().set("PROD", true)
  const fromEnv = choice === undefined
  const want = choice ?? parseBackendChoice(process.env.LLINK_BACKEND)
  if (want !== "auto") {
    const how = fromEnv ? `forced by LLINK_BACKEND=${process.env.LLINK_BACKEND}` : `requested (${want})`
    const r = await attempt(want, how, true)
    if (!r.ok) {
      throw new BackendUnavailableError({ requested: want, message: `backend '${want}' ${how} is not available: ${r.why}` })
    }
    return r.info
  }
  const skipped: Array<string> = []
  for (const c of BACKEND_CHOICES) {
    const r = await attempt(c, skipped.length === 0 ? "auto: first choice" : `auto: ${skipped.join("; ")}`, false)
    if (r.ok) return r.info
    skipped.push(`${c}: ${r.why}`)
  }
  throw new BackendUnavailableError({ requested: "auto", message: `no backend could start: ${skipped.join("; ")}` })
}

/** The tensorflow.js namespace (re-exported so the lazy `TensorBackend` layer gets it with the selection code). */
export { tf }
