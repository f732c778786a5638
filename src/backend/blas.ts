/**
 * OpenBLAS through koffi: single-precision GEMM and the library's thread controls.
 *
 * Load order: `LLINK_OPENBLAS` when set (only that path: a wrong path is an error, not a fallback), else
 * `libopenblas.so.0` (the dynamic loader's search), then the Debian paths.
 *
 * Gotchas:
 * - OpenBLAS 0.3.21 (Debian bookworm) does not know recent Xeons and falls back to its `Prescott` (SSE3) kernels,
 *   about 6× slower than its AVX-512 ones on this hardware. Unless `OPENBLAS_CORETYPE` is already set, this
 *   module sets it from the CPU flags (`SkylakeX` with AVX-512, `Haswell` with AVX2+FMA) before the library
 *   loads. Set `OPENBLAS_CORETYPE` yourself to override (it must be in the environment before the first load).
 * - Float32Arrays are passed to C as raw pointers (koffi passes typed arrays without copying); pass
 *   `array.subarray(offset)` for an offset view.
 * - Threads: `os.availableParallelism()` unless `LLINK_BLAS_THREADS` says otherwise, but only for products of at
 *   least `PARALLEL_MIN_MACS` multiply-adds; smaller ones run on the calling thread alone. In isolation two threads
 *   win even on small products, but inside a training step they lose: between products the JS thread does the
 *   element-wise work and V8's collector runs on the other core, and OpenBLAS's second thread competes with both
 *   (busy-waiting up to ~0.1 s after each product). Measured on the miniature's fine-tune (150 steps, 2 cores): 129 s
 *   with two threads everywhere, 89 s with one (system CPU time 51 s → 3 s); see `bench/results/`.
 */
import koffi from "koffi"
import * as fs from "node:fs"
import * as os from "node:os"
import { BlasUnavailableError } from "./errors.ts"
import { describeError } from "../errors/describe.ts"

export { BlasUnavailableError } from "./errors.ts"

/** CBLAS enum values (row-major only is used here). */
const CblasRowMajor = 101
const CblasNoTrans = 111
const CblasTrans = 112

/** macOS: Apple's Accelerate framework exports the same `cblas_sgemm` (no OpenBLAS thread controls). */
export const ACCELERATE = "/System/Library/Frameworks/Accelerate.framework/Accelerate"

/** The Debian (libopenblas0-pthread) locations, tried after the loader's own search; on macOS, Homebrew's OpenBLAS
 *  and then Accelerate. */
export const OPENBLAS_CANDIDATES: ReadonlyArray<string> = process.platform === "darwin"
  ? ["/opt/homebrew/opt/openblas/lib/libopenblas.dylib", "/usr/local/opt/openblas/lib/libopenblas.dylib", ACCELERATE]
  : [
    "libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"
  ]

/** The command that installs a BLAS library on this platform (for messages). */
export const blasInstallHint = (): string =>
  process.platform === "darwin"
    ? "Accelerate ships with macOS (or: brew install openblas)"
    : process.platform === "win32"
    ? "install OpenBLAS (e.g. the OpenBLAS release zip or `conda install -c conda-forge openblas`) and set LLINK_OPENBLAS to libopenblas.dll"
    : "sudo apt-get install libopenblas0-pthread (Debian/Ubuntu), dnf install openblas (Fedora)"

/**
 * Products of fewer multiply-adds (m·n·k) than this run on one thread (see the module doc). 2^28 ≈ 268M is ~3 ms on
 * one core: above the miniature's training products (e.g. 1,600 tokens × 900 shortlist rows × 128 = 184M) and far
 * below the paper's (a Llama-3.2-1B MLP projection on 2,048 tokens is 2,048 × 8,192 × 2,048 ≈ 34G).
 */
export const PARALLEL_MIN_MACS = 2 ** 28

export interface Blas {
  /** The path (or soname) that loaded. */
  readonly path: string
  /** `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64`. */
  readonly config: string
  /** `openblas_get_corename()`: the kernel family in use (`SkylakeX`, `Haswell`, `Prescott`, ...). */
  readonly coreName: string
  /** The `OPENBLAS_CORETYPE` this module set from the CPU flags, or undefined when it left the choice alone. */
  readonly coreTypeSet: string | undefined
  /** Threads for the large products (`LLINK_BLAS_THREADS`, else the machine's cores; see `PARALLEL_MIN_MACS`). */
  readonly threads: () => number
  /**
   * Row-major C = alpha·op(A)·op(B) + beta·C with op(A): m×k, op(B): k×n, C: m×n.
   * `lda`/`ldb`/`ldc` are the row strides of A, B, C as stored (A stored k×m when transA).
   */
  readonly sgemm: (
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number
  ) => void
}

type RawSgemm = (
  order: number,
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number
) => void

/** Why the core type was left to OpenBLAS, when that was not by choice (shown in the load error). */
let lastCoreTypeNote: string | undefined

/** The OpenBLAS core type to force for this CPU, from /proc/cpuinfo flags; undefined when unknown. */
export const coreTypeForCpu = (): string | undefined => {
  if (process.platform !== "linux" || process.arch !== "x64") return undefined
  let text: string
  try {
    text = fs.readFileSync("/proc/cpuinfo", "utf8")
  } catch (cause) {
    // No cpuinfo (sandbox): leave OpenBLAS to its own detection, and say so when asked.
    lastCoreTypeNote = `could not read /proc/cpuinfo (${String(cause)}); OpenBLAS detects the CPU itself`
    return undefined
  }
  const line = text.split("\n").find((l) => l.startsWith("flags"))
  if (line === undefined) return undefined
  const flags = new Set(line.slice(line.indexOf(":") + 1).trim().split(/\s+/))
  if (["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].every((f) => flags.has(f))) return "SkylakeX"
  if (flags.has("avx2") && flags.has("fma")) return "Haswell"
  return undefined
}


/** Thread count from `LLINK_BLAS_THREADS`, else `os.availableParallelism()`. Throws on a malformed value. */
export const blasThreadsFromEnv = (): number => {
  const raw = process.env.LLINK_BLAS_THREADS
  if (raw === undefined || raw.trim() === "") return os.availableParallelism()
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) {
    throw new BlasUnavailableError({
      message: `LLINK_BLAS_THREADS must be a positive integer, got '${raw}'`,
      tried: []
    })
  }
  return n
}

const open = (candidates: ReadonlyArray<string>): Blas => {
  let coreTypeSet: string | undefined
  if (process.env.OPENBLAS_CORETYPE === undefined || process.env.OPENBLAS_CORETYPE === "") {
    coreTypeSet = coreTypeForCpu()
    // process.env assignment calls setenv(), so the library's constructor sees it at dlopen time.
    if (coreTypeSet !== undefined) process.env.OPENBLAS_CORETYPE = coreTypeSet
  }
  const tried: Array<string> = []
  for (const path of candidates) {
    let lib: ReturnType<typeof koffi.load>
    if (path === ACCELERATE && process.env.VECLIB_MAXIMUM_THREADS === undefined) {
      process.env.VECLIB_MAXIMUM_THREADS = String(blasThreadsFromEnv())
    }
    try {
      lib = koffi.load(path)
    } catch (cause) {
      tried.push(`${path}: ${describeError(cause)}`)
      continue
    }
    try {
      const rawSgemm: RawSgemm = lib.func(
        "void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, " +
          "const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)"
      )
      const threads = blasThreadsFromEnv()
      // Accelerate has no openblas_* controls: its threads follow VECLIB_MAXIMUM_THREADS, read at load time.
      const accelerate = path === ACCELERATE
      const setNum: (n: number) => void = accelerate ? () => undefined : lib.func("void openblas_set_num_threads(int n)")
      const getNum: () => number = accelerate ? () => threads : lib.func("int openblas_get_num_threads(void)")
      const getConfig: () => string = accelerate ? () => "Apple Accelerate (vecLib)" : lib.func("const char *openblas_get_config(void)")
      const getCore: () => string = accelerate ? () => "vecLib" : lib.func("const char *openblas_get_corename(void)")
      setNum(threads)
      let current = getNum()
      return {
        path,
        config: getConfig(),
        coreName: getCore(),
        coreTypeSet,
        threads: () => threads,
        sgemm: (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
          const want = m * n * k >= PARALLEL_MIN_MACS ? threads : 1
          if (want !== current) {
            setNum(want)
            current = want
          }
          rawSgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans,
            transB ? CblasTrans : CblasNoTrans,
            m,
            n,
            k,
            alpha,
            a,
            lda,
            b,
            ldb,
            beta,
            c,
            ldc
          )
        }
      }
    } catch (cause) {
      if (cause instanceof BlasUnavailableError) throw cause
      tried.push(`${path}: loaded, but binding failed: ${describeError(cause)}`)
    }
  }
  throw new BlasUnavailableError({
    message:
      `OpenBLAS could not be loaded (${blasInstallHint()}; or set LLINK_OPENBLAS to the library's path)` +
      (lastCoreTypeNote === undefined ? "" : `; note: ${lastCoreTypeNote}`),
    tried
  })
}

let cached: { readonly blas: Blas } | { readonly error: BlasUnavailableError } | undefined

/** The candidate list this process uses: only `LLINK_OPENBLAS` when it is set. */
export const blasCandidates = (): ReadonlyArray<string> => {
  const forced = process.env.LLINK_OPENBLAS
  return forced !== undefined && forced !== "" ? [forced] : OPENBLAS_CANDIDATES
}

/** Load OpenBLAS once per process (later calls return the same handle, or rethrow the same error).
 *  Throws `BlasUnavailableError`. */
export const loadBlas = (): Blas => {
  if (cached === undefined) {
    try {
      cached = { blas: open(blasCandidates()) }
    } catch (cause) {
      if (!(cause instanceof BlasUnavailableError)) throw cause
      cached = { error: cause }
    }
  }
  if ("error" in cached) throw cached.error
  return cached.blas
}

/** Like `loadBlas`, but returns the error instead of throwing it. */
export const tryLoadBlas = (): Blas | BlasUnavailableError => {
  try {
    return loadBlas()
  } catch (cause) {
    if (cause instanceof BlasUnavailableError) return cause
    throw cause
  }
}
