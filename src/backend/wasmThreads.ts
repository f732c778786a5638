/**
 * Multi-threaded `@tensorflow/tfjs-backend-wasm` in Node (its threaded SIMD build: XNNPACK over a pthreadpool of
 * worker threads). tfjs 4.22 ships the build but switches it off in Node (`WASM_HAS_MULTITHREAD_SUPPORT` is false
 * there, tensorflow/tfjs#3830) for three reasons, each undone here while the backend starts and put back after:
 * 1. the pthread worker script is handed to `new Worker` as a `blob:` URL, which Node's `worker_threads` refuse: the
 *    worker's text (which already speaks `worker_threads`) goes to a file in a temporary folder instead, told to
 *    load the package's own `wasm-out/tfjs-backend-wasm-threaded-simd.js` (the bundled copy that the main thread
 *    runs refers to its bundle's `require$$N` names, which a worker does not have);
 * 2. the C side caps its threads at `os.cpus().length / 2` (it assumes two hyper-threads per core), i.e. 1 on a
 *    2-core machine: `os.cpus()` is made to report each core twice while the module starts;
 * 3. Emscripten keeps a running pthread's worker referenced, so the process would never exit: the pool's workers
 *    are unreferenced (they only wait for work).
 * A GEMM's threads split its output tiles, each element summed in one order, so results do not depend on the
 * thread count (test/backend/wasmThreads.test.ts checks it bit for bit). Measured here (2 cores, 512³ matmul):
 * ~20–25 GFLOP/s on one thread, ~35–47 on two.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"

const require = createRequire(import.meta.url)

/** What the worker script's text must contain for the rewrite below (it fails loudly on another tfjs version). */
const URL_TEST = `typeof e.data.urlOrBlob=="string"`
const IMPORT_CALL = `importScripts(e.data.urlOrBlob)`

/** The threads the wasm backend asks for: `LLINK_WASM_THREADS`, else the cores this process may use (at most 8, tfjs's pool). */
export const wantedWasmThreads = (raw = process.env["LLINK_WASM_THREADS"]): number => {
  if (raw !== undefined && raw.trim() !== "") {
    const n = Number(raw)
    if (!Number.isInteger(n) || n < 1) throw new Error(`LLINK_WASM_THREADS must be a whole number ≥ 1, got '${raw}'`)
    return Math.min(n, 8)
  }
  return Math.max(1, Math.min(os.availableParallelism(), 8))
}

interface WasmModuleLike {
  readonly PThread?: {
    readonly unusedWorkers: ReadonlyArray<WorkerLike>
    readonly runningWorkers: ReadonlyArray<WorkerLike>
  }
}
interface WorkerLike {
  ref: () => void
  unref: () => void
}

/**
 * Starts the wasm backend on `threads` threads (`start` is `tf.setBackend("wasm")`); with 1 it is the plain SIMD
 * build. Returns whether it started and the threads it runs on.
 */
export const startWasmBackend = async (
  tf: typeof import("@tensorflow/tfjs"),
  wasm: typeof import("@tensorflow/tfjs-backend-wasm"),
  threads: number
): Promise<{ readonly started: boolean; readonly threads: number }> => {
  if (threads <= 1) {
    const started = await tf.setBackend("wasm")
    return { started, threads: started ? wasm.getThreadsCount() : 0 }
  }
  const pkg = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"))
  const factory = path.join(pkg, "wasm-out", "tfjs-backend-wasm-threaded-simd.js")
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-wasm-threads-"))
  const workerFile = path.join(dir, "worker.js")

  const OriginalBlob = globalThis.Blob
  const originalCreate = URL.createObjectURL
  const osModule = require("node:os") as { cpus: typeof os.cpus }
  const originalCpus = osModule.cpus
  let workerError: string | undefined
  class TextBlob extends OriginalBlob {
    readonly llinkText: string | undefined
    constructor(...args: ConstructorParameters<typeof Blob>) {
      super(...args)
      const parts = args[0]
      this.llinkText = parts !== undefined && Array.from(parts).every((p) => typeof p === "string") ? Array.from(parts).join("") : undefined
    }
  }
  globalThis.Blob = TextBlob
  URL.createObjectURL = (blob: Blob): string => {
    const text = blob instanceof TextBlob ? blob.llinkText : undefined
    if (text === undefined || !text.includes(IMPORT_CALL)) return originalCreate(blob)
    if (!text.includes(URL_TEST)) {
      workerError = "the wasm worker script is not the one llink knows (another @tensorflow/tfjs-backend-wasm version?)"
      return originalCreate(blob)
    }
    fs.writeFileSync(workerFile, text.replace(URL_TEST, "true").replace(IMPORT_CALL, `importScripts(${JSON.stringify(factory)})`))
    return workerFile
  }
  osModule.cpus = () => {
    const cores = originalCpus()
    return Array.from({ length: 2 * threads }, (_, i) => cores[i % Math.max(1, cores.length)])
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true)
  wasm.setThreadsCount(threads)
  try {
    const started = await tf.setBackend("wasm")
    if (!started) return { started, threads: 0 }
    if (workerError !== undefined) throw new Error(workerError)
    const backend = tf.backend() as unknown as { readonly wasm?: WasmModuleLike }
    const pool = backend.wasm?.PThread
    for (const w of [...(pool?.unusedWorkers ?? []), ...(pool?.runningWorkers ?? [])]) {
      w.unref()
      w.ref = () => {}
    }
    return { started, threads: wasm.getThreadsCount() }
  } finally {
    globalThis.Blob = OriginalBlob
    URL.createObjectURL = originalCreate
    osModule.cpus = originalCpus
    // the workers have read their script by now (they are created, and load it, while the module starts)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
