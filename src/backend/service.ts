/**
 * Which tensorflow.js backend this process computes on, chosen once.
 *
 * Preference (auto): `@tensorflow/tfjs-node-gpu` (only when installed and an NVIDIA device is present), then
 * `@tensorflow/tfjs-node` (when installed), then `cpu-blas` (stock CPU kernels + OpenBLAS, when OpenBLAS
 * loads), then the stock `cpu`. `LLINK_BACKEND` = `node-gpu` | `node` | `blas` | `cpu` (or `auto`) forces one;
 * a forced backend that cannot run is a `BackendUnavailableError`, never a silent fallback.
 *
 * `initBackend` selects and starts a backend (benches and tests call it directly); the Effect service over it, which
 * the stages use, is `TensorBackend` in `./tensorBackend.ts` (lazy: it imports this module on first use).
 */
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import { tryLoadBlas } from "./blas.ts"
import { BackendUnavailableError, BlasUnavailableError } from "./errors.ts"
import { BLAS_BACKEND, registerBlasBackend } from "./kernels.ts"

export { BackendUnavailableError } from "./errors.ts"

export const BACKEND_CHOICES = ["node-gpu", "node", "blas", "cpu"] as const
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
  /** What runs: `node-gpu`, `node`, `blas` or `cpu`. */
  readonly choice: BackendChoice
  /** The tensorflow.js backend name (`tensorflow`, `cpu-blas`, `cpu`). */
  readonly tfBackend: string
  /** One line for humans, e.g. `cpu-blas: OpenBLAS /usr/lib/.../libopenblas.so.0, 16 threads (SkylakeX)`. */
  readonly description: string
  /** Why this one: forced by LLINK_BACKEND, or what auto selection found for each better candidate. */
  readonly reason: string
  readonly blas: BlasDetails | undefined
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
    return { ok: false, why: `${pkg} failed to load: ${cause instanceof Error ? cause.message : String(cause)}` }
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

const tryCpu = async (reason: string): Promise<Attempt> => {
  if (!(await tf.setBackend("cpu"))) return { ok: false, why: "the stock cpu backend did not start" }
  await tf.ready()
  return { ok: true, info: { choice: "cpu", tfBackend: "cpu", description: "cpu (stock tensorflow.js kernels)", reason, blas: undefined } }
}

const attempt = (choice: BackendChoice, reason: string): Promise<Attempt> =>
  choice === "node-gpu" || choice === "node" ? tryNode(choice, reason) : choice === "blas" ? tryBlas(reason) : tryCpu(reason)

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
  const fromEnv = choice === undefined
  const want = choice ?? parseBackendChoice(process.env.LLINK_BACKEND)
  if (want !== "auto") {
    const how = fromEnv ? `forced by LLINK_BACKEND=${process.env.LLINK_BACKEND}` : `requested (${want})`
    const r = await attempt(want, how)
    if (!r.ok) {
      throw new BackendUnavailableError({ requested: want, message: `backend '${want}' ${how} is not available: ${r.why}` })
    }
    return r.info
  }
  const skipped: Array<string> = []
  for (const c of BACKEND_CHOICES) {
    const r = await attempt(c, skipped.length === 0 ? "auto: first choice" : `auto: ${skipped.join("; ")}`)
    if (r.ok) return r.info
    skipped.push(`${c}: ${r.why}`)
  }
  throw new BackendUnavailableError({ requested: "auto", message: `no backend could start: ${skipped.join("; ")}` })
}

/** The tensorflow.js namespace (re-exported so the lazy `TensorBackend` layer gets it with the selection code). */
export { tf }
