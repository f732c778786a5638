import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { tinyLlamaConfig } from "../../src/models/hfconfig.ts"
import type { LlamaModel } from "../../src/models/llama.ts"
import {
  additiveMask,
  bannedNgramTokens,
  disposeLlama,
  forward,
  generate,
  groupedAttention,
  llamaFromWeights,
  lmLogits,
  rmsNorm,
  rope,
  ropeInvFreq
} from "../../src/models/llama.ts"
import { makeRng } from "../../src/models/rng.ts"
import { maskedMaxDiff, oddLlama, randomIds, randomLlamaWeights, setupCpu, smallLlama, toMats } from "../support/modelFixtures.ts"
import type { Mat } from "../support/reference.ts"
import { attention, llama3InvFreq, llamaLogits, llamaReference, maxAbsDiff, rmsNorm as refRmsNorm, ropeVec } from "../support/reference.ts"

const TOL = 1e-4

const build = (config = smallLlama, seed = 7): { model: LlamaModel; weights: ReturnType<typeof randomLlamaWeights> } => {
  const weights = randomLlamaWeights(config, seed)
  const model = Effect.runSync(llamaFromWeights(config, weights, "<memory>"))
  return { model, weights }
}

const ones = (B: number, T: number) => Array.from({ length: B }, () => new Array<number>(T).fill(1))

beforeAll(setupCpu)

describe("llama components vs the float64 reference", () => {
  it("rope inverse frequencies follow the llama3 formula in all three regimes", () => {
    const got = ropeInvFreq(tinyLlamaConfig)
    const want = llama3InvFreq(tinyLlamaConfig)
    expect(got.length).toBe(8)
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]) / want[i]).toBeLessThan(1e-6)
    // head_dim 16, θ = 500000: i = 4 is in the smoothed band, i ≥ 5 divided by 32, i ≤ 3 untouched.
    const raw = (i: number) => Math.pow(500000, -(2 * i) / 16)
    expect(got[0]).toBeCloseTo(raw(0), 6)
    expect(got[6] / raw(6)).toBeCloseTo(1 / 32, 6)
    expect(got[4] / raw(4)).toBeGreaterThan(1 / 32)
    expect(got[4] / raw(4)).toBeLessThan(1)
  })

  it("rotate-half rope matches at scattered positions", () => {
    const inv = ropeInvFreq(tinyLlamaConfig)
    const rng = makeRng(3)
    const data = Array.from({ length: 2 * 3 * 16 }, () => rng.normal())
    const positions = [[0, 1, 300]]
    const out = tf.tidy(() => rope(tf.tensor4d(data, [1, 2, 3, 16]), positions, inv).arraySync())
    const refInv = llama3InvFreq(tinyLlamaConfig)
    let diff = 0
    for (let h = 0; h < 2; h++) {
      for (let t = 0; t < 3; t++) {
        const x = data.slice((h * 3 + t) * 16, (h * 3 + t + 1) * 16)
        diff = Math.max(diff, maxAbsDiff(out[0][h][t], ropeVec(x, positions[0][t], refInv)))
      }
    }
    expect(diff).toBeLessThan(TOL)
  })

  it("rmsNorm matches", () => {
    const rng = makeRng(4)
    const x = Array.from({ length: 3 * 10 }, () => 3 * rng.normal())
    const w = Float32Array.from({ length: 10 }, () => 1 + rng.normal())
    const got = tf.tidy(() => rmsNorm(tf.tensor2d(x, [3, 10]), tf.tensor1d(w), 1e-5).dataSync())
    const want = [0, 1, 2].flatMap((r) => [...refRmsNorm(Float64Array.from(x.slice(r * 10, r * 10 + 10)), { shape: [10], data: w }, 1e-5)])
    expect(maxAbsDiff(got, want)).toBeLessThan(TOL)
  })

  it("grouped-query attention with causal and padding masks matches", () => {
    const B = 2
    const nH = 6
    const nKV = 2
    const T = 5
    const d = 4
    const rng = makeRng(5)
    const rand = (n: number) => Array.from({ length: n }, () => rng.normal())
    const q = rand(B * nH * T * d)
    const k = rand(B * nKV * T * d)
    const v = rand(B * nKV * T * d)
    const mask = [
      [0, 0, 1, 1, 1],
      [1, 1, 1, 1, 0]
    ]
    const got = tf.tidy(() =>
      groupedAttention(
        tf.mul(tf.tensor4d(q, [B, nH, T, d]), 1 / Math.sqrt(d)) as tf.Tensor4D,
        tf.tensor4d(k, [B, nKV, T, d]),
        tf.tensor4d(v, [B, nKV, T, d]),
        additiveMask(mask, T)
      ).arraySync()
    )
    let diff = 0
    for (let b = 0; b < B; b++) {
      // reference layout: rows [T][heads·d]
      const rows = (src: Array<number>, heads: number): Mat =>
        Array.from({ length: T }, (_, t) => {
          const r = new Float64Array(heads * d)
          for (let h = 0; h < heads; h++) for (let i = 0; i < d; i++) r[h * d + i] = src[((b * heads + h) * T + t) * d + i]
          return r
        })
      const ref = attention(rows(q, nH), rows(k, nKV), rows(v, nKV), nH, nKV, d, (t, s) => s <= t && mask[b][s] === 1)
      for (let t = 0; t < T; t++) {
        if (!mask[b][t]) continue
        for (let h = 0; h < nH; h++) diff = Math.max(diff, maxAbsDiff(got[b][h][t], ref[t].subarray(h * d, (h + 1) * d)))
      }
    }
    expect(diff).toBeLessThan(TOL)
  })
})

describe("llama forward vs the float64 reference", () => {
  it("tiny GQA model with llama3 rope and tied head: hidden states and logits", () => {
    const { model, weights } = build()
    const ids = randomIds(11, 2, 9, smallLlama.vocab_size)
    const mask = ones(2, 9)
    const out = forward(model, { ids }, { logits: true })
    const ref = llamaReference(smallLlama, weights, ids, mask)
    expect(out.hidden.shape).toEqual([2, 9, 32])
    expect(maskedMaxDiff(toMats(out.hidden), ref, mask)).toBeLessThan(TOL)
    const refLogits = ref.map((rows) => llamaLogits(rows, weights.get("model.embed_tokens.weight")!))
    expect(out.logits!.shape).toEqual([2, 9, 61])
    expect(maskedMaxDiff(toMats(out.logits!), refLogits, mask)).toBeLessThan(TOL)
    tf.dispose([out.hidden, out.logits!])
    disposeLlama(model)
  })

  it("one KV head, head_dim ≠ hidden/heads, untied head, no rope scaling", () => {
    const { model, weights } = build(oddLlama, 8)
    expect(model.tied).toBe(false)
    const ids = randomIds(12, 1, 6, oddLlama.vocab_size)
    const out = forward(model, { ids }, { logits: true })
    const ref = llamaReference(oddLlama, weights, ids, ones(1, 6))
    expect(maskedMaxDiff(toMats(out.hidden), ref, ones(1, 6))).toBeLessThan(TOL)
    const refLogits = ref.map((rows) => llamaLogits(rows, weights.get("lm_head.weight")!))
    expect(maskedMaxDiff(toMats(out.logits!), refLogits, ones(1, 6))).toBeLessThan(TOL)
    tf.dispose([out.hidden, out.logits!])
    disposeLlama(model)
  })

  it("left- and right-padded batches give the unpadded hidden states at the real tokens", () => {
    const { model } = build()
    const a = randomIds(21, 1, 7, 61)[0]
    const b = randomIds(22, 1, 4, 61)[0]
    const alone = (seq: Array<number>) => {
      const h = forward(model, { ids: [seq] }).hidden
      const m = toMats(h)[0]
      h.dispose()
      return m
    }
    const ha = alone(a)
    const hb = alone(b)
    const pad = 0
    const left = { ids: [a, [pad, pad, pad, ...b]], attentionMask: [ones(1, 7)[0], [0, 0, 0, 1, 1, 1, 1]] }
    const right = { ids: [a, [...b, pad, pad, pad]], attentionMask: [ones(1, 7)[0], [1, 1, 1, 1, 0, 0, 0]] }
    for (const [batch, offset] of [[left, 3], [right, 0]] as const) {
      const h = forward(model, batch).hidden
      const m = toMats(h)
      h.dispose()
      let diff = 0
      for (let t = 0; t < 7; t++) diff = Math.max(diff, maxAbsDiff(m[0][t], ha[t]))
      for (let t = 0; t < 4; t++) diff = Math.max(diff, maxAbsDiff(m[1][t + offset], hb[t]))
      expect(diff).toBeLessThan(TOL)
    }
    // The same through the reference (positions restart at 0 after left padding).
    disposeLlama(model)
  })

  it("padded batch matches the reference at the real tokens", () => {
    const { model, weights } = build(smallLlama, 9)
    const ids = randomIds(23, 2, 6, 61)
    const mask = [
      [0, 0, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 0]
    ]
    const h = forward(model, { ids, attentionMask: mask }).hidden
    expect(maskedMaxDiff(toMats(h), llamaReference(smallLlama, weights, ids, mask), mask)).toBeLessThan(TOL)
    h.dispose()
    disposeLlama(model)
  })

  it("gather returns the rows at the chosen coordinates", () => {
    const { model } = build()
    const ids = randomIds(24, 2, 5, 61)
    const all = forward(model, { ids })
    const some = forward(model, { ids }, { gather: { batch: [1, 0, 1], position: [4, 2, 0] }, logits: true })
    expect(some.hidden.shape).toEqual([3, 32])
    expect(some.logits!.shape).toEqual([3, 61])
    const m = toMats(all.hidden)
    const g = some.hidden.arraySync() as Array<Array<number>>
    expect(maxAbsDiff(g[0], m[1][4])).toBe(0)
    expect(maxAbsDiff(g[1], m[0][2])).toBe(0)
    expect(maxAbsDiff(g[2], m[1][0])).toBe(0)
    const viaHead = lmLogits(model, some.hidden)
    expect(maxAbsDiff(viaHead.dataSync(), some.logits!.dataSync())).toBe(0)
    tf.dispose([all.hidden, some.hidden, some.logits!, viaHead])
    disposeLlama(model)
  })
})

describe("embedding overrides", () => {
  const ids = [
    [1, 10, 11, 12, 13, 14],
    [0, 1, 20, 21, 22, 23]
  ]
  const mask = [
    [1, 1, 1, 1, 1, 1],
    [0, 1, 1, 1, 1, 1]
  ]
  const coords = { batch: [0, 0, 1], position: [2, 3, 4] }
  const vecs = (() => {
    const rng = makeRng(31)
    return Array.from({ length: 3 }, () => Array.from({ length: 32 }, () => rng.normal()))
  })()

  it("replace the input embeddings at the given coordinates (matches the reference)", () => {
    const { model, weights } = build()
    const v = tf.tensor2d(vecs)
    const h = forward(model, { ids, attentionMask: mask, overrides: { ...coords, vectors: v } }).hidden
    const ref = llamaReference(smallLlama, weights, ids, mask, { overrides: { ...coords, vectors: vecs } })
    expect(maskedMaxDiff(toMats(h), ref, mask)).toBeLessThan(TOL)
    // and they change the output after the overridden positions, not before
    const plain = forward(model, { ids, attentionMask: mask }).hidden
    const a = toMats(h)
    const p = toMats(plain)
    expect(maxAbsDiff(a[0][1], p[0][1])).toBeLessThan(1e-6)
    expect(maxAbsDiff(a[0][2], p[0][2])).toBeGreaterThan(1e-2)
    tf.dispose([v, h, plain])
    disposeLlama(model)
  })

  it("gradient w.r.t. the injected vectors matches finite differences", () => {
    const { model, weights } = build()
    const rng = makeRng(32)
    const outPos = { batch: [0, 0, 1, 1], position: [3, 5, 4, 5] }
    const R = Array.from({ length: 4 }, () => Array.from({ length: 32 }, () => rng.normal()))
    const loss = (v: tf.Tensor): tf.Tensor =>
      tf.sum(tf.mul(forward(model, { ids, attentionMask: mask, overrides: { ...coords, vectors: v as tf.Tensor2D } }, { gather: outPos }).hidden, tf.tensor2d(R)))
    const v = tf.tensor2d(vecs)
    const grad = tf.grad(loss)(v) as tf.Tensor2D
    const g = grad.arraySync()
    const refLoss = (vs: Array<Array<number>>): number => {
      const hid = llamaReference(smallLlama, weights, ids, mask, { overrides: { ...coords, vectors: vs } })
      let s = 0
      outPos.batch.forEach((b, i) => {
        const row = hid[b][outPos.position[i]]
        for (let j = 0; j < 32; j++) s += row[j] * R[i][j]
      })
      return s
    }
    const eps = 1e-5
    for (const [i, j] of [[0, 0], [0, 17], [1, 5], [1, 31], [2, 9], [2, 30]]) {
      const plus = vecs.map((r) => [...r])
      const minus = vecs.map((r) => [...r])
      plus[i][j] += eps
      minus[i][j] -= eps
      const fd = (refLoss(plus) - refLoss(minus)) / (2 * eps)
      expect(Math.abs(g[i][j] - fd)).toBeLessThan(1e-3 * Math.max(1, Math.abs(fd)))
    }
    // A vector whose row is never read by the loss positions gets no gradient beyond what the mask allows:
    // every gradient is finite.
    expect(g.flat().every(Number.isFinite)).toBe(true)
    tf.dispose([v, grad])
    disposeLlama(model)
  })
})

describe("vocabulary extension", () => {
  it("adds rows to the embedding; a tied head covers them", () => {
    const weights = randomLlamaWeights(smallLlama, 7)
    const model = Effect.runSync(llamaFromWeights(smallLlama, weights, "<memory>", { extraRows: 3, embeddingInit: "zeros" }))
    expect(model.config.vocab_size).toBe(64)
    expect(model.embed.shape).toEqual([64, 32])
    expect(model.lmHead).toBe(model.embed)
    const out = forward(model, { ids: [[1, 61, 62, 63]] }, { logits: true })
    expect(out.logits!.shape).toEqual([1, 4, 64])
    const l = out.logits!.arraySync() as Array<Array<Array<number>>>
    expect(l[0][3].slice(61)).toEqual([0, 0, 0]) // zero rows → zero logits
    tf.dispose([out.hidden, out.logits!])
    expect(() => forward(model, { ids: [[64]] })).toThrow(/outside/)
    disposeLlama(model)
    const untied = Effect.runSync(llamaFromWeights(oddLlama, randomLlamaWeights(oddLlama, 3), "<memory>", { extraRows: 2, embeddingInit: "mean" }))
    expect(untied.lmHead.shape).toEqual([63, 32])
    disposeLlama(untied)
  })

  it("fails with an error naming a missing tensor and the checkpoint", () => {
    const weights = randomLlamaWeights(smallLlama, 7)
    weights.delete("model.layers.1.mlp.up_proj.weight")
    const r = Effect.runSync(Effect.flip(llamaFromWeights(smallLlama, weights, "/ckpt/dir")))
    expect(r.tensor).toBe("model.layers.1.mlp.up_proj.weight")
    expect(r.message).toContain("/ckpt/dir")
  })
})

describe("generation", () => {
  it("bans tokens that would repeat an n-gram (HF semantics)", () => {
    expect([...bannedNgramTokens([5, 6, 7, 5, 6], 3)]).toEqual([7])
    expect([...bannedNgramTokens([5, 6, 7, 5, 6], 2)].sort()).toEqual([7])
    expect([...bannedNgramTokens([5, 5, 5], 2)]).toEqual([5])
    expect([...bannedNgramTokens([1, 2], 3)]).toEqual([])
    expect([...bannedNgramTokens([1, 2, 1, 3, 1], 2)].sort()).toEqual([2, 3])
  })

  it("KV-cache generation equals full recomputation; batched equals one by one", async () => {
    const { model } = build(smallLlama, 13)
    const prompts = [randomIds(41, 1, 5, 61)[0], randomIds(42, 1, 2, 61)[0], randomIds(43, 1, 8, 61)[0]]
    for (const noRepeatNgramSize of [0, 3]) {
      const opts = { maxNewTokens: 10, stopIds: [], noRepeatNgramSize, padId: 0 }
      const cached = (await generate(model, prompts, opts))
      const full = (await generate(model, prompts, { ...opts, useCache: false }))
      expect(cached.tokens).toEqual(full.tokens)
      expect(cached.tokens.every((t) => t.length === 10)).toBe(true)
      for (let b = 0; b < prompts.length; b++) {
        expect((await generate(model, [prompts[b]], opts)).tokens[0]).toEqual(cached.tokens[b])
      }
      if (noRepeatNgramSize === 3) {
        for (let b = 0; b < prompts.length; b++) {
          const seq = [...prompts[b], ...cached.tokens[b]]
          const seen = new Set<string>()
          for (let i = 0; i + 3 <= seq.length; i++) {
            const key = seq.slice(i, i + 3).join(",")
            expect(seen.has(key)).toBe(false)
            seen.add(key)
          }
        }
      }
    }
    disposeLlama(model)
  })

  it("greedy decoding equals a plain argmax loop over the float64 reference forward", async () => {
    // independent of `generate`'s own machinery (KV cache, padding, pickNext): recompute the whole sequence with
    // the reference each step and take the arg max (lowest id on a tie), batch of one
    const { model, weights } = build(smallLlama, 13)
    const head = weights.get("model.embed_tokens.weight")!
    const prompts = [randomIds(41, 1, 5, 61)[0], randomIds(42, 1, 2, 61)[0], randomIds(43, 1, 8, 61)[0]]
    const got = await generate(model, prompts, { maxNewTokens: 8, stopIds: [], noRepeatNgramSize: 0, padId: 0 })
    let closest = Infinity
    for (let b = 0; b < prompts.length; b++) {
      const seq = [...prompts[b]]
      const want: Array<number> = []
      for (let n = 0; n < 8; n++) {
        const rows = llamaReference(smallLlama, weights, [seq], [seq.map(() => 1)])[0]
        const logits = llamaLogits([rows[rows.length - 1]], head)[0]
        let best = 0
        for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v
        const second = Math.max(...Array.from(logits).filter((_, v) => v !== best))
        closest = Math.min(closest, logits[best] - second)
        want.push(best)
        seq.push(best)
      }
      expect(got.tokens[b], `prompt ${b}`).toEqual(want)
    }
    // the comparison means something only if no step was a near tie that float32 could flip
    expect(closest).toBeGreaterThan(1e-3)
    disposeLlama(model)
  })

  it("stops a row at a stop id (not included) while the others go on", async () => {
    const { model } = build(smallLlama, 13)
    const prompts = [randomIds(41, 1, 5, 61)[0], randomIds(43, 1, 8, 61)[0]]
    const free = (await generate(model, prompts, { maxNewTokens: 6, stopIds: [], padId: 0 }))
    const stopAt = free.tokens[0][2]
    const firstIndex = free.tokens[0].indexOf(stopAt)
    const r = (await generate(model, prompts, { maxNewTokens: 6, stopIds: [stopAt], padId: 0 }))
    expect(r.tokens[0]).toEqual(free.tokens[0].slice(0, firstIndex))
    expect(r.stopped[0]).toBe(true)
    const other = free.tokens[1].indexOf(stopAt)
    expect(r.tokens[1]).toEqual(other < 0 ? free.tokens[1] : free.tokens[1].slice(0, other))
    disposeLlama(model)
  })

  it("uses overrides given relative to each unpadded prompt", async () => {
    const { model } = build(smallLlama, 13)
    const prompts = [[1, 9, 9, 9, 5], [1, 9, 5]]
    const rng = makeRng(44)
    const vec = Array.from({ length: 2 }, () => Array.from({ length: 32 }, () => 2 * rng.normal()))
    const v = tf.tensor2d(vec)
    const overrides = { batch: [0, 1], position: [2, 1], vectors: v }
    const both = (await generate(model, prompts, { maxNewTokens: 5, stopIds: [], padId: 0, overrides }))
    const full = (await generate(model, prompts, { maxNewTokens: 5, stopIds: [], padId: 0, overrides, useCache: false }))
    expect(both.tokens).toEqual(full.tokens)
    const v1 = tf.tensor2d([vec[1]])
    const single = (await generate(model, [prompts[1]], { maxNewTokens: 5, stopIds: [], padId: 0, overrides: { batch: [0], position: [1], vectors: v1 } }))
    expect(single.tokens[0]).toEqual(both.tokens[1])
    tf.dispose([v, v1])
    disposeLlama(model)
  })

  it("feeds a steer's replacement back, per row, as if the model had picked it", async () => {
    // row 0's steer replaces its 3rd pick with token 7; the rest of row 0 must equal greedy decoding of the prompt
    // extended by the first two picks and 7; row 1 (no steer) must equal its free run
    const { model } = build(smallLlama, 13)
    const prompts = [randomIds(41, 1, 5, 61)[0], randomIds(43, 1, 8, 61)[0]]
    const opts = { maxNewTokens: 6, stopIds: [], padId: 0, noRepeatNgramSize: 0 }
    const free = await generate(model, prompts, opts)
    let calls = 0
    const seen: Array<number> = []
    const steer = [(picked: number) => {
      seen.push(picked)
      return ++calls === 3 ? 7 : picked
    }, undefined]
    const steered = await generate(model, prompts, { ...opts, steer })
    expect(calls).toBe(6)
    expect(seen.slice(0, 3)).toEqual(free.tokens[0].slice(0, 3))
    expect(steered.tokens[0].slice(0, 3)).toEqual([...free.tokens[0].slice(0, 2), 7])
    const resumed = await generate(model, [[...prompts[0], ...steered.tokens[0].slice(0, 3)]], { ...opts, maxNewTokens: 3 })
    expect(steered.tokens[0].slice(3)).toEqual(resumed.tokens[0])
    expect(steered.tokens[1]).toEqual(free.tokens[1])
    // the comparison means something only if 7 was not the model's own third pick
    expect(free.tokens[0][2]).not.toBe(7)
    disposeLlama(model)
  })
})

describe("memory", () => {
  it("forward, gradients and generation leave the tensor count unchanged", async () => {
    const { model } = build()
    const ids = randomIds(51, 2, 5, 61)
    const run = async () => {
      const out = forward(model, { ids, attentionMask: [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]] }, { logits: true })
      tf.dispose([out.hidden, out.logits!])
      const v = tf.ones([1, 32]) as tf.Tensor2D
      const g = tf.grad((x: tf.Tensor) =>
        tf.sum(forward(model, { ids, overrides: { batch: [0], position: [1], vectors: x as tf.Tensor2D } }).hidden)
      )(v)
      tf.dispose([v, g])
      await generate(model, [ids[0], ids[1].slice(2)], { maxNewTokens: 4, stopIds: [], padId: 0 })
      await generate(model, [ids[0]], { maxNewTokens: 3, stopIds: [], padId: 0, useCache: false })
    }
    await run() // warm-up
    const before = tf.memory().numTensors
    await run()
    expect(tf.memory().numTensors).toBe(before)
    disposeLlama(model)
  })
})
