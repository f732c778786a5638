import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { makeRng } from "../../src/models/rng.ts"
import { stageALoss } from "../../src/train/stageALoss.ts"
import type { DirReduction, HardNegatives, StageALoss } from "../../src/train/stageALoss.ts"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

// ---------------------------------------------------------------------------------------------------------------
// float64 reference, written independently with plain loops

type Mat = number[][]
type RefNegs = { kind: "shared"; v: Mat } | { kind: "per-row"; v: Mat[] } | null
interface RefTerms {
  ncePH: number
  nceHP: number
  nce: number
  dir: number
  norm: number
  total: number
}

const norm2 = (x: number[]): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0))
const unit = (x: number[]): number[] => {
  const n = Math.max(norm2(x), 1e-12)
  return x.map((v) => v / n)
}
const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i], 0)
const lse = (xs: number[]): number => {
  const m = Math.max(...xs)
  return m + Math.log(xs.reduce((s, v) => s + Math.exp(v - m), 0))
}

const refLoss = (
  p: Mat,
  h: Mat,
  negs: RefNegs,
  tau: number,
  lambdaDir: number,
  lambdaNorm: number,
  red: DirReduction
): RefTerms => {
  const B = p.length
  const d = p[0].length
  const pn = p.map(unit)
  const hn = h.map(unit)
  let ncePH = 0
  let nceHP = 0
  for (let i = 0; i < B; i++) {
    const row: number[] = []
    for (let j = 0; j < B; j++) row.push(dot(pn[i], hn[j]) / tau)
    if (negs !== null) {
      const pool = negs.kind === "shared" ? negs.v : negs.v[i]
      for (const n of pool) row.push(dot(pn[i], n) / tau)
    }
    ncePH += lse(row) - row[i]
    const col: number[] = []
    for (let j = 0; j < B; j++) col.push(dot(hn[i], pn[j]) / tau)
    nceHP += lse(col) - col[i]
  }
  ncePH /= B
  nceHP /= B
  let sq = 0
  for (let i = 0; i < B; i++) for (let k = 0; k < d; k++) sq += (pn[i][k] - hn[i][k]) ** 2
  const dir = red === "mse" ? sq / (B * d) : sq / B
  let nrm = 0
  for (let i = 0; i < B; i++) nrm += (Math.log(norm2(p[i]) + 1e-8) - Math.log(norm2(h[i]) + 1e-8)) ** 2
  nrm /= B
  const nce = 0.5 * (ncePH + nceHP)
  return { ncePH, nceHP, nce, dir, norm: nrm, total: nce + lambdaDir * dir + lambdaNorm * nrm }
}

/** Central differences of one reference term w.r.t. every entry of p (float64, step 1e-6). */
const refGrad = (f: (p: Mat) => number, p: Mat): Mat => {
  const eps = 1e-6
  return p.map((row, i) =>
    row.map((_, k) => {
      const plus = p.map((r) => r.slice())
      const minus = p.map((r) => r.slice())
      plus[i][k] += eps
      minus[i][k] -= eps
      return (f(plus) - f(minus)) / (2 * eps)
    })
  )
}

// ---------------------------------------------------------------------------------------------------------------
// fixtures

const B = 4
const D = 5
const K = 3
const TAU = 0.11

const randMat = (seed: number, rows: number, cols: number, scale: number): Mat => {
  const rng = makeRng(seed)
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => scale * rng.normal()))
}
// Values rounded to float32 so the tf inputs and the float64 reference see the same numbers.
const f32 = (m: Mat): Mat => m.map((r) => r.map((v) => Math.fround(v)))

const P = f32(randMat(1, B, D, 2.5))
const H = f32(randMat(2, B, D, 0.7))
const NEG_SHARED = f32(randMat(3, K, D, 1).map(unit))
const NEG_ROWS = [0, 1, 2, 3].map((b) => f32(randMat(10 + b, K, D, 1).map(unit)))

const CASES: ReadonlyArray<{ name: string; negs: RefNegs }> = [
  { name: "in-batch only", negs: null },
  { name: "shared hard negatives", negs: { kind: "shared", v: NEG_SHARED } },
  { name: "per-row hard negatives", negs: { kind: "per-row", v: NEG_ROWS } }
]

const tfNegs = (negs: RefNegs): HardNegatives | null =>
  negs === null
    ? null
    : negs.kind === "shared"
      ? { kind: "shared", vectors: tf.tensor2d(negs.v) }
      : { kind: "per-row", vectors: tf.tensor3d(negs.v) }

const TERMS = ["ncePH", "nceHP", "nce", "dir", "norm", "total"] as const

const tfTerms = (p: Mat, negs: RefNegs, red: DirReduction): Record<(typeof TERMS)[number], number> =>
  tf.tidy(() => {
    const l = stageALoss(
      { p: tf.tensor2d(p), h: tf.tensor2d(H), negatives: tfNegs(negs), tau: TAU },
      { lambdaDir: 0.05, lambdaNorm: 0.02, dirReduction: red }
    )
    const out = {} as Record<(typeof TERMS)[number], number>
    for (const t of TERMS) out[t] = l[t].arraySync()
    return out
  }) as unknown as Record<(typeof TERMS)[number], number>

const tfGrad = (p: Mat, negs: RefNegs, red: DirReduction, term: keyof StageALoss): Mat =>
  tf.tidy(() => {
    const g = tf.grad((pt: tf.Tensor) =>
      stageALoss(
        { p: pt as tf.Tensor2D, h: tf.tensor2d(H), negatives: tfNegs(negs), tau: TAU },
        { lambdaDir: 0.05, lambdaNorm: 0.02, dirReduction: red }
      )[term]
    )(tf.tensor2d(p))
    return g.arraySync() as Mat
  }) as unknown as Mat

const maxAbsDiff = (a: Mat, b: Mat): number => Math.max(...a.flatMap((r, i) => r.map((v, k) => Math.abs(v - b[i][k]))))
const maxAbs = (a: Mat): number => Math.max(...a.flatMap((r) => r.map(Math.abs)))

describe("Stage A loss vs a float64 reference", () => {
  for (const c of CASES) {
    for (const red of ["mse", "sum"] as const) {
      it(`values match (${c.name}, L_dir ${red})`, () => {
        const ref = refLoss(P, H, c.negs, TAU, 0.05, 0.02, red)
        const got = tfTerms(P, c.negs, red)
        for (const t of TERMS) expect(got[t]).toBeCloseTo(ref[t], 5)
        // the pieces are non-trivial (so the comparison means something)
        expect(ref.ncePH).toBeGreaterThan(0.1)
        expect(ref.norm).toBeGreaterThan(0.1)
        expect(ref.dir).toBeGreaterThan(0.01)
      })

      it(`every term's gradient w.r.t. p matches central differences (${c.name}, L_dir ${red})`, () => {
        for (const term of TERMS) {
          const ref = refGrad((p) => refLoss(p, H, c.negs, TAU, 0.05, 0.02, red)[term], P)
          const got = tfGrad(P, c.negs, red, term)
          const scale = Math.max(1e-3, maxAbs(ref))
          expect(maxAbs(ref), `${term} gradient is not trivially zero`).toBeGreaterThan(1e-4)
          expect(maxAbsDiff(got, ref) / scale, `${term}`).toBeLessThan(2e-5)
        }
      })
    }
  }

  it("hard negatives enter only NCE(p→h)", () => {
    const a = tfTerms(P, null, "mse")
    const b = tfTerms(P, { kind: "shared", v: NEG_SHARED }, "mse")
    expect(b.ncePH).toBeGreaterThan(a.ncePH)
    expect(b.nceHP).toBe(a.nceHP)
    expect(b.dir).toBe(a.dir)
    expect(b.norm).toBe(a.norm)
  })

  it("a per-row pool equal for every row equals the shared pool", () => {
    const shared = tfTerms(P, { kind: "shared", v: NEG_SHARED }, "mse")
    const perRow = tfTerms(P, { kind: "per-row", v: [NEG_SHARED, NEG_SHARED, NEG_SHARED, NEG_SHARED] }, "mse")
    expect(perRow.ncePH).toBeCloseTo(shared.ncePH, 6)
  })

  it("the weights and the temperature act as configured", () => {
    const l = tf.tidy(() => {
      const a = stageALoss({ p: tf.tensor2d(P), h: tf.tensor2d(H), tau: TAU }, { lambdaDir: 0, lambdaNorm: 0, dirReduction: "mse" })
      const b = stageALoss({ p: tf.tensor2d(P), h: tf.tensor2d(H), tau: TAU }, { lambdaDir: 2, lambdaNorm: 3, dirReduction: "mse" })
      return [a.total.arraySync(), a.nce.arraySync(), b.total.arraySync(), b.dir.arraySync(), b.norm.arraySync()]
    }) as unknown as number[]
    expect(l[0]).toBeCloseTo(l[1], 6)
    expect(l[2]).toBeCloseTo(l[1] + 2 * l[3] + 3 * l[4], 5)
    const hot = refLoss(P, H, null, 0.05, 0, 0, "mse").nce
    const cold = refLoss(P, H, null, 1.0, 0, 0, "mse").nce
    expect(hot).not.toBeCloseTo(cold, 2)
  })

  it("rejects a non-positive temperature and mismatched shapes", () => {
    expect(() => tf.tidy(() => stageALoss({ p: tf.tensor2d(P), h: tf.tensor2d(H), tau: 0 }).total)).toThrow(/temperature/)
    expect(() => tf.tidy(() => stageALoss({ p: tf.tensor2d(P), h: tf.tensor2d(H.slice(0, 3)), tau: 0.1 }).total)).toThrow(
      /h is/
    )
  })
})

describe("Stage A loss sanity", () => {
  const totalOf = (p: Mat): number => refLoss(p, H, { kind: "shared", v: NEG_SHARED }, TAU, 0.05, 0.02, "mse").total
  const tfTotal = (p: Mat): number => tfTerms(p, { kind: "shared", v: NEG_SHARED }, "mse").total

  it("moving each p toward its own h lowers the loss; moving away raises it", () => {
    const toward = (alpha: number): Mat =>
      P.map((row, i) => {
        const target = H[i].map((v) => (v * norm2(row)) / norm2(H[i])) // h's direction at p's norm
        return row.map((v, k) => v + alpha * (target[k] - v))
      })
    const base = tfTotal(P)
    expect(tfTotal(toward(0.3))).toBeLessThan(base)
    expect(tfTotal(toward(0.9))).toBeLessThan(tfTotal(toward(0.3)))
    expect(tfTotal(toward(-0.3))).toBeGreaterThan(base)
    expect(totalOf(toward(0.3))).toBeLessThan(totalOf(P))
  })

  it("a small step against the tf gradient lowers the loss (and with it, raises it)", () => {
    const g = tfGrad(P, { kind: "shared", v: NEG_SHARED }, "mse", "total")
    const step = (eta: number): Mat => P.map((row, i) => row.map((v, k) => v - eta * g[i][k]))
    expect(totalOf(step(0.05))).toBeLessThan(totalOf(P))
    expect(totalOf(step(-0.05))).toBeGreaterThan(totalOf(P))
  })

  it("the loss is at its in-batch floor when p equals h in direction and norm", () => {
    const l = refLoss(H, H, null, TAU, 0.05, 0.02, "mse")
    expect(l.dir).toBeCloseTo(0, 12)
    expect(l.norm).toBeCloseTo(0, 12)
    const t = tfTerms(H, null, "mse")
    expect(t.dir).toBeLessThan(1e-12)
    expect(t.norm).toBeLessThan(1e-10)
  })
})
