// AdamW against a plain-loop PyTorch-style reference on every implementation path, in-place updates on cpu-blas,
// state round trips, and clipGradNorm.
import * as tf from "@tensorflow/tfjs"
import { afterAll, describe, expect, it } from "vitest"
import { AdamW, clipCoefficient, clipGradNorm, gradNorm } from "../../src/backend/adamw.ts"
import { BlasBackend } from "../../src/backend/cpuBlas/backend.ts"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { blasMissing, randn, worstError } from "../support/backend.ts"

interface RefParam {
  readonly name: string
  readonly p: Float32Array
  readonly m: Float32Array
  readonly v: Float32Array
}

/** torch.optim.AdamW, one parameter at a time, in float32 storage. */
const refStep = (
  params: ReadonlyArray<RefParam>,
  grads: Record<string, Float32Array>,
  t: number,
  lr: number,
  o: { beta1: number; beta2: number; eps: number; wd: number; decays: (n: string) => boolean }
): void => {
  for (const { name, p, m, v } of params) {
    const g = grads[name]
    const wd = o.decays(name) ? o.wd : 0
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i] * (1 - lr * wd)
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i]
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i]
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - o.beta2 ** t) + o.eps
      p[i] = p[i] - (lr / (1 - o.beta1 ** t)) * (m[i] / denom)
    }
  }
}

const modes: Array<{ label: string; backend: string; impl: "auto" | "ops"; skip: boolean }> = [
  { label: "cpu-blas loop", backend: BLAS_BACKEND, impl: "auto", skip: blasMissing !== undefined },
  { label: "cpu loop", backend: "cpu", impl: "auto", skip: false },
  { label: "tf ops", backend: "cpu", impl: "ops", skip: false }
]

let uid = 0
const fresh = (base: string): string => `${base}_${++uid}`

afterAll(() => {
  tf.disposeVariables()
})

describe("AdamW", () => {
  for (const mode of modes) {
    it.skipIf(mode.skip)(`matches the plain-loop reference over 6 steps with a changing lr (${mode.label})`, async () => {
      await tf.setBackend(mode.backend)
      const shapes: Record<string, Array<number>> = { w: [4, 5], b: [5] }
      const names = { w: fresh("w"), b: fresh("b") }
      const init = { w: randn(20, 1), b: randn(5, 2) }
      const w = tf.variable(tf.tensor(init.w.slice(), shapes.w), true, names.w)
      const b = tf.variable(tf.tensor(init.b.slice(), shapes.b), true, names.b)
      const o = { beta1: 0.9, beta2: 0.98, eps: 1e-8, wd: 0.05, decays: (n: string) => n !== names.b }
      const opt = new AdamW([w, b], { lr: 1e-3, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.wd, decays: o.decays, impl: mode.impl })
      const ref: Array<RefParam> = [
        { name: names.w, p: init.w.slice(), m: new Float32Array(20), v: new Float32Array(20) },
        { name: names.b, p: init.b.slice(), m: new Float32Array(5), v: new Float32Array(5) }
      ]
      for (let step = 1; step <= 6; step++) {
        const lr = 1e-3 * (1 + step) // a schedule: a different lr every step
        const gw = randn(20, 100 + step)
        const gb = randn(5, 200 + step)
        const grads = { [names.w]: tf.tensor(gw, shapes.w), [names.b]: tf.tensor(gb, shapes.b) }
        opt.step(grads, { lr })
        tf.dispose(Object.values(grads))
        refStep(ref, { [names.w]: gw, [names.b]: gb }, step, lr, o)
      }
      expect(opt.stepCount).toBe(6)
      expect(worstError(w.dataSync(), ref[0].p, 1e-6, 1e-5)).toBeLessThanOrEqual(1)
      expect(worstError(b.dataSync(), ref[1].p, 1e-6, 1e-5)).toBeLessThanOrEqual(1)
      const state = opt.getState()
      expect(worstError(state.m[names.w], ref[0].m, 1e-7, 1e-5)).toBeLessThanOrEqual(1)
      expect(worstError(state.v[names.b], ref[1].v, 1e-9, 1e-5)).toBeLessThanOrEqual(1)
      opt.dispose()
      w.dispose()
      b.dispose()
    })
  }

  it.skipIf(blasMissing !== undefined)("updates in place on cpu-blas, never writes the caller's arrays or read-out arrays", async () => {
    await tf.setBackend(BLAS_BACKEND)
    const be = tf.backend()
    if (!(be instanceof BlasBackend)) throw new Error("expected BlasBackend")
    const userInit = randn(64 * 80, 3)
    const userCopy = userInit.slice()
    const w = tf.variable(tf.tensor(userInit, [64, 80]), true, fresh("w"))
    const opt = new AdamW([w], { lr: 1e-2 })
    const step = (seed: number) => {
      const g = { [w.name]: tf.tensor(randn(64 * 80, seed), [64, 80]) }
      opt.step(g)
      tf.dispose(Object.values(g))
    }
    const valuesOf = () => be.data.get(w.dataId).values
    step(10) // the initial buffer is the caller's: copied, not written
    expect(Array.from(userInit)).toEqual(Array.from(userCopy))
    const after1 = valuesOf()
    step(11)
    expect(valuesOf()).toBe(after1) // now updated in place
    const readOut = w.dataSync()
    const readCopy = Float32Array.from(readOut)
    step(12) // read out: must not be mutated under the reader
    expect(Array.from(readOut)).toEqual(Array.from(readCopy))
    expect(valuesOf()).not.toBe(after1)
    const after3 = valuesOf()
    step(13)
    expect(valuesOf()).toBe(after3)
    opt.dispose()
    w.dispose()
  })

  it("getState/setState continue the same trajectory; bad states are rejected", async () => {
    await tf.setBackend("cpu")
    const name = fresh("w")
    const w1 = tf.variable(tf.tensor(randn(12, 5), [3, 4]), true, name)
    const a = new AdamW([w1], { lr: 3e-3, weightDecay: 0.1 })
    const gradAt = (s: number) => ({ [name]: tf.tensor(randn(12, 50 + s), [3, 4]) })
    for (let s = 0; s < 3; s++) a.step(gradAt(s))
    const saved = a.getState()
    const weights = w1.dataSync().slice()
    for (let s = 3; s < 5; s++) a.step(gradAt(s))
    const expected = w1.dataSync().slice()

    const name2 = fresh("w")
    const w2 = tf.variable(tf.tensor(weights, [3, 4]), true, name2)
    const b = new AdamW([w2], { lr: 3e-3, weightDecay: 0.1 })
    b.setState({ step: saved.step, m: { [name2]: saved.m[name] }, v: { [name2]: saved.v[name] } })
    expect(b.stepCount).toBe(3)
    for (let s = 3; s < 5; s++) b.step({ [name2]: tf.tensor(randn(12, 50 + s), [3, 4]) })
    expect(Array.from(w2.dataSync())).toEqual(Array.from(expected))

    expect(() => b.setState({ step: 1, m: { nope: new Float32Array(12) }, v: {} })).toThrow(/unknown variable 'nope'/)
    expect(() => b.setState({ step: 1, m: { [name2]: new Float32Array(5) }, v: {} })).toThrow(/has 5 values/)
    expect(() => b.step({ other: tf.zeros([3, 4]) })).toThrow(/unknown variable 'other'/)
    expect(() => b.step({ [name2]: tf.zeros([4, 3]) })).toThrow(/shape/)
    w1.dispose()
    w2.dispose()
  })

  it.skipIf(blasMissing !== undefined)("trains a small regression with variableGrads on cpu-blas", async () => {
    await tf.setBackend(BLAS_BACKEND)
    const x = tf.tensor(randn(32 * 8, 7), [32, 8])
    const trueW = tf.tensor(randn(8 * 3, 8), [8, 3])
    const y = tf.matMul(x, trueW)
    const w = tf.variable(tf.zeros([8, 3]), true, fresh("w"))
    const opt = new AdamW([w], { lr: 0.05, weightDecay: 0 })
    const lossOf = () => tf.mean(tf.squaredDifference(tf.matMul(x, w), y)) as tf.Scalar
    const first = lossOf().dataSync()[0]
    for (let i = 0; i < 150; i++) {
      const { value, grads } = tf.variableGrads(lossOf)
      opt.step(grads)
      tf.dispose([value, ...Object.values(grads)])
    }
    const last = lossOf().dataSync()[0]
    expect(last).toBeLessThan(first * 0.01)
    tf.dispose([x, trueW, y, w])
  })
})

describe("clipGradNorm", () => {
  for (const mode of modes) {
    it.skipIf(mode.skip)(`fused clipping (gradScale) equals clipGradNorm then step (${mode.label})`, async () => {
      await tf.setBackend(mode.backend)
      const runWith = (fused: boolean): Float32Array => {
        const name = fresh("w")
        const w = tf.variable(tf.tensor(randn(24, 30), [4, 6]), true, name)
        const opt = new AdamW([w], { lr: 1e-2, weightDecay: 0.05, impl: mode.impl })
        for (let s = 0; s < 3; s++) {
          const grads: Record<string, tf.Tensor> = { [name]: tf.mul(tf.tensor(randn(24, 40 + s), [4, 6]), 3) }
          if (fused) opt.step(grads, { gradScale: clipCoefficient(gradNorm(grads, { impl: mode.impl }), 1.0) })
          else {
            clipGradNorm(grads, 1.0, { impl: mode.impl })
            opt.step(grads)
          }
          tf.dispose(Object.values(grads))
        }
        const out = Float32Array.from(w.dataSync())
        opt.dispose()
        w.dispose()
        return out
      }
      expect(worstError(runWith(true), runWith(false), 1e-7, 1e-6)).toBeLessThanOrEqual(1)
    })
  }

  const cases: Array<{ label: string; backend: string; impl: "auto" | "ops"; skip: boolean }> = modes
  for (const mode of cases) {
    it.skipIf(mode.skip)(`returns the pre-clip norm and scales to maxNorm (${mode.label})`, async () => {
      await tf.setBackend(mode.backend)
      const ga = randn(12, 1)
      const gb = randn(5, 2)
      let sq = 0
      for (const v of [...ga, ...gb]) sq += v * v
      const norm = Math.sqrt(sq)
      // Kernel outputs (may be scaled in place) and caller-owned arrays (must never be written).
      const gaCopy = ga.slice()
      const grads: Record<string, tf.Tensor> = { a: tf.mul(tf.tensor(ga, [3, 4]), 1), b: tf.tensor(gb, [5]) }
      const got = clipGradNorm(grads, 1.0, { impl: mode.impl })
      expect(got).toBeCloseTo(norm, 4)
      const after = [...grads.a.dataSync(), ...grads.b.dataSync()]
      const scale = 1 / (norm + 1e-6)
      expect(worstError(after, [...ga, ...gb].map((v) => v * scale), 1e-7, 1e-6)).toBeLessThanOrEqual(1)
      expect(Array.from(ga)).toEqual(Array.from(gaCopy))
      expect(Array.from(gb)).toEqual(Array.from(randn(5, 2)))
      // Below the threshold: untouched.
      const unclipped: Record<string, tf.Tensor> = { a: tf.tensor(ga, [3, 4]) }
      const before = unclipped.a
      expect(clipGradNorm(unclipped, 1e6, { impl: mode.impl })).toBeGreaterThan(0)
      expect(unclipped.a).toBe(before)
      tf.dispose([...Object.values(grads), ...Object.values(unclipped)])
    })
  }
})
