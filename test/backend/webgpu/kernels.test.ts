/**
 * Every kernel llink's models and losses use, on WebGPU against cpu-blas on tiny shapes — forward, and inside
 * `tf.grad` — within 1e-4 (relative above 1, absolute below). Runs on any adapter, lavapipe included.
 */
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { gelu, layerNorm } from "../../../src/backend/ops.ts"
import { makeRng } from "../../../src/models/rng.ts"
import { maxRelDiff, runOn, skipReason } from "../../support/webgpu.ts"

const rng = makeRng(20261203)
const host = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * (rng.uniform() * 2 - 1))
const size = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)
const t = (data: Float32Array, shape: ReadonlyArray<number>) => tf.tensor(data, [...shape], "float32")

const A = host(6 * 5)
const B = host(5 * 4)
const C = host(6 * 4)
const X3 = host(2 * 3 * 8)
const Y3 = host(2 * 8 * 5)
const ROW = host(8)
const POS = Float32Array.from(host(24), (v) => Math.abs(v) + 0.1)
const IDS = [3, 0, 5, 5, 1]

type Case = readonly [name: string, fn: () => tf.Tensor | ReadonlyArray<tf.Tensor>]

const forward: ReadonlyArray<Case> = [
  ["matMul", () => tf.matMul(t(A, [6, 5]), t(B, [5, 4]))],
  ["matMul transposeB", () => tf.matMul(t(A, [6, 5]), t(C, [6, 4]), true, false)],
  ["matMul aᵀ·b", () => tf.matMul(t(C, [6, 4]), t(B, [5, 4]), false, true)],
  ["batched matMul", () => tf.matMul(t(X3, [2, 3, 8]), t(Y3, [2, 8, 5]))],
  ["add/sub/mul/div broadcast", () => tf.div(tf.sub(tf.mul(t(X3, [2, 3, 8]), t(ROW, [8])), t(ROW, [1, 1, 8])), tf.add(t(POS.subarray(0, 8), [8]), 1))],
  ["exp log sqrt rsqrt", () => [tf.exp(t(A, [30])), tf.log(t(POS, [24])), tf.sqrt(t(POS, [24])), tf.rsqrt(t(POS, [24]))]],
  ["erf tanh sigmoid sin cos", () => [tf.erf(t(A, [30])), tf.tanh(t(A, [30])), tf.sigmoid(t(A, [30])), tf.sin(t(A, [30])), tf.cos(t(A, [30]))]],
  ["gelu (erf) and silu", () => [gelu(t(A, [6, 5])), tf.mul(t(A, [6, 5]), tf.sigmoid(t(A, [6, 5])))]],
  ["softmax, logSumExp", () => [tf.softmax(t(A, [6, 5])), tf.logSumExp(t(A, [6, 5]), -1)]],
  ["sum/mean/max over axes", () => [tf.sum(t(X3, [2, 3, 8]), -1), tf.mean(t(X3, [2, 3, 8]), 1, true), tf.max(t(X3, [2, 3, 8]), 0), tf.moments(t(X3, [2, 3, 8]), -1, true).variance]],
  ["layerNorm (affine, non-affine)", () => [layerNorm(t(X3, [2, 3, 8]), t(ROW, [8]), t(ROW.map((v) => v / 2), [8])), layerNorm(t(X3, [6, 8]))]],
  ["rmsNorm pattern", () => tf.mul(t(X3, [6, 8]), tf.rsqrt(tf.add(tf.mean(tf.square(t(X3, [6, 8])), -1, true), 1e-5)))],
  ["transpose, reshape, slice, concat", () => [tf.transpose(t(X3, [2, 3, 8]), [0, 2, 1]), tf.slice(t(X3, [2, 3, 8]), [0, 1, 2], [2, 2, 5]), tf.concat([t(A, [6, 5]), t(C, [6, 4])], 1), tf.reshape(t(X3, [2, 3, 8]), [6, 8])]],
  ["gather (rows), oneHot, cast", () => [tf.gather(t(A, [6, 5]), tf.tensor1d(IDS, "int32")), tf.oneHot(tf.tensor1d(IDS, "int32"), 7), tf.cast(tf.greaterEqual(t(A, [30]), 0), "float32")]],
  ["pad, where, minimum/maximum", () => [tf.pad(t(A, [6, 5]), [[1, 0], [0, 2]]), tf.where(tf.greater(t(A, [30]), 0), t(A, [30]), tf.zerosLike(t(A, [30]))), tf.minimum(t(A, [30]), 0.2), tf.maximum(t(A, [30]), -0.2)]],
  ["topk, argMax, scatterND", () => [tf.topk(t(A, [6, 5]), 3).indices, tf.argMax(t(A, [6, 5]), 1), tf.scatterND(tf.tensor2d([[1], [4]], [2, 1], "int32"), tf.tensor1d([-1, 2]), [6])]],
  ["unsortedSegmentSum", () => tf.unsortedSegmentSum(t(A, [6, 5]), tf.tensor1d([0, 2, 1, 0, 2, 1], "int32"), 3)]
]

/** Scalar functions of x whose gradients the training paths need. */
const gradients: ReadonlyArray<readonly [string, (x: tf.Tensor) => tf.Scalar, Float32Array, ReadonlyArray<number>]> = [
  ["matMul + gelu + layerNorm", (x) => tf.sum(layerNorm(gelu(tf.matMul(x as tf.Tensor2D, t(B, [5, 4]))), t(POS.subarray(0, 4), [4]), t(ROW.subarray(0, 4), [4]))), A, [6, 5]],
  ["softmax cross-entropy (logSumExp − picked)", (x) => tf.mean(tf.sub(tf.logSumExp(x, -1), tf.sum(tf.mul(x, tf.oneHot(tf.tensor1d([1, 0, 4, 2, 3, 1], "int32"), 5)), -1))), A, [6, 5]],
  ["l2 normalise + cosine logits / τ", (x) => {
    const n = tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), 1e-12)) as tf.Tensor2D
    return tf.mean(tf.logSumExp(tf.div(tf.matMul(n, n, false, true), 0.08), -1))
  }, A, [6, 5]],
  ["gather rows (embedding lookup) + rms", (x) => tf.sum(tf.rsqrt(tf.add(tf.mean(tf.square(tf.gather(x, tf.tensor1d(IDS, "int32"))), -1), 1e-5))), A, [6, 5]],
  ["batched attention: softmax(q·kᵀ)·v", (x) => {
    const q = tf.reshape(x, [2, 3, 8]) as tf.Tensor3D
    const w = tf.softmax(tf.div(tf.matMul(q, q, false, true), Math.sqrt(8)))
    return tf.sum(tf.matMul(w, q))
  }, X3, [6, 8]],
  ["silu MLP with slices and concat", (x) => {
    const h = tf.matMul(x as tf.Tensor2D, t(B, [5, 4]))
    const [g, u] = [tf.slice(h, [0, 0], [6, 2]), tf.slice(h, [0, 2], [6, 2])]
    return tf.sum(tf.concat([tf.mul(tf.mul(g, tf.sigmoid(g)), u), tf.tanh(u)], 1))
  }, A, [6, 5]]
]

describe.skipIf(skipReason !== undefined)("WebGPU kernels against cpu-blas", () => {
  for (const [name, fn] of forward) {
    it(`forward: ${name}`, async () => {
      const cpu = await runOn("cpu-blas", fn)
      const gpu = await runOn("webgpu", fn)
      expect(gpu.length).toBe(cpu.length)
      cpu.forEach((c, i) => expect(maxRelDiff(gpu[i], c), `${name} output ${i}`).toBeLessThanOrEqual(1e-4))
    })
  }
  for (const [name, f, data, shape] of gradients) {
    it(`gradient: ${name}`, async () => {
      const fn = () => {
        const x = t(data, shape)
        const { value, grad } = tf.valueAndGrad(f)(x)
        return [value, grad]
      }
      const cpu = await runOn("cpu-blas", fn)
      const gpu = await runOn("webgpu", fn)
      expect(size(shape)).toBe(cpu[1].length)
      expect(maxRelDiff(gpu[0], cpu[0]), `${name} value`).toBeLessThanOrEqual(1e-4)
      expect(maxRelDiff(gpu[1], cpu[1]), `${name} gradient`).toBeLessThanOrEqual(1e-4)
    })
  }
})
