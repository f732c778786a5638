/**
 * The `webgpu` tensor backend: `@tensorflow/tfjs-backend-webgpu` running on Dawn's Node binding (npm `webgpu`,
 * a prebuilt `dawn.node`), which drives the machine's Vulkan driver (Metal on macOS, D3D12 on Windows). It installs
 * from npm alone: no CUDA toolkit, no cuDNN, no libtensorflow.
 *
 * - `probeWebgpu()` says whether an adapter is there and what it is (vendor, architecture, device, limits), or why
 *   not, naming what is missing: the `webgpu` package, `libvulkan.so.1` (the Vulkan loader), a driver (an ICD
 *   file), or an adapter that every driver refused (Debian 12's own Mesa 22.3 lavapipe is rejected by Dawn; the
 *   Mesa 25 one from bookworm-backports works). `software` marks lavapipe / SwiftShader / a fallback adapter: they
 *   are correct but slower than `cpu-blas`, so automatic selection never picks them.
 * - `startWebgpu()` puts Dawn's `navigator.gpu` in place (tfjs's WebGPU backend looks for it), imports the
 *   backend and makes it current.
 *
 * Gotchas: WebGPU has no synchronous read-back in Node (tfjs's `readSync` needs an OffscreenCanvas), so code that
 * may run here reads tensors with `await t.data()`, never `dataSync()`. `LLINK_WEBGPU_FLAGS` passes Dawn options
 * (comma-separated, e.g. `adapter=NVIDIA,enable-dawn-features=allow_unsafe_apis`).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { createRequire } from "node:module"
import { describeError } from "../errors/describe.ts"

export const WEBGPU_BACKEND = "webgpu"

export interface AdapterReport {
  readonly vendor: string
  readonly architecture: string
  readonly device: string
  readonly description: string
  /** lavapipe/llvmpipe, SwiftShader, or an adapter Dawn reports as a fallback: correct, slow. */
  readonly software: boolean
  readonly limits: Readonly<Record<string, number>>
  readonly features: ReadonlyArray<string>
  /** The Vulkan driver files (ICDs) found, for the report. */
  readonly drivers: ReadonlyArray<string>
}

export type WebgpuProbe =
  | { readonly ok: true; readonly adapter: AdapterReport }
  | { readonly ok: false; readonly missing: "package" | "libvulkan" | "driver" | "adapter"; readonly why: string }

/** Limits worth showing (the rest are graphics limits). */
const LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension"
] as const

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|\bcpu\b/i

/** Vulkan ICD files that the loader would consider (the env overrides first, then the standard folders). */
export const vulkanDrivers = (env: NodeJS.ProcessEnv = process.env): Array<string> => {
  const listed = (env["VK_DRIVER_FILES"] ?? env["VK_ICD_FILENAMES"] ?? "").split(path.delimiter).filter((f) => f !== "")
  if (listed.length > 0) return listed.filter((f) => fs.existsSync(f))
  const dirs = ["/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/usr/share/vulkan/icd.d", "/usr/local/nvidia/share/vulkan/icd.d"]
  return dirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith(".json")).map((f) => path.join(d, f)) : []))
}

/** Whether the Vulkan loader can be opened (Linux only; other platforms use Metal / D3D12). */
const vulkanLoaderError = (): string | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    const koffi = createRequire(import.meta.url)("koffi") as { load: (name: string) => { unload?: () => void } }
    const lib = koffi.load("libvulkan.so.1")
    lib.unload?.()
    return undefined
  } catch (cause) {
    return describeError(cause)
  }
}

/** The parts of the WebGPU API used here (typed locally: the `@webgpu/types` copies in node_modules disagree). */
interface AdapterInfoLike {
  readonly vendor: string
  readonly architecture: string
  readonly device: string
  readonly description: string
  readonly isFallbackAdapter?: boolean
}
interface AdapterLike {
  readonly info: AdapterInfoLike
  readonly limits: Readonly<Record<string, unknown>>
  readonly features: Iterable<unknown>
}
interface GpuLike {
  readonly requestAdapter: (options?: { readonly powerPreference?: "high-performance" | "low-power" }) => Promise<AdapterLike | null>
}
type Dawn = { readonly create: (flags: ReadonlyArray<string>) => GpuLike; readonly globals: Record<string, unknown> }

let dawn: Promise<Dawn> | undefined
let gpu: GpuLike | undefined

const loadDawn = (): Promise<Dawn> => {
  const spec: string = "webgpu" // a variable: the package is optional at type level and loads only here
  dawn ??= import(spec) as Promise<Dawn>
  return dawn
}

const flags = (): Array<string> => (process.env["LLINK_WEBGPU_FLAGS"] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")

/** The GPU object (created once per process) with Dawn's globals (`GPUBufferUsage`, …) installed. */
const gpuObject = async (): Promise<GpuLike> => {
  if (gpu !== undefined) return gpu
  const d = await loadDawn()
  Object.assign(globalThis, d.globals)
  gpu = d.create(flags())
  return gpu
}

const reportOf = (adapter: AdapterLike, drivers: ReadonlyArray<string>): AdapterReport => {
  const info = adapter.info
  const limits: Record<string, number> = {}
  for (const k of LIMITS) limits[k] = Number(adapter.limits[k])
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    software: info.isFallbackAdapter === true || SOFTWARE.test(text),
    limits,
    features: [...adapter.features].map(String).sort(),
    drivers
  }
}

/**
 * Whether this machine shows a GPU device node (`/dev/nvidia*`, `/dev/dri/renderD*`; always true off Linux).
 * Automatic selection probes WebGPU only then: on a machine without one the only adapters are software ones, and
 * loading Dawn just to reject them costs time and prints its driver warnings.
 */
export const gpuDeviceNodes = (): ReadonlyArray<string> => {
  if (process.platform !== "linux") return ["(not Linux: Metal / D3D12)"]
  const nvidia = fs.existsSync("/dev") ? fs.readdirSync("/dev").filter((f) => /^nvidia(\d+|ctl)$/.test(f)).map((f) => `/dev/${f}`) : []
  const dri = fs.existsSync("/dev/dri") ? fs.readdirSync("/dev/dri").filter((f) => f.startsWith("renderD")).map((f) => `/dev/dri/${f}`) : []
  return [...nvidia, ...dri]
}

let probed: Promise<WebgpuProbe> | undefined

/** Whether a WebGPU adapter is available, and what it is (see the module doc). Probes once per process. */
export const probeWebgpu = (): Promise<WebgpuProbe> => {
  probed ??= (async (): Promise<WebgpuProbe> => {
    try {
      await loadDawn()
    } catch (cause) {
      return { ok: false, missing: "package", why: `the webgpu package (Dawn) did not load: ${describeError(cause)}` }
    }
    const loader = vulkanLoaderError()
    if (loader !== undefined) {
      return {
        ok: false,
        missing: "libvulkan",
        why: `the Vulkan loader libvulkan.so.1 is not installed (${loader}); on Debian/Ubuntu: apt-get install libvulkan1`
      }
    }
    const drivers = process.platform === "linux" ? vulkanDrivers() : []
    if (process.platform === "linux" && drivers.length === 0) {
      return {
        ok: false,
        missing: "driver",
        why: "no Vulkan driver found (no ICD file in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d, and VK_DRIVER_FILES is unset): " +
          "install the GPU vendor's driver, or mesa-vulkan-drivers for software Vulkan"
      }
    }
    const adapter = await (await gpuObject()).requestAdapter({ powerPreference: "high-performance" })
    if (adapter === null) {
      return {
        ok: false,
        missing: "adapter",
        why: `Dawn found no usable adapter among the Vulkan drivers ${drivers.map((d) => path.basename(d)).join(", ")}: ` +
          "a driver too old for Dawn (Debian 12's Mesa 22.3 lavapipe lacks shaderUniform*ArrayDynamicIndexing; " +
          "install mesa-vulkan-drivers from bookworm-backports), or no GPU behind the ICD"
      }
    }
    return { ok: true, adapter: reportOf(adapter, drivers) }
  })()
  return probed
}

/** Makes the WebGPU backend current (after a successful probe); returns the adapter it runs on. */
export const startWebgpu = async (tf: typeof import("@tensorflow/tfjs")): Promise<AdapterReport> => {
  const probe = await probeWebgpu()
  if (!probe.ok) throw new Error(probe.why)
  const g = await gpuObject()
  const nav = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator
  if (nav === undefined) Object.defineProperty(globalThis, "navigator", { value: { gpu: g }, configurable: true, writable: true })
  else if (nav.gpu === undefined) Object.defineProperty(nav, "gpu", { value: g, configurable: true })
  const spec: string = "@tensorflow/tfjs-backend-webgpu"
  await import(spec)
  if (!(await tf.setBackend(WEBGPU_BACKEND))) throw new Error("the webgpu backend did not start")
  await tf.ready()
  watchDeviceErrors((tf.backend() as { readonly device?: unknown }).device)
  return probe.adapter
}

// ---------------------------------------------------------------------------------------------------------------
// Device errors. A WebGPU validation error (a pipeline binding more buffers than the adapter allows, an
// out-of-memory allocation) is not an exception: the command is dropped and the results are garbage. They are
// collected here, and the read helpers (`src/backend/read.ts`) fail on the next read-back.

const deviceErrors: Array<string> = []

interface ErrorEventLike {
  readonly error?: { readonly message?: string; readonly constructor?: { readonly name?: string } }
}

const watchDeviceErrors = (device: unknown): void => {
  if (typeof device !== "object" || device === null) return
  const record = (event: ErrorEventLike) => {
    const kind = event.error?.constructor?.name ?? "GPUError"
    deviceErrors.push(`${kind}: ${event.error?.message ?? "unknown error"}`)
  }
  const target = device as { addEventListener?: (type: string, f: (e: ErrorEventLike) => void) => void; onuncapturederror?: unknown }
  if (typeof target.addEventListener === "function") target.addEventListener("uncapturederror", record)
  else target.onuncapturederror = record
}

/** Device errors since the last call (and forgets them). */
export const takeDeviceErrors = (): Array<string> => deviceErrors.splice(0, deviceErrors.length)

/** One line for humans: `NVIDIA Hopper (NVIDIA H200), Vulkan` / `mesa software (llvmpipe…) — software`. */
export const describeAdapter = (a: AdapterReport): string =>
  `${a.vendor} ${a.architecture} (${a.description || a.device})${a.software ? " — software rendering" : ""}`
