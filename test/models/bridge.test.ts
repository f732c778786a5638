/**
 * The peer bridges (src/models/bridge.ts) and their batches (src/train/bridge.ts) against plain float64 loops:
 * the LangBridge linear map and the MindMerger ReLU MLP, the placement of mapped states and end vectors in a batch,
 * the pooled (mean mapped) state of each text,
 * the zeroed-states control, gradients of a decoder loss through the bridge against central finite differences,
 * seeded init, and the file round trip.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { BridgeConfig, BridgeModule } from "../../src/models/bridge.ts"
import {
  bridgeFromHost,
  bridgeOverrides,
  bridgeParamCount,
  bridgeToHost,
  disposeBridge,
  initBridgeHost,
  loadBridgeHost,
  mapStates,
  meanMappedStates,
  saveBridge
} from "../../src/models/bridge.ts"
import { makeRng } from "../../src/models/rng.ts"
import { batchStates, bridgePromptIds } from "../../src/train/bridge.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bridge-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
beforeAll(async () => {
  await tf.setBackend("cpu")
})

const LB: BridgeConfig = { kind: "langbridge", dIn: 3, dOut: 4 }
const MM: BridgeConfig = { kind: "mindmerger", dIn: 3, dOut: 4 }

const rand = (n: number, seed: number) => {
  const r = makeRng(seed)
  return Float64Array.from({ length: n }, () => r.normal())
}

type Host = ReadonlyMap<string, { readonly data: Float32Array | Float64Array }>
const get = (h: Host, name: string) => h.get(name)!.data

/** Plain reference: x [N, d] → [N, D]. */
const refMap = (c: BridgeConfig, h: Host, x: Float64Array, N: number): Float64Array => {
  const lin = (w: ArrayLike<number>, b: ArrayLike<number>, inp: Float64Array, din: number, dout: number) => {
    const out = new Float64Array(N * dout)
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < dout; o++) {
        let s = b[o]
        for (let i = 0; i < din; i++) s += w[o * din + i] * inp[n * din + i]
        out[n * dout + o] = s
      }
    }
    return out
  }
  if (c.kind === "langbridge") return lin(get(h, "linear.weight"), get(h, "linear.bias"), x, c.dIn, c.dOut)
  const hid = lin(get(h, "mlp.linear1.weight"), get(h, "mlp.linear1.bias"), x, c.dIn, 2 * c.dIn).map((v) => Math.max(0, v))
  return lin(get(h, "mlp.linear2.weight"), get(h, "mlp.linear2.bias"), hid, 2 * c.dIn, c.dOut)
}

/** A host whose every parameter is random (the end vectors too, so they are checked). */
const randomHost = (c: BridgeConfig, seed: number) => {
  const host = initBridgeHost(c, seed)
  let k = 0
  for (const [name, t] of host) host.set(name, { shape: t.shape, data: Float32Array.from(rand(t.data.length, seed + ++k)) })
  return host
}

describe.each([["langbridge", LB], ["mindmerger", MM]] as const)("%s bridge", (_name, c) => {
  it("maps token states as the plain loop does and places them with the end vector", () => {
    const host = randomHost(c, 11)
    const m = bridgeFromHost(c, host, { trainable: false })
    const N = 5
    const x = rand(N * c.dIn, 3)
    const got = tf.tidy(() => mapStates(m, tf.tensor2d(Float32Array.from(x), [N, c.dIn]))).arraySync().flat()
    const want = refMap(c, host, x, N)
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5))

    // two examples: 2 and 3 states; example 0 starts at 1, example 1 at 1 in its own row
    const spans = [{ batch: 0, start: 1, length: 2 }, { batch: 1, start: 1, length: 3 }]
    let coords = { batch: [] as Array<number>, position: [] as Array<number> }
    const vt = tf.tidy(() => {
      const o = bridgeOverrides(m, tf.tensor2d(Float32Array.from(x), [N, c.dIn]), spans)
      coords = { batch: [...o.batch], position: [...o.position] }
      return o.vectors
    })
    const ov = { ...coords, vectors: vt.arraySync() }
    vt.dispose()
    expect(ov.batch).toEqual([0, 0, 0, 1, 1, 1, 1])
    expect(ov.position).toEqual([1, 2, 3, 1, 2, 3, 4])
    const end = Array.from(get(host, c.kind === "langbridge" ? "enc_eos" : "end_boundary"))
    const rows = [want.slice(0, 4), want.slice(4, 8), end, want.slice(8, 12), want.slice(12, 16), want.slice(16, 20), end]
    ov.vectors.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(rows[i][j], 5)))
    // the control: the mapped rows become zeros, the end vectors stay
    const zeroed = tf.tidy(() => bridgeOverrides(m, tf.tensor2d(Float32Array.from(x), [N, c.dIn]), spans, { zeroStates: true }).vectors.arraySync())
    zeroed.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(i === 2 || i === 6 ? end[j] : 0, 6)))
    disposeBridge(m)
  })

  it("pools each text's mapped states into their mean (the end vector left out), as the plain loop does", () => {
    const host = randomHost(c, 13)
    const m = bridgeFromHost(c, host, { trainable: false })
    const lengths = [2, 1, 4]
    const N = 7
    const x = rand(N * c.dIn, 8)
    const mapped = refMap(c, host, x, N)
    const got = tf.tidy(() => meanMappedStates(m, tf.tensor2d(Float32Array.from(x), [N, c.dIn]), lengths).arraySync())
    let row = 0
    lengths.forEach((len, i) => {
      for (let o = 0; o < c.dOut; o++) {
        let sum = 0
        for (let t = 0; t < len; t++) sum += mapped[(row + t) * c.dOut + o]
        expect(got[i][o]).toBeCloseTo(sum / len, 5)
      }
      row += len
    })
    expect(() => tf.tidy(() => meanMappedStates(m, tf.tensor2d(Float32Array.from(x), [N, c.dIn]), [2, 2]))).toThrow(/7 state rows for texts of 4 tokens/)
    disposeBridge(m)
  })

  it("has gradients that match central finite differences", () => {
    const host = randomHost(c, 21)
    const N = 4
    const x = rand(N * c.dIn, 5)
    const r = rand(N * c.dOut, 6)
    // f = Σ mapped ⊙ R + Σ end² (the end vector reaches the loss too)
    const endName = c.kind === "langbridge" ? "enc_eos" : "end_boundary"
    const f = (h: Host): number => {
      const y = refMap(c, h, x, N)
      let s = 0
      for (let i = 0; i < y.length; i++) s += y[i] * r[i]
      for (const v of get(h, endName)) s += v * v
      return s
    }
    const m = bridgeFromHost(c, host)
    const vars = [...m.params.entries()]
    const { grads } = tf.variableGrads(() =>
      tf.tidy(() => {
        const y = mapStates(m, tf.tensor2d(Float32Array.from(x), [N, c.dIn]))
        const e = m.params.get(endName)!
        return tf.add(tf.sum(tf.mul(y, tf.tensor2d(Float32Array.from(r), [N, c.dOut]))), tf.sum(tf.square(e))) as tf.Scalar
      }), vars.map(([, v]) => v))
    const eps = 1e-4
    for (const [name, v] of vars) {
      const g = grads[v.name].dataSync()
      const base = Float64Array.from(host.get(name)!.data)
      for (let i = 0; i < base.length; i++) {
        const plus = new Map<string, { data: Float64Array | Float32Array }>(host)
        const minus = new Map<string, { data: Float64Array | Float32Array }>(host)
        const p = Float64Array.from(base)
        const q = Float64Array.from(base)
        p[i] += eps
        q[i] -= eps
        plus.set(name, { data: p })
        minus.set(name, { data: q })
        const fd = (f(plus) - f(minus)) / (2 * eps)
        expect(Math.abs(g[i] - fd)).toBeLessThan(1e-3 * Math.max(1, Math.abs(fd)))
      }
    }
    tf.dispose(Object.values(grads))
    disposeBridge(m)
  })

  it("initialises as the papers' code, seeded, and round-trips through its file", async () => {
    const a = initBridgeHost(c, 7)
    const b = initBridgeHost(c, 7)
    for (const [name, t] of a) expect(Array.from(t.data)).toEqual(Array.from(b.get(name)!.data))
    if (c.kind === "langbridge") {
      const bound = 1 / Math.sqrt(c.dIn)
      for (const v of get(a, "linear.weight")) expect(Math.abs(v)).toBeLessThanOrEqual(bound)
      expect(Array.from(get(a, "enc_eos")).some((v) => Math.abs(v) > bound)).toBe(true) // N(0, 1), not the Linear's range
      expect(bridgeParamCount(c)).toBe(4 * 3 + 4 + 4)
    } else {
      for (const v of get(a, "mlp.linear2.weight")) expect(Math.abs(v)).toBeLessThanOrEqual(1 / Math.sqrt(2 * c.dIn))
      expect(Array.from(get(a, "end_boundary"))).toEqual([0, 0, 0, 0])
      expect(bridgeParamCount(c)).toBe(6 * 3 + 6 + 4 * 6 + 4 + 4)
    }
    const m: BridgeModule = bridgeFromHost(c, randomHost(c, 9))
    const file = path.join(tmp, `${c.kind}.safetensors`)
    await Effect.runPromise(saveBridge(file, m))
    const back = await Effect.runPromise(loadBridgeHost(file, c))
    const host = await bridgeToHost(m)
    for (const [name, t] of host) expect(Array.from(back.get(name)!.data)).toEqual(Array.from(t.data))
    disposeBridge(m)
    const wrong = await Effect.runPromise(Effect.flip(loadBridgeHost(file, { ...c, dOut: 5 })))
    expect(wrong.message).toMatch(/expected \[5/)
  })
})

describe("bridge batches", () => {
  it("lay out [BOS, placeholders for n states + end, text prompt] and stack the states in span order", () => {
    const tok = { bosId: 1, encode: (s: string) => Array.from(s, (ch) => ch.charCodeAt(0)) }
    expect(bridgePromptIds(tok as never, 0, 3, "ab")).toEqual([1, 0, 0, 0, 0, 97, 98])
    expect(bridgePromptIds(tok as never, 0, 2, "")).toEqual([1, 0, 0, 0])
    const ex = (n: number, v: number) => ({ row: 0, encoderIds: new Array<number>(n).fill(5), example: { ids: [], labels: [], targetStart: 0, slotPositions: [] }, states: new Float32Array(n * 2).fill(v) })
    const { spans, data } = batchStates([ex(2, 1), ex(1, 2)], 2)
    expect(spans).toEqual([{ batch: 0, start: 1, length: 2 }, { batch: 1, start: 1, length: 1 }])
    expect(Array.from(data)).toEqual([1, 1, 1, 1, 2, 2])
  })
})
