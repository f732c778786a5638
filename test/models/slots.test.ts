/**
 * The slot module (src/models/slots.ts): shapes, the ForeignScale rule and its initial scale (median row norm of the
 * embedding matrix), the adapter gate clamp, the expander's per-slot LayerNorm, seeded init, overrides and files —
 * each checked against a plain-loop reference.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { slotsReference } from "../support/adapterReference.ts"
import * as Projector from "../../src/models/projector.ts"
import { makeRng } from "../../src/models/rng.ts"
import {
  adapterGate,
  assignSlots,
  disposeSlots,
  foreignScale,
  gatedAdapter,
  initSlotHost,
  initSlots,
  loadSlotHost,
  makeSlotConfig,
  medianRowNorm,
  resolveScaleInit,
  saveSlots,
  SLOT_PARAM_NAMES,
  slotForward,
  meanOfSlots,
  slotOverrides,
  slotParamCount,
  slotParamShapes,
  slotsFromHost,
  slotsFromZ,
  slotsToHost
} from "../../src/models/slots.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-slots-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
beforeAll(async () => {
  await tf.setBackend("cpu")
})

const randn = (n: number, seed: number, scale = 1): Float32Array => {
  const r = makeRng(seed)
  return Float32Array.from({ length: n }, () => scale * r.normal())
}

const referenceSlots = slotsReference

describe("slot module", () => {
  it("has the documented parameter shapes and maps [B, d] to [B, K, d]", () => {
    const c = makeSlotConfig(6, 3, { adapterHidden: 5, scaleInit: 2 })
    const shapes = slotParamShapes(c)
    expect(shapes["adapter.w1.weight"]).toEqual([5, 6])
    expect(shapes["adapter.w2.weight"]).toEqual([6, 5])
    expect(shapes["expander.net.0.weight"]).toEqual([12, 6])
    expect(shapes["expander.net.2.weight"]).toEqual([18, 12])
    expect(shapes["scale.scale"]).toEqual([])
    expect(slotParamCount(c)).toBe(1 + 6 + 6 + 30 + 5 + 30 + 6 + 1 + 72 + 12 + 216 + 18 + 6 + 6)
    expect(makeSlotConfig(6, 3).adapterHidden).toBe(6) // default: d, as the code
    const m = initSlots(c, 1)
    const out = tf.tidy(() => slotForward(m, tf.tensor2d(randn(4 * 6, 2), [4, 6])).arraySync())
    expect([out.length, out[0].length, out[0][0].length]).toEqual([4, 3, 6])
    expect(() => tf.tidy(() => slotForward(m, tf.zeros([2, 5]) as tf.Tensor2D))).toThrow(/width 5/)
    disposeSlots(m)
  })

  it("computes ForeignScale → gated adapter → expander → LayerNorm like a plain loop", () => {
    const d = 5
    const K = 3
    const c = makeSlotConfig(d, K, { adapterHidden: 4, scaleInit: 1.7 })
    const host = initSlotHost(c, 9)
    // non-trivial LayerNorm affines and biases so each one matters
    for (const name of ["adapter.ln.weight", "adapter.ln.bias", "adapter.w1.bias", "adapter.w2.bias", "expander.net.0.bias", "expander.net.2.bias", "expander.ln.weight", "expander.ln.bias"]) {
      const t = host.get(name)!
      host.set(name, { shape: t.shape, data: randn(t.data.length, name.length, 0.3).map((x) => x + (name.endsWith("ln.weight") ? 1 : 0)) })
    }
    const m = slotsFromHost(c, host)
    const v = randn(2 * d, 4, 3)
    const got = tf.tidy(() => slotForward(m, tf.tensor2d(v, [2, d])).arraySync())
    for (let b = 0; b < 2; b++) {
      const want = referenceSlots(host, Float64Array.from(v.subarray(b * d, (b + 1) * d)), d, K, 4, 0.7, 1e-5)
      for (let k = 0; k < K; k++) for (let i = 0; i < d; i++) expect(got[b][k][i]).toBeCloseTo(want[k][i], 4)
    }
    disposeSlots(m)
  })

  it("ForeignScale: unit-normalise then non-affine LayerNorm then × scale (zero mean, unit variance × scale)", () => {
    const m = initSlots(makeSlotConfig(8, 2, { scaleInit: 3 }), 2)
    const [a, b] = tf.tidy(() => {
      const v = tf.tensor2d(randn(16, 5, 4), [2, 8])
      return [foreignScale(m, v).arraySync(), foreignScale(m, tf.mul(v, 1000) as tf.Tensor2D).arraySync()]
    })
    for (const row of a) {
      const mean = row.reduce((x, y) => x + y, 0) / 8
      const variance = row.reduce((x, y) => x + (y - mean) ** 2, 0) / 8
      expect(mean).toBeCloseTo(0, 5)
      expect(Math.sqrt(variance)).toBeCloseTo(3, 3)
    }
    for (let i = 0; i < 8; i++) expect(b[0][i]).toBeCloseTo(a[0][i], 4) // invariant to the input's norm
    disposeSlots(m)
  })

  it("initial scale: the median row norm of the embedding matrix (paper) or 1.0 (code)", () => {
    const dim = 3
    const rows = [[3, 4, 0], [0, 0, 1], [1, 2, 2], [0, 6, 8], [2, 0, 0]] // norms 5, 1, 3, 10, 2
    const x = Float32Array.from(rows.flat())
    expect(medianRowNorm(x, 5, dim)).toBeCloseTo(3, 6)
    expect(medianRowNorm(x, 4, dim)).toBeCloseTo((3 + 5) / 2, 6) // even count: mean of the two middle norms
    expect(resolveScaleInit("median-embedding-norm", { data: x, rows: 5, dim })).toBeCloseTo(3, 6)
    expect(resolveScaleInit("one")).toBe(1)
    expect(() => resolveScaleInit("median-embedding-norm")).toThrow(/embedding/)
    // a random matrix: the rule equals a sort-based reference, and the module starts at that value
    const big = randn(101 * 7, 3, 0.02)
    const norms = Array.from({ length: 101 }, (_, r) => Math.hypot(...big.subarray(r * 7, (r + 1) * 7))).sort((p, q) => p - q)
    const s0 = resolveScaleInit("median-embedding-norm", { data: big, rows: 101, dim: 7 })
    expect(s0).toBeCloseTo(norms[50], 6)
    const m = initSlots(makeSlotConfig(7, 2, { scaleInit: s0 }), 1)
    expect(m.params.get("scale.scale")!.dataSync()[0]).toBeCloseTo(s0, 6)
    disposeSlots(m)
  })

  it("the adapter gate is clamp(tanh g, 0, 0.7): g₀ = 0.5 → tanh 0.5; g < 0 → identity; large g → 0.7", () => {
    const c = makeSlotConfig(4, 2)
    const host = initSlotHost(c, 3)
    expect(host.get("adapter.g")!.data[0]).toBe(0.5)
    const m = slotsFromHost(c, host)
    const x = tf.tensor2d(randn(8, 6), [2, 4])
    const gateAt = (g: number): number => {
      assignSlots(m, new Map([...host, ["adapter.g", { shape: [], data: Float32Array.of(g) }]]))
      return tf.tidy(() => adapterGate(m).dataSync()[0])
    }
    expect(gateAt(0.5)).toBeCloseTo(Math.tanh(0.5), 6)
    expect(gateAt(-2)).toBe(0)
    expect(tf.tidy(() => gatedAdapter(m, x).arraySync())).toEqual(x.arraySync()) // gate 0: exactly the identity
    expect(gateAt(5)).toBeCloseTo(0.7, 6)
    const residual = (g: number) =>
      tf.tidy(() => {
        gateAt(g)
        return tf.sub(gatedAdapter(m, x), x).arraySync() as number[][]
      })
    const r7 = residual(5)
    const r3 = residual(Math.atanh(0.3))
    for (let i = 0; i < 4; i++) expect(r7[0][i] * 0.3).toBeCloseTo(r3[0][i] * 0.7, 5) // the residual scales with the gate
    x.dispose()
    disposeSlots(m)
  })

  it("initialisation is seeded (xavier bounds, zero biases, unit LayerNorms) and files round-trip", async () => {
    const c = makeSlotConfig(6, 2, { scaleInit: 0.25 })
    const a = initSlotHost(c, 4)
    expect(initSlotHost(c, 4)).toEqual(a)
    expect(initSlotHost(c, 5).get("expander.net.2.weight")!.data).not.toEqual(a.get("expander.net.2.weight")!.data)
    const bound = (gain: number, fin: number, fout: number) => gain * Math.sqrt(6 / (fin + fout))
    expect(Math.max(...a.get("adapter.w1.weight")!.data.map(Math.abs))).toBeLessThanOrEqual(bound(0.5, 6, 6))
    expect(Math.max(...a.get("expander.net.2.weight")!.data.map(Math.abs))).toBeLessThanOrEqual(bound(0.1, 12, 12))
    expect([...a.get("expander.net.0.bias")!.data].every((v) => v === 0)).toBe(true)
    expect([...a.get("expander.ln.weight")!.data].every((v) => v === 1)).toBe(true)
    expect(a.get("scale.scale")!.data[0]).toBe(0.25)

    const m = initSlots(c, 4, { prefix: "slots-file-test/" })
    const file = path.join(tmp, "slots.safetensors")
    await Effect.runPromise(saveSlots(file, m))
    const back = await Effect.runPromise(loadSlotHost(file, c))
    expect([...back.keys()].sort()).toEqual([...SLOT_PARAM_NAMES].sort())
    for (const [k, v] of await slotsToHost(m)) expect(back.get(k)).toEqual(v)
    const wrong = await Effect.runPromise(Effect.flip(loadSlotHost(file, makeSlotConfig(6, 3))))
    expect(wrong.message).toMatch(/expander\.net\.2\.weight/)
    expect(() => initSlots(c, 4, { prefix: "slots-file-test/" })).toThrow(/already named/)
    disposeSlots(m)
  })

  it("slotOverrides places slot k of row b at positions[b][k]; slotsFromZ runs the frozen projector first", () => {
    const m = initSlots(makeSlotConfig(4, 2), 1)
    const proj = Projector.init(Projector.makeConfig(3, 4, { dHidden: 5 }), 2, { trainable: false })
    tf.tidy(() => {
      const z = tf.tensor2d(randn(6, 8), [2, 3])
      const slots = slotsFromZ(proj, m, z)
      const direct = slotForward(m, Projector.forward(proj, z, null))
      expect(slots.arraySync()).toEqual(direct.arraySync())
      const o = slotOverrides(slots, [[5, 7], [1, 2]])
      expect(o.batch).toEqual([0, 0, 1, 1])
      expect(o.position).toEqual([5, 7, 1, 2])
      const rows = o.vectors.arraySync()
      const s = slots.arraySync()
      expect(rows[1]).toEqual(s[0][1])
      expect(rows[2]).toEqual(s[1][0])
      expect(() => slotOverrides(slots, [[1, 2, 3], [4, 5, 6]])).toThrow(/expected 1 to 2/)
      expect(() => slotOverrides(slots, [[], [4, 5]])).toThrow(/expected 1 to 2/)
    })
    Projector.dispose(proj)
    disposeSlots(m)
  })

  it("a per-example K: row b takes its first K_b slots, the mean is over those, and gradients reach only them", () => {
    const [B, K, d] = [3, 4, 5]
    const x = randn(B * K * d, 21)
    const at = (b: number, k: number) => Array.from(x.subarray((b * K + k) * d, (b * K + k + 1) * d))
    const counts = [4, 1, 3]
    const positions = counts.map((c, b) => Array.from({ length: c }, (_, k) => 10 * b + k))
    tf.tidy(() => {
      const slots = tf.tensor3d(x, [B, K, d])
      const o = slotOverrides(slots, positions)
      expect(o.batch).toEqual([0, 0, 0, 0, 1, 2, 2, 2])
      expect(o.position).toEqual([0, 1, 2, 3, 10, 20, 21, 22])
      const rows = o.vectors.arraySync()
      const want = counts.flatMap((c, b) => Array.from({ length: c }, (_, k) => at(b, k)))
      rows.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(want[i][j], 6)))
      // the plain reference: a loop over each row's first K_b slots
      const mean = meanOfSlots(slots, counts).arraySync()
      counts.forEach((c, b) => {
        for (let j = 0; j < d; j++) {
          let sum = 0
          for (let k = 0; k < c; k++) sum += at(b, k)[j]
          expect(mean[b][j]).toBeCloseTo(sum / c, 5)
        }
      })
      // every row full: exactly the old reshape and tf.mean (the same tensor values, the same bytes)
      const full = Array.from({ length: B }, (_, b) => Array.from({ length: K }, (_, k) => 10 * b + k))
      expect(Array.from(slotOverrides(slots, full).vectors.dataSync())).toEqual(Array.from(x))
      expect(Array.from(meanOfSlots(slots, [K, K, K]).dataSync())).toEqual(Array.from(tf.mean(slots, 1).dataSync()))
      expect(() => meanOfSlots(slots, [1, 5, 1])).toThrow(/each 1 to 4/)
      // gradients of a loss on the overrides and the mean are zero exactly at the slots no row uses
      const g = tf.grad((s: tf.Tensor) => tf.add(tf.sum(tf.square(slotOverrides(s as tf.Tensor3D, positions).vectors)), tf.sum(meanOfSlots(s as tf.Tensor3D, counts))))(slots)
      const gv = g.arraySync() as Array<Array<Array<number>>>
      counts.forEach((c, b) => {
        for (let k = 0; k < K; k++) {
          const used = k < c
          for (let j = 0; j < d; j++) {
            if (used) expect(gv[b][k][j]).toBeCloseTo(2 * at(b, k)[j] + 1 / c, 4)
            else expect(gv[b][k][j]).toBe(0)
          }
        }
      })
    })
  })
})
