/** Shared helpers of the backend tests: seeded data, running one computation on two backends, comparing. */
import * as tf from "@tensorflow/tfjs"
import { BlasUnavailableError, tryLoadBlas } from "../../src/backend/blas.ts"
import { registerBlasBackend } from "../../src/backend/cpuBlas/register.ts"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { skipFor } from "./envGate.ts"

const loaded = tryLoadBlas()
/** Why the BLAS tests are skipped, or undefined when OpenBLAS loaded. */
export const blasMissing: string | undefined =
  loaded instanceof BlasUnavailableError ? `${loaded.message} (tried: ${loaded.tried.join("; ")})` : undefined
if (!skipFor("openblas", blasMissing)) registerBlasBackend()

/** mulberry32: a fixed-seed uniform generator. */
export const rng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** n standard-normal-ish float32 values (sum of uniforms), deterministic per seed. */
export const randn = (n: number, seed: number): Float32Array => {
  const r = rng(seed)
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() + r() - 2) * 1.7
  return out
}

export const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** Run `f` on a backend and return copies of its outputs (everything it allocated is disposed). */
export const runOn = async (
  backend: string,
  f: () => tf.Tensor | Array<tf.Tensor>
): Promise<Array<{ shape: Array<number>; dtype: string; values: Float32Array | Int32Array }>> => {
  await tf.setBackend(backend)
  const outs = tf.tidy(f)
  const list = Array.isArray(outs) ? outs : [outs]
  const result = list.map((t) => {
    const v = t.dataSync()
    return {
      shape: [...t.shape],
      dtype: t.dtype,
      values: v instanceof Int32Array ? Int32Array.from(v) : Float32Array.from(v)
    }
  })
  tf.dispose(list)
  return result
}

/** Largest |a−b| / (atol + rtol·|b|); ≤ 1 means within tolerance. NaN where both NaN counts as equal. */
export const worstError = (
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  atol: number,
  rtol: number
): number => {
  if (a.length !== b.length) return Infinity
  let worst = 0
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue
    if (a[i] === b[i]) continue
    const e = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]))
    if (!(e <= worst)) worst = e
  }
  return worst
}

/** Run `f` on stock `cpu` and on `cpu-blas` and return both results (same order). */
export const onBoth = async (f: () => tf.Tensor | Array<tf.Tensor>) => {
  const stock = await runOn("cpu", f)
  const fast = await runOn(BLAS_BACKEND, f)
  return { stock, fast }
}
