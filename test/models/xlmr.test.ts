import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { makeRng } from "../../src/models/rng.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"
import {
  disposeXlmr,
  embedSentences,
  encode,
  geluErf,
  layerNorm,
  padBatch,
  pool,
  xlmrFromWeights,
  xlmrPositionIds
} from "../../src/models/xlmr.ts"
import { maskedMaxDiff, randomIds, randomXlmrWeights, setupCpu, smallXlmr, toMats } from "../support/modelFixtures.ts"
import { erf, geluErf as refGelu, layerNorm as refLayerNorm, maskMeanPool, maxAbsDiff, xlmrReference } from "../support/reference.ts"

const TOL = 1e-4

beforeAll(setupCpu)

describe("xlmr components vs the float64 reference", () => {
  it("the reference erf is accurate", () => {
    expect(erf(0)).toBe(0)
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 12)
    expect(erf(-1.5)).toBeCloseTo(-0.9661051464753108, 12)
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 12)
    expect(erf(4.5)).toBeCloseTo(0.9999999998033839, 12)
  })

  it("GELU (erf form) matches", () => {
    const xs = Array.from({ length: 81 }, (_, i) => -10 + i * 0.25)
    const got = tf.tidy(() => geluErf(tf.tensor1d(xs)).dataSync())
    expect(maxAbsDiff(got, xs.map(refGelu))).toBeLessThan(TOL)
  })

  it("LayerNorm matches", () => {
    const rng = makeRng(1)
    const x = Array.from({ length: 4 * 12 }, () => 2 + 3 * rng.normal())
    const w = Float32Array.from({ length: 12 }, () => 1 + rng.normal())
    const b = Float32Array.from({ length: 12 }, () => rng.normal())
    const got = tf.tidy(() => layerNorm(tf.tensor2d(x, [4, 12]), { weight: tf.tensor1d(w), bias: tf.tensor1d(b) }, 1e-5).dataSync())
    const want = [0, 1, 2, 3].flatMap((r) => [
      ...refLayerNorm(Float64Array.from(x.slice(r * 12, r * 12 + 12)), { shape: [12], data: w }, { shape: [12], data: b }, 1e-5)
    ])
    expect(maxAbsDiff(got, want)).toBeLessThan(TOL)
  })

  it("mask-mean pooling matches (special tokens included, padding excluded)", () => {
    const rng = makeRng(2)
    const h = Array.from({ length: 2 * 4 * 3 }, () => rng.normal())
    const mask = [
      [1, 1, 1, 1],
      [1, 1, 0, 0]
    ]
    const got = tf.tidy(() => pool(tf.tensor3d(h, [2, 4, 3]), mask).arraySync())
    for (let b = 0; b < 2; b++) {
      const rows = Array.from({ length: 4 }, (_, t) => Float64Array.from(h.slice((b * 4 + t) * 3, (b * 4 + t + 1) * 3)))
      expect(maxAbsDiff(got[b], maskMeanPool(rows, mask[b]))).toBeLessThan(1e-6)
    }
  })

  it("position ids start at pad + 1 and padding keeps pad", () => {
    expect(xlmrPositionIds([[0, 5, 6, 2, 1, 1]], 1)).toEqual([[2, 3, 4, 5, 1, 1]])
  })
})

describe("xlmr forward vs the float64 reference", () => {
  const weights = randomXlmrWeights(smallXlmr, 5)

  it("a right-padded batch matches at every real token", () => {
    const model = Effect.runSync(xlmrFromWeights(smallXlmr, weights, "<memory>"))
    const seqs = [[0, ...randomIds(3, 1, 7, 50)[0], 2], [0, ...randomIds(4, 1, 3, 50)[0], 2]]
    const { ids, attentionMask } = padBatch(seqs, smallXlmr.pad_token_id)
    expect(attentionMask[1]).toEqual([1, 1, 1, 1, 1, 0, 0, 0, 0])
    const h = encode(model, { ids })
    expect(h.shape).toEqual([2, 9, 24])
    const ref = xlmrReference(smallXlmr, weights, ids, attentionMask)
    expect(maskedMaxDiff(toMats(h), ref, attentionMask)).toBeLessThan(TOL)

    // Unpadded, row 1 alone gives the same states.
    const alone = encode(model, { ids: [seqs[1]] })
    const a = toMats(alone)[0]
    const m = toMats(h)[1]
    for (let t = 0; t < seqs[1].length; t++) expect(maxAbsDiff(a[t], m[t])).toBeLessThan(TOL)

    // Sentence vectors = mask-mean of the reference states.
    const z = embedSentences(model, { ids })
    const zr = z.arraySync()
    for (let b = 0; b < 2; b++) expect(maxAbsDiff(zr[b], maskMeanPool(ref[b], attentionMask[b]))).toBeLessThan(TOL)
    tf.dispose([h, alone, z])
    disposeXlmr(model)
  })

  it("accepts tensor names with the roberta. prefix", () => {
    const prefixed = new Map<string, HostTensor>([...weights].map(([k, v]) => [`roberta.${k}`, v]))
    const model = Effect.runSync(xlmrFromWeights(smallXlmr, prefixed, "<memory>"))
    const ids = [[0, 7, 8, 9, 2]]
    const h = encode(model, { ids })
    expect(maskedMaxDiff(toMats(h), xlmrReference(smallXlmr, weights, ids, [[1, 1, 1, 1, 1]]), [[1, 1, 1, 1, 1]])).toBeLessThan(TOL)
    h.dispose()
    disposeXlmr(model)
  })

  it("a missing tensor fails with its name and the checkpoint", () => {
    const broken = new Map(weights)
    broken.delete("encoder.layer.1.attention.self.key.bias")
    const err = Effect.runSync(Effect.flip(xlmrFromWeights(smallXlmr, broken, "/snap/xlmr")))
    expect(err._tag).toBe("CheckpointError")
    expect(err.tensor).toBe("encoder.layer.1.attention.self.key.bias")
    expect(err.message).toContain("/snap/xlmr")
    const misshaped = new Map(weights)
    misshaped.set("embeddings.LayerNorm.bias", { shape: [3], data: new Float32Array(3) })
    const err2 = Effect.runSync(Effect.flip(xlmrFromWeights(smallXlmr, misshaped, "/snap/xlmr")))
    expect(err2.message).toContain("expected [24]")
  })

  it("encoding leaves the tensor count unchanged", () => {
    const model = Effect.runSync(xlmrFromWeights(smallXlmr, weights, "<memory>"))
    const run = () => {
      tf.dispose([encode(model, { ids: [[0, 5, 2, 1]] }), embedSentences(model, { ids: [[0, 5, 6, 2]] })])
    }
    run()
    const before = tf.memory().numTensors
    run()
    expect(tf.memory().numTensors).toBe(before)
    disposeXlmr(model)
  })
})
