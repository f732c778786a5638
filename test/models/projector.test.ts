import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import * as Projector from "../../src/models/projector.ts"
import { makeRng } from "../../src/models/rng.ts"
import type { HostTensor } from "../../src/train/hostMath.ts"
import { projectorReference } from "../support/adapterReference.ts"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const CONFIG = Projector.makeConfig(6, 5, { dHidden: 12, dropout: 0.25 })
const ROWS = 3

const input = (seed: number): Float32Array => {
  const rng = makeRng(seed)
  return Float32Array.from({ length: ROWS * CONFIG.dIn }, () => 2 * rng.normal())
}

const run = (proj: Projector.Projector, z: Float32Array, dropout?: Projector.DropoutSpec): Float32Array =>
  tf.tidy(() => Projector.forward(proj, tf.tensor2d(z, [ROWS, CONFIG.dIn]), dropout).dataSync() as Float32Array).slice()

/** The projector in float64 plain loops, written independently of the module. */
type RefParams = ReadonlyMap<string, { readonly data: ArrayLike<number> }>
const reference = (host: RefParams, z: Float32Array, mask: Float32Array | null): number[] =>
  projectorReference(host, CONFIG, z, ROWS, mask)

/** Host params with a non-trivial LayerNorm affine part, so the reference exercises it. */
const hostWithAffine = (seed: number): Map<string, HostTensor> => {
  const host = Projector.initHost(CONFIG, seed)
  const rng = makeRng(seed + 1000)
  host.set("ln.weight", { shape: [CONFIG.dOut], data: Float32Array.from({ length: CONFIG.dOut }, () => 1 + 0.3 * rng.normal()) })
  host.set("ln.bias", { shape: [CONFIG.dOut], data: Float32Array.from({ length: CONFIG.dOut }, () => 0.2 * rng.normal()) })
  return host
}

describe("projector", () => {
  it("has the PyTorch layout and default initialisation", () => {
    const host = Projector.initHost(CONFIG, 7)
    expect([...host.keys()]).toEqual([...Projector.PARAM_NAMES])
    expect(host.get("fc1.weight")?.shape).toEqual([12, 6])
    expect(host.get("fc2.weight")?.shape).toEqual([5, 12])
    const b1 = 1 / Math.sqrt(6)
    const b2 = 1 / Math.sqrt(12)
    for (const [name, bound] of [["fc1.weight", b1], ["fc1.bias", b1], ["fc2.weight", b2], ["fc2.bias", b2]] as const) {
      const d = host.get(name)?.data ?? new Float32Array(0)
      expect(Math.max(...d.map(Math.abs))).toBeLessThanOrEqual(bound)
      expect(Math.max(...d.map(Math.abs))).toBeGreaterThan(bound / 4) // not collapsed to 0
    }
    expect([...(host.get("ln.weight")?.data ?? [])]).toEqual([1, 1, 1, 1, 1])
    expect([...(host.get("ln.bias")?.data ?? [])]).toEqual([0, 0, 0, 0, 0])
    expect(Projector.paramCount(CONFIG)).toBe(12 * 6 + 12 + 5 * 12 + 5 + 5 + 5)
    expect(Projector.makeConfig(768, 2048)).toEqual({ dIn: 768, dHidden: 3072, dOut: 2048, dropout: 0.1, lnEps: 1e-5 })
  })

  it("initialisation is a function of the seed", () => {
    const a = Projector.initHost(CONFIG, 7).get("fc1.weight")?.data
    const b = Projector.initHost(CONFIG, 7).get("fc1.weight")?.data
    const c = Projector.initHost(CONFIG, 8).get("fc1.weight")?.data
    expect(a).toEqual(b)
    expect(a).not.toEqual(c)
  })

  it("evaluation forward matches a float64 reference (GELU erf, LayerNorm with affine)", () => {
    const host = hostWithAffine(3)
    const proj = Projector.fromHost(CONFIG, host)
    const z = input(11)
    const got = run(proj, z, null)
    const ref = reference(host, z, null)
    for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThan(2e-5)
    Projector.dispose(proj)
  })

  it("training forward applies the seeded inverted-dropout mask", () => {
    const host = hostWithAffine(4)
    const proj = Projector.fromHost(CONFIG, host)
    const z = input(12)
    const mask = Projector.dropoutMask(makeRng(99), ROWS, CONFIG.dHidden, CONFIG.dropout)
    const viaRng = run(proj, z, { rng: makeRng(99) })
    const viaMask = run(proj, z, { mask })
    expect(viaRng).toEqual(viaMask)
    const ref = reference(host, z, mask)
    for (let i = 0; i < ref.length; i++) expect(Math.abs(viaRng[i] - ref[i])).toBeLessThan(2e-5)
    expect(viaRng).not.toEqual(run(proj, z, null))
    Projector.dispose(proj)
  })

  it("dropout masks repeat exactly by seed and have the right statistics", () => {
    const p = 0.25
    const a = Projector.dropoutMask(makeRng(Projector.dropoutSeed(17, 5, 2)), 40, 250, p)
    const b = Projector.dropoutMask(makeRng(Projector.dropoutSeed(17, 5, 2)), 40, 250, p)
    const c = Projector.dropoutMask(makeRng(Projector.dropoutSeed(17, 5, 3)), 40, 250, p)
    const d = Projector.dropoutMask(makeRng(Projector.dropoutSeed(17, 6, 2)), 40, 250, p)
    expect(a).toEqual(b)
    expect(a).not.toEqual(c)
    expect(a).not.toEqual(d)
    const zeros = a.filter((v) => v === 0).length / a.length
    expect(zeros).toBeGreaterThan(p - 0.03)
    expect(zeros).toBeLessThan(p + 0.03)
    expect(new Set(a)).toEqual(new Set([0, Math.fround(1 / (1 - p))]))
    expect(Projector.dropoutMask(makeRng(1), 2, 3, 0)).toEqual(new Float32Array(6).fill(1))
  })

  it("save → load gives bit-identical weights and outputs", async () => {
    const proj = Projector.init(CONFIG, 21)
    const z = input(13)
    const before = run(proj, z, null)
    const saved = await Projector.toHost(proj)
    const loaded = Projector.fromHost(CONFIG, saved)
    expect(run(loaded, z, null)).toEqual(before)
    const again = await Projector.toHost(loaded)
    for (const name of Projector.PARAM_NAMES) expect(again.get(name)?.data).toEqual(saved.get(name)?.data)
    // assign() into a differently initialised projector
    const other = Projector.init(CONFIG, 22)
    expect(run(other, z, null)).not.toEqual(before)
    Projector.assign(other, saved)
    expect(run(other, z, null)).toEqual(before)
    for (const p of [proj, loaded, other]) Projector.dispose(p)
  })

  it("rejects parameters of the wrong shape, naming the tensor", () => {
    const host = Projector.initHost(CONFIG, 1)
    host.set("fc2.weight", { shape: [12, 5], data: new Float32Array(60) })
    expect(() => Projector.fromHost(CONFIG, host)).toThrow(/fc2\.weight/)
    const missing = Projector.initHost(CONFIG, 1)
    missing.delete("ln.bias")
    expect(() => Projector.fromHost(CONFIG, missing)).toThrow(/ln\.bias/)
  })

  it("parameter gradients match central differences of the float64 reference (with a dropout mask)", () => {
    const host = hostWithAffine(6)
    const proj = Projector.fromHost(CONFIG, host)
    const z = input(15)
    const mask = Projector.dropoutMask(makeRng(5), ROWS, CONFIG.dHidden, CONFIG.dropout)
    const weights = Float64Array.from({ length: ROWS * CONFIG.dOut }, (_, i) => Math.sin(i + 1))
    const objective = (h: RefParams): number =>
      reference(h, z, mask).reduce((s, v, i) => s + v * weights[i], 0)
    const { grads } = tf.variableGrads(() => {
      const p = Projector.forward(proj, tf.tensor2d(z, [ROWS, CONFIG.dIn]), { mask })
      return tf.sum(tf.mul(p, tf.tensor2d(Float32Array.from(weights), [ROWS, CONFIG.dOut]))) as tf.Scalar
    }, [...proj.variables])
    for (const name of Projector.PARAM_NAMES) {
      const v = proj.params.get(name)
      if (v === undefined) throw new Error(name)
      const got = grads[v.name].dataSync()
      const base = host.get(name)?.data ?? new Float32Array(0)
      let worst = 0
      let scale = 1e-3
      for (let i = 0; i < base.length; i++) {
        const eps = 1e-3
        const bump = (delta: number): RefParams => {
          const m = new Map<string, { readonly data: ArrayLike<number> }>(host)
          const data = Float64Array.from(base) // perturbed in float64
          data[i] += delta
          m.set(name, { data })
          return m
        }
        const fd = (objective(bump(eps)) - objective(bump(-eps))) / (2 * eps)
        worst = Math.max(worst, Math.abs(got[i] - fd))
        scale = Math.max(scale, Math.abs(fd))
      }
      expect(worst / scale, name).toBeLessThan(2e-3)
    }
    tf.dispose(Object.values(grads))
    Projector.dispose(proj)
  })

  it("gives a finite, non-zero gradient for every parameter", () => {
    const proj = Projector.init(CONFIG, 5)
    const z = input(14)
    const { value, grads } = tf.variableGrads(() => {
      const p = Projector.forward(proj, tf.tensor2d(z, [ROWS, CONFIG.dIn]), { rng: makeRng(3) })
      return tf.sum(tf.mul(p, tf.range(0, ROWS * CONFIG.dOut).reshape([ROWS, CONFIG.dOut]))) as tf.Scalar
    }, [...proj.variables])
    expect(Number.isFinite(value.arraySync())).toBe(true)
    for (const v of proj.variables) {
      const g = grads[v.name]
      expect(g, v.name).toBeDefined()
      const data = g.dataSync()
      expect(data.every(Number.isFinite)).toBe(true)
      expect(Math.max(...Array.from(data, Math.abs))).toBeGreaterThan(0)
    }
    tf.dispose([value, ...Object.values(grads)])
    Projector.dispose(proj)
  })
})
