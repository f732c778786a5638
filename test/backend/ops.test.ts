// The fused ops (gelu, layerNorm, swiglu, rmsNorm): the cpu-blas kernels against the composite tf ops on stock cpu,
// forward and gradients, and against plain float64 references (values, and gradients by finite differences).
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { FUSED_KERNELS } from "../../src/backend/cpuBlas/fused.ts"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { gelu, layerNorm, rmsNorm, swiglu } from "../../src/backend/ops.ts"
import { blasMissing, randn, runOn, worstError } from "../support/backend.ts"

const t = (shape: Array<number>, seed: number, scale = 1): tf.Tensor =>
  tf.tensor(randn(shape.reduce((a, b) => a * b, 1), seed).map((v) => v * scale), shape)

/** Reference GELU in float64: an independent erfc (Numerical Recipes `erfcc`, fractional error < 1.2e-7), not
 *  the Abramowitz–Stegun 7.1.26 form the kernels use. */
const geluRef = (x: number): number => {
  const z = Math.abs(x) / Math.SQRT2
  const tt = 1 / (1 + 0.5 * z)
  const erfc =
    tt *
    Math.exp(
      -z * z - 1.26551223 + tt * (1.00002368 + tt * (0.37409196 + tt * (0.09678418 + tt * (-0.18628806 + tt * (0.27886807 +
        tt * (-1.13520398 + tt * (1.48851587 + tt * (-0.82215223 + tt * 0.17087277))))))))
    )
  const erf = x >= 0 ? 1 - erfc : erfc - 1
  return 0.5 * x * (1 + erf)
}

describe.skipIf(blasMissing !== undefined)("fused gelu / layerNorm on cpu-blas", () => {
  it("gelu: forward matches an accurate reference and the composite cpu path; the fused kernel runs", async () => {
    const xs = randn(3 * 65, 1).map((v) => v * 3)
    const [fast] = await runOn(BLAS_BACKEND, () => gelu(tf.tensor(xs, [3, 65])))
    const [stock] = await runOn("cpu", () => gelu(tf.tensor(xs, [3, 65])))
    const ref = Array.from(xs, geluRef)
    expect(worstError(fast.values, ref, 1e-6, 1e-5)).toBeLessThanOrEqual(1)
    expect(worstError(fast.values, stock.values, 1e-6, 1e-5)).toBeLessThanOrEqual(1)
    await tf.setBackend(BLAS_BACKEND)
    const prof = await tf.profile(() => gelu(tf.tensor(xs, [3, 65])))
    expect(prof.kernelNames).toContain(FUSED_KERNELS.gelu)
    tf.dispose(prof.result)
  })

  it("gelu: gradient matches the composite graph on stock cpu", async () => {
    const f = () => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(gelu(x), t([4, 33], 9))))(t([4, 33], 8, 3))
    const [fast] = await runOn(BLAS_BACKEND, f)
    const [stock] = await runOn("cpu", f)
    expect(worstError(fast.values, stock.values, 1e-5, 1e-4)).toBeLessThanOrEqual(1)
  })

  it("layerNorm: forward and gradients (x, gamma, beta) match the composite graph; non-affine form too", async () => {
    const f = () => {
      const x = t([5, 3, 65], 1, 2)
      const gamma = t([65], 2)
      const beta = t([65], 3)
      const w = t([5, 3, 65], 4)
      const y = layerNorm(x, gamma, beta, 1e-5)
      const g = tf.grads((x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.sum(tf.mul(layerNorm(x, gamma, beta), w)))
      const plain = layerNorm(x)
      const gPlain = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.square(layerNorm(x)), w)))(x)
      return [y, ...g([x, gamma, beta]), plain, gPlain]
    }
    const fast = await runOn(BLAS_BACKEND, f)
    const stock = await runOn("cpu", f)
    expect(fast.map((r) => r.shape)).toEqual(stock.map((r) => r.shape))
    fast.forEach((r, i) => {
      expect(worstError(r.values, stock[i].values, 1e-5, 1e-4), `output ${i}`).toBeLessThanOrEqual(1)
    })
    // Each row of the plain form has mean 0 and (biased) variance 1 − eps-ish.
    const plain = fast[4].values
    for (let r = 0; r < 15; r++) {
      const row = Array.from(plain.slice(r * 65, (r + 1) * 65))
      const mean = row.reduce((a, b) => a + b, 0) / 65
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 65
      expect(Math.abs(mean)).toBeLessThan(1e-5)
      expect(Math.abs(variance - 1)).toBeLessThan(1e-3)
    }
  })

  it("layerNorm rejects gamma/beta of the wrong shape", async () => {
    await tf.setBackend(BLAS_BACKEND)
    expect(() => layerNorm(tf.zeros([2, 4]), tf.ones([3]))).toThrow(/gamma must have shape \[4\]/)
    expect(() => layerNorm(tf.zeros([2, 4]), undefined, tf.ones([2, 4]))).toThrow(/beta must have shape \[4\]/)
  })
})

/** Plain float64 references, written apart from the kernels. */
const swigluRef = (g: ArrayLike<number>, u: ArrayLike<number>): Array<number> => Array.from(g, (x, i) => (x / (1 + Math.exp(-x))) * u[i])
const rmsNormRef = (x: ArrayLike<number>, w: ArrayLike<number>, eps: number): Array<number> => {
  const d = w.length
  const out: Array<number> = []
  for (let s = 0; s < x.length; s += d) {
    let sq = 0
    for (let j = 0; j < d; j++) sq += x[s + j] ** 2
    const r = 1 / Math.sqrt(sq / d + eps)
    for (let j = 0; j < d; j++) out.push(x[s + j] * r * w[j])
  }
  return out
}
/** ∂/∂v_i of Σ f(v)·c by central differences in float64. */
const numericGrad = (f: (v: Array<number>) => Array<number>, v: ArrayLike<number>, c: ArrayLike<number>, h = 1e-5): Array<number> =>
  Array.from(v, (_, i) => {
    const up = Array.from(v)
    const down = Array.from(v)
    up[i] += h
    down[i] -= h
    const fu = f(up)
    const fd = f(down)
    let s = 0
    for (let k = 0; k < fu.length; k++) s += (fu[k] - fd[k]) * c[k]
    return s / (2 * h)
  })

describe.skipIf(blasMissing !== undefined)("fused swiglu / rmsNorm on cpu-blas", () => {
  it("swiglu: the fused kernel runs; forward and both gradients match float64 references and the composite graph", async () => {
    const shape = [3, 37]
    const f = () => {
      const gate = t(shape, 21, 3)
      const up = t(shape, 22)
      const c = t(shape, 23)
      return [swiglu(gate, up), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swiglu(a, b), c)))([gate, up])]
    }
    const fast = await runOn(BLAS_BACKEND, f)
    const stock = await runOn("cpu", f)
    fast.forEach((r, i) => expect(worstError(r.values, stock[i].values, 1e-5, 1e-4), `output ${i}`).toBeLessThanOrEqual(1))
    const g = randn(111, 21).map((v) => v * 3)
    const u = randn(111, 22)
    const c = randn(111, 23)
    expect(worstError(fast[0].values, swigluRef(g, u), 1e-6, 1e-5)).toBeLessThanOrEqual(1)
    expect(worstError(fast[1].values, numericGrad((v) => swigluRef(v, u), g, c), 1e-4, 1e-4)).toBeLessThanOrEqual(1)
    expect(worstError(fast[2].values, numericGrad((v) => swigluRef(g, v), u, c), 1e-4, 1e-4)).toBeLessThanOrEqual(1)
    await tf.setBackend(BLAS_BACKEND)
    const prof = await tf.profile(() => swiglu(t(shape, 1), t(shape, 2)))
    expect(prof.kernelNames).toContain(FUSED_KERNELS.swiglu)
    tf.dispose(prof.result)
  })

  it("rmsNorm: the fused kernel runs; forward and gradients (x, weight) match float64 references and the composite graph", async () => {
    const eps = 1e-5
    const f = () => {
      const x = t([6, 33], 31, 2)
      const w = t([33], 32)
      const c = t([6, 33], 33)
      return [rmsNorm(x, w, eps), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a, b, eps), c)))([x, w])]
    }
    const fast = await runOn(BLAS_BACKEND, f)
    const stock = await runOn("cpu", f)
    expect(fast.map((r) => r.shape)).toEqual([[6, 33], [6, 33], [33]])
    fast.forEach((r, i) => expect(worstError(r.values, stock[i].values, 1e-5, 1e-4), `output ${i}`).toBeLessThanOrEqual(1))
    const x = randn(198, 31).map((v) => v * 2)
    const w = randn(33, 32)
    const c = randn(198, 33)
    expect(worstError(fast[0].values, rmsNormRef(x, w, eps), 1e-6, 1e-5)).toBeLessThanOrEqual(1)
    expect(worstError(fast[1].values, numericGrad((v) => rmsNormRef(v, w, eps), x, c), 1e-4, 1e-4)).toBeLessThanOrEqual(1)
    expect(worstError(fast[2].values, numericGrad((v) => rmsNormRef(x, v, eps), w, c), 1e-4, 1e-4)).toBeLessThanOrEqual(1)
    await tf.setBackend(BLAS_BACKEND)
    const prof = await tf.profile(() => rmsNorm(t([2, 8], 1), t([8], 2), eps))
    expect(prof.kernelNames).toContain(FUSED_KERNELS.rmsNorm)
    tf.dispose(prof.result)
    expect(() => rmsNorm(tf.zeros([2, 4]), tf.ones([3]), eps)).toThrow(/weight must have shape \[4\]/)
  })
})
