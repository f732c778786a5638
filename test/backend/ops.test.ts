// The fused ops (gelu, layerNorm): the cpu-blas kernels against the composite tf ops on stock cpu, forward and
// gradients, and the composite path used on other backends.
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { FUSED_KERNELS } from "../../src/backend/cpuBlas/fused.ts"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { gelu, layerNorm } from "../../src/backend/ops.ts"
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
