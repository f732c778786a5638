/**
 * The Stage B objective (src/train/stageBLoss.ts) on a small random decoder: the target-token cross-entropy against
 * full-vocabulary logits, L_zero = the loss with the slot rows restored (a forward without overrides), the two
 * contrast signs, and the auxiliary terms' values and gradients against plain float64 loops with finite differences.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import type { LlamaModel } from "../../src/models/llama.ts"
import { disposeLlama, forward, llamaFromWeights } from "../../src/models/llama.ts"
import { createLora, disposeLora } from "../../src/models/lora.ts"
import { makeRng } from "../../src/models/rng.ts"
import { meanOfSlots, slotOverrides } from "../../src/models/slots.ts"
import {
  contrastTerm,
  cosAlignLoss,
  crossEntropyRows,
  defaultStageBLossConfig,
  isContrastStep,
  lmLoss,
  lmTargets,
  slotInfoNce,
  stageBLoss,
  targetNll
} from "../../src/train/stageBLoss.ts"
import type { CosForm, StageBLossConfig } from "../../src/train/stageBLoss.ts"
import { randomLlamaWeights, smallLlama } from "../support/modelFixtures.ts"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const randn = (n: number, seed: number, scale = 1): Float32Array => {
  const r = makeRng(seed)
  return Float32Array.from({ length: n }, () => scale * r.normal())
}

// ---------------------------------------------------------------------------------------------------------------
// plain float64 references of the auxiliaries: slots x[b][k][i] (flat, B·K·d), teachers h[b][i]

const meanRows = (x: ArrayLike<number>, B: number, K: number, d: number): Array<Float64Array> =>
  Array.from({ length: B }, (_, b) => {
    const m = new Float64Array(d)
    for (let k = 0; k < K; k++) for (let i = 0; i < d; i++) m[i] += x[(b * K + k) * d + i] / K
    return m
  })
const unit = (v: ArrayLike<number>): Float64Array => {
  let s = 0
  for (let i = 0; i < v.length; i++) s += v[i] * v[i]
  const n = Math.max(Math.sqrt(s), 1e-12)
  return Float64Array.from(v, (a) => a / n)
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}
const cosRef = (x: ArrayLike<number>, h: ArrayLike<number>, B: number, K: number, d: number, form: CosForm): number => {
  const m = meanRows(x, B, K, d)
  let total = 0
  for (let b = 0; b < B; b++) {
    const mu = unit(m[b])
    const hu = unit(Array.from({ length: d }, (_, i) => h[b * d + i]))
    if (form === "one-minus-cos") total += 1 - dot(mu, hu)
    else for (let i = 0; i < d; i++) total += (mu[i] - hu[i]) ** 2 / d
  }
  return total / B
}
const nceRef = (x: ArrayLike<number>, h: ArrayLike<number>, B: number, K: number, d: number, tau: number): number => {
  const m = meanRows(x, B, K, d).map(unit)
  const hs = Array.from({ length: B }, (_, b) => unit(Array.from({ length: d }, (_, i) => h[b * d + i])))
  let total = 0
  for (let b = 0; b < B; b++) {
    const logits = hs.map((hj) => dot(m[b], hj) / tau)
    const max = Math.max(...logits)
    const lse = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0))
    total += lse - logits[b]
  }
  return total / B
}
/** Central finite differences of f at x (float64). */
const numericGrad = (f: (x: Float64Array) => number, x: Float64Array, eps = 1e-5): Float64Array =>
  Float64Array.from(x, (_, i) => {
    const p = Float64Array.from(x)
    const m = Float64Array.from(x)
    p[i] += eps
    m[i] -= eps
    return (f(p) - f(m)) / (2 * eps)
  })

describe("auxiliary terms", () => {
  const B = 3
  const K = 2
  const d = 4
  const x = randn(B * K * d, 1)
  const h = randn(B * d, 2)
  const cases: ReadonlyArray<readonly [string, (s: tf.Tensor3D, t: tf.Tensor2D) => tf.Scalar, (v: ArrayLike<number>) => number]> = [
    ["cos (one-minus-cos)", (s, t) => cosAlignLoss(meanOfSlots(s), t, "one-minus-cos"), (v) => cosRef(v, h, B, K, d, "one-minus-cos")],
    ["cos (mse, the code's form)", (s, t) => cosAlignLoss(meanOfSlots(s), t, "mse"), (v) => cosRef(v, h, B, K, d, "mse")],
    ["InfoNCE τ = 0.07", (s, t) => slotInfoNce(meanOfSlots(s), t, 0.07), (v) => nceRef(v, h, B, K, d, 0.07)],
    ["InfoNCE τ = 0.5", (s, t) => slotInfoNce(meanOfSlots(s), t, 0.5), (v) => nceRef(v, h, B, K, d, 0.5)]
  ]
  for (const [name, term, ref] of cases) {
    it(`${name}: value and gradient w.r.t. the slots match a plain loop with finite differences`, () => {
      const { value, grad } = tf.tidy(() => {
        const t = tf.tensor2d(h, [B, d])
        const f = (s: tf.Tensor) => term(s as tf.Tensor3D, t)
        const g = tf.grad(f)(tf.tensor3d(x, [B, K, d]))
        return { value: f(tf.tensor3d(x, [B, K, d])).dataSync()[0], grad: g.dataSync() }
      })
      expect(value).toBeCloseTo(ref(x), 5)
      const want = numericGrad(ref, Float64Array.from(x))
      const scale = Math.max(...want.map(Math.abs))
      expect(scale).toBeGreaterThan(1e-3) // the check is not vacuous
      for (let i = 0; i < want.length; i++) expect(Math.abs(grad[i] - want[i])).toBeLessThan(1e-4 * Math.max(1, scale))
    })
  }

  it("teachers are constants and a perfectly aligned batch scores cos 0", () => {
    tf.tidy(() => {
      const t = tf.tensor2d(h, [B, d])
      const g = tf.grad((hh: tf.Tensor) => cosAlignLoss(meanOfSlots(tf.tensor3d(x, [B, K, d])), hh as tf.Tensor2D, "one-minus-cos"))(t)
      expect(g.shape).toEqual([B, d]) // differentiable in h, but the loop never asks for it
      const aligned = tf.stack([t, t], 1) as tf.Tensor3D // every slot = the teacher
      expect(cosAlignLoss(meanOfSlots(aligned), t, "one-minus-cos").dataSync()[0]).toBeCloseTo(0, 6)
    })
  })
})

describe("cross-entropy over target tokens", () => {
  it("the fused CPU path equals logsumexp − logit[target], with gradient softmax − onehot", () => {
    const N = 3
    const V = 7
    const logits = randn(N * V, 5, 2)
    const targets = [0, 6, 3]
    const dy = [0.5, -1, 2]
    const { value, grad } = tf.tidy(() => {
      const L = tf.tensor2d(logits, [N, V])
      const f = (l: tf.Tensor) => tf.sum(tf.mul(crossEntropyRows(l as tf.Tensor2D, targets), tf.tensor1d(dy)))
      return { value: crossEntropyRows(L, targets).dataSync(), grad: tf.grad(f)(L).dataSync() }
    })
    for (let i = 0; i < N; i++) {
      const row = Array.from(logits.subarray(i * V, (i + 1) * V))
      const max = Math.max(...row)
      const sum = row.reduce((s, l) => s + Math.exp(l - max), 0)
      expect(value[i]).toBeCloseTo(max + Math.log(sum) - row[targets[i]], 5)
      for (let j = 0; j < V; j++) {
        expect(grad[i * V + j]).toBeCloseTo(dy[i] * (Math.exp(row[j] - max) / sum - (j === targets[i] ? 1 : 0)), 5)
      }
    }
    expect(() => tf.tidy(() => crossEntropyRows(tf.zeros([2, 3]) as tf.Tensor2D, [0, 3]))).toThrow(/outside/)
  })
})

describe("L_SFT, L_zero and the contrast on a small decoder", () => {
  const SLOT_IDS = [57, 58] // two "slot tokens" of the small vocabulary (61)
  const ids = [
    [1, 10, 57, 58, 11, 20, 21, 22],
    [1, 12, 57, 58, 13, 30, 31, 2]
  ]
  const mask = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 0]
  ]
  const labels = [
    [-100, -100, -100, -100, -100, 20, 21, 22],
    [-100, -100, -100, -100, -100, 30, 31, -100]
  ]
  const positions = [
    [2, 3],
    [2, 3]
  ]
  const targets = lmTargets(labels)
  const make = (): LlamaModel => {
    const model = Effect.runSync(llamaFromWeights(smallLlama, randomLlamaWeights(smallLlama, 4), "<memory>"))
    const lora = createLora(smallLlama, { rank: 2, alpha: 4, dropout: 0, targets: ["q", "v", "up"] }, 3)
    for (const layer of lora.layers) for (const pair of Object.values(layer)) pair.b.assign(tf.tensor(randn(pair.b.size, 9, 0.1), pair.b.shape))
    return { ...model, lora }
  }
  const d = smallLlama.hidden_size
  const slotValues = randn(2 * 2 * d, 7)
  const config = (over: Partial<StageBLossConfig>): StageBLossConfig => ({ ...defaultStageBLossConfig, contrastEvery: 3, ...over })

  it("the target-token loss equals the mean cross-entropy of the full logits at the shifted target positions", () => {
    const model = make()
    tf.tidy(() => {
      const got = lmLoss(model, { ids, attentionMask: mask }, targets, false).dataSync()[0]
      const logits = forward(model, { ids, attentionMask: mask }, { logits: true }).logits!.arraySync() as number[][][]
      let total = 0
      for (let i = 0; i < targets.tokens.length; i++) {
        const row = logits[targets.batch[i]][targets.position[i]]
        const max = Math.max(...row)
        total += max + Math.log(row.reduce((s, l) => s + Math.exp(l - max), 0)) - row[targets.tokens[i]]
      }
      expect(targets.tokens).toEqual([20, 21, 22, 30, 31])
      expect(got).toBeCloseTo(total / targets.tokens.length, 4)
      expect(targetNll(model, { ids, attentionMask: mask }, targets, false).shape).toEqual([5])
    })
    disposeLora(model.lora!)
    disposeLlama(model)
  })

  it("L_zero is the loss with the slot rows restored: a forward without overrides", () => {
    const model = make()
    tf.tidy(() => {
      const slots = tf.tensor3d(slotValues, [2, 2, d])
      const terms = stageBLoss(
        { model, input: { ids, attentionMask: mask }, slotPositions: positions, targets, slots, teacher: null, withZero: true, training: false },
        config({})
      )
      const plain = lmLoss(model, { ids, attentionMask: mask }, targets, false).dataSync()[0]
      const injected = lmLoss(model, { ids, attentionMask: mask, overrides: slotOverrides(slots, positions) }, targets, false).dataSync()[0]
      expect(terms.lzero!.dataSync()[0]).toBe(plain)
      expect(terms.lsft.dataSync()[0]).toBe(injected)
      expect(Math.abs(injected - plain)).toBeGreaterThan(1e-3) // the slots change the loss
      // injecting the ordinary <f_i> embedding rows themselves gives L_zero back
      const rows = tf.gather(model.embed, tf.tensor1d(SLOT_IDS, "int32"))
      const same = tf.stack([rows, rows]) as tf.Tensor3D
      const back = stageBLoss(
        { model, input: { ids, attentionMask: mask }, slotPositions: positions, targets, slots: same, teacher: null, withZero: true, training: false },
        config({})
      )
      expect(back.lsft.dataSync()[0]).toBeCloseTo(back.lzero!.dataSync()[0], 6)
      // not a contrast step: no L_zero, no contrast
      const plainStep = stageBLoss(
        { model, input: { ids, attentionMask: mask }, slotPositions: positions, targets, slots, teacher: null, withZero: false, training: false },
        config({})
      )
      expect(plainStep.lzero).toBeNull()
      expect(plainStep.contrast.dataSync()[0]).toBe(0)
      expect(plainStep.total.dataSync()[0]).toBeCloseTo(injected, 6)
    })
    expect([0, 1, 2, 3, 4, 6].map((s) => isContrastStep(s, 3))).toEqual([true, false, false, true, false, true])
    expect(isContrastStep(0, 0)).toBe(false)
    disposeLora(model.lora!)
    disposeLlama(model)
  })

  it("contrast signs: paper 0.05·max(0, L_SFT − L_zero), code 0.05·max(0, L_zero − L_SFT)", () => {
    tf.tidy(() => {
      const v = (a: number, b: number, sign: "paper" | "code") => contrastTerm(tf.scalar(a), tf.scalar(b), sign, 0.05).dataSync()[0]
      expect(v(2, 1.5, "paper")).toBeCloseTo(0.025, 7) // removing the slots helps: penalised
      expect(v(2, 1.5, "code")).toBe(0)
      expect(v(1.5, 2, "paper")).toBe(0)
      expect(v(1.5, 2, "code")).toBeCloseTo(0.025, 7) // the code penalises the slots helping
      const g = tf.grad((x: tf.Tensor) => contrastTerm(x as tf.Scalar, tf.scalar(1.5), "paper", 0.05))(tf.scalar(2)).dataSync()[0]
      expect(g).toBeCloseTo(0.05, 7)
    })
    const model = make()
    tf.tidy(() => {
      const slots = tf.tensor3d(slotValues, [2, 2, d])
      const teacher = tf.tensor2d(randn(2 * d, 8), [2, d])
      const run = (sign: "paper" | "code") =>
        stageBLoss(
          { model, input: { ids, attentionMask: mask }, slotPositions: positions, targets, slots, teacher, withZero: true, training: false },
          config({ contrastSign: sign, cosWeight: 0.3, nceWeight: 0.2 })
        )
      const paper = run("paper")
      const code = run("code")
      const [lsft, lzero, cos, nce] = [paper.lsft, paper.lzero!, paper.cos, paper.nce].map((t) => t.dataSync()[0])
      expect(paper.contrast.dataSync()[0]).toBeCloseTo(0.05 * Math.max(0, lsft - lzero), 6)
      expect(code.contrast.dataSync()[0]).toBeCloseTo(0.05 * Math.max(0, lzero - lsft), 6)
      expect(paper.contrast.dataSync()[0] === 0).not.toBe(code.contrast.dataSync()[0] === 0) // exactly one is active
      expect(paper.total.dataSync()[0]).toBeCloseTo(lsft + paper.contrast.dataSync()[0] + 0.3 * cos + 0.2 * nce, 5)
      expect(code.total.dataSync()[0]).toBeCloseTo(lsft + code.contrast.dataSync()[0] + 0.3 * cos + 0.2 * nce, 5)
      expect(cos).toBeCloseTo(cosRef(slotValues, teacher.dataSync(), 2, 2, d, "one-minus-cos"), 5)
    })
    disposeLora(model.lora!)
    disposeLlama(model)
  })

  it("gradients reach the slot vectors through the embedding override (directional finite difference)", () => {
    const model = make()
    const dir = randn(2 * 2 * d, 11)
    const loss = (s: tf.Tensor3D) => lmLoss(model, { ids, attentionMask: mask, overrides: slotOverrides(s, positions) }, targets, false)
    const { analytic, numeric } = tf.tidy(() => {
      const s0 = tf.tensor3d(slotValues, [2, 2, d])
      const g = tf.grad((s: tf.Tensor) => loss(s as tf.Tensor3D))(s0)
      const analytic = tf.sum(tf.mul(g, tf.tensor3d(dir, [2, 2, d]))).dataSync()[0]
      const eps = 1e-2
      const at = (t: number) => loss(tf.add(s0, tf.mul(tf.tensor3d(dir, [2, 2, d]), t)) as tf.Tensor3D).dataSync()[0]
      return { analytic, numeric: (at(eps) - at(-eps)) / (2 * eps) }
    })
    expect(Math.abs(analytic)).toBeGreaterThan(1e-3)
    expect(Math.abs(analytic - numeric)).toBeLessThan(2e-2 * Math.abs(analytic) + 1e-4)
    disposeLora(model.lora!)
    disposeLlama(model)
  })
})
