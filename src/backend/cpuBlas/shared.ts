/** The names, types and small helpers every cpu-blas kernel file uses. */
import * as tf from "@tensorflow/tfjs"

/** The backend name registered with tensorflow.js. */
export const BLAS_BACKEND = "cpu-blas"

export type Cpu = tf.MathBackendCPU
export type KernelArgs = Parameters<tf.KernelFunc>[0]
export type KernelResult = ReturnType<tf.KernelFunc>

export const cpuOf = (backend: {}): Cpu => {
  if (!(backend instanceof tf.MathBackendCPU)) {
    throw new Error(`${BLAS_BACKEND} kernel called with a backend that is not a MathBackendCPU`)
  }
  return backend
}

/**
 * The float32 values of a tensor, or undefined when it is not float32. The stock Cast kernel turns int32/bool
 * tensors into float32 ones that keep their Int32Array/Uint8Array storage; those are converted (exact below 2^24).
 */
export const f32 = (be: Cpu, t: tf.TensorInfo | undefined): Float32Array | undefined => {
  if (t === undefined || t.dtype !== "float32") return undefined
  const v = be.data.get(t.dataId).values
  if (v instanceof Float32Array) return v
  if (v instanceof Int32Array || v instanceof Uint8Array) return Float32Array.from(v)
  return undefined
}

export const sizeOf = (shape: ReadonlyArray<number>): number => {
  let n = 1
  for (const d of shape) n *= d
  return n
}

export const boolAttr = (args: KernelArgs, name: string): boolean => args.attrs?.[name] === true

export const out = (be: Cpu, shape: Array<number>, values: Float32Array): tf.TensorInfo =>
  be.makeTensorInfo(shape, "float32", values)

/** Normalised, sorted, unique axes; undefined when an axis is out of range. */
export const parseAxes = (raw: unknown, rank: number): Array<number> | undefined => {
  const list = raw === undefined || raw === null ? [...Array(rank).keys()] : Array.isArray(raw) ? raw : [raw]
  const axes: Array<number> = []
  for (const a of list) {
    if (typeof a !== "number" || !Number.isInteger(a) || a < -rank || a >= Math.max(rank, 1)) return undefined
    const n = a < 0 ? a + rank : a
    if (!axes.includes(n)) axes.push(n)
  }
  return axes.sort((x, y) => x - y)
}

/** The first gradient of a kernel (tfjs passes one or several). */
export const single = (dy: tf.Tensor | Array<tf.Tensor>): tf.Tensor => (Array.isArray(dy) ? dy[0] : dy)

/** Counters of how often each replaced kernel took its fast path or fell back (for tests and the doctor). */
export const kernelStats: Record<string, { fast: number; fallback: number }> = {}

/** Counts a call of `name` on its fast path or its stock fallback. */
export const hit = (name: string, fast: boolean): void => {
  const s = (kernelStats[name] ??= { fast: 0, fallback: 0 })
  if (fast) s.fast++
  else s.fallback++
}
