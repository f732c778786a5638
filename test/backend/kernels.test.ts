// Every replaced cpu-blas kernel against the stock cpu kernel: random shapes, transposes, broadcasts, odd sizes,
// fallbacks (int32, two-sided broadcasts), gradients, and the buffer pool's safety rules.
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { BlasBackend } from "../../src/backend/cpuBlas/backend.ts"
import { FUSED_KERNELS } from "../../src/backend/cpuBlas/fused.ts"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { kernelStats } from "../../src/backend/cpuBlas/shared.ts"
import { REPLACED_KERNELS } from "../../src/backend/cpuBlas/table.ts"
import { blasMissing, onBoth, randn, runOn, size, worstError } from "../support/backend.ts"

const t = (shape: Array<number>, seed: number): tf.Tensor => tf.tensor(randn(size(shape), seed), shape, "float32")
const fast = (name: string): number => kernelStats[name]?.fast ?? 0
const fallbacks = (name: string): number => kernelStats[name]?.fallback ?? 0

/** Compare every output of f on cpu vs cpu-blas; returns a list of failure descriptions. */
const compare = async (label: string, f: () => tf.Tensor | Array<tf.Tensor>, atol: number, rtol: number) => {
  const { stock, fast } = await onBoth(f)
  const problems: Array<string> = []
  stock.forEach((s, i) => {
    const b = fast[i]
    if (JSON.stringify(s.shape) !== JSON.stringify(b.shape)) problems.push(`${label}[${i}] shape ${b.shape} vs ${s.shape}`)
    else if (s.dtype !== b.dtype) problems.push(`${label}[${i}] dtype ${b.dtype} vs ${s.dtype}`)
    else {
      const e = worstError(b.values, s.values, atol, rtol)
      if (e > 1) problems.push(`${label}[${i}] error ${e.toFixed(2)}× tolerance`)
    }
  })
  return problems
}

describe.skipIf(blasMissing !== undefined)("cpu-blas kernels vs stock cpu", () => {
  it("registers every stock kernel plus the fused ones", async () => {
    const stockNames = tf.getKernelsForBackend("cpu").map((k) => k.kernelName).sort()
    const blasNames = tf.getKernelsForBackend(BLAS_BACKEND).map((k) => k.kernelName)
    const fused = Object.values(FUSED_KERNELS)
    expect(blasNames.filter((n) => !fused.includes(n as (typeof fused)[number])).sort()).toEqual(stockNames)
    for (const name of REPLACED_KERNELS) expect(stockNames).toContain(name)
    await tf.setBackend(BLAS_BACKEND)
    expect(tf.backend()).toBeInstanceOf(BlasBackend)
  })

  it("BatchMatMul: all transpose combos, odd sizes 1/3/17/65", async () => {
    const triples = [[1, 1, 1], [3, 17, 65], [65, 3, 17], [17, 65, 1], [1, 65, 3], [65, 65, 65]]
    const before = fast("BatchMatMul")
    const problems: Array<string> = []
    let seed = 1
    for (const [m, k, n] of triples) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const aShape = ta ? [k, m] : [m, k]
          const bShape = tb ? [n, k] : [k, n]
          const s = seed++
          problems.push(
            ...(await compare(`${m}x${k}x${n} tA=${ta} tB=${tb}`, () => tf.matMul(t(aShape, s), t(bShape, s + 100), ta, tb), 1e-4, 1e-4))
          )
        }
      }
    }
    expect(problems).toEqual([])
    expect(fast("BatchMatMul") - before).toBe(triples.length * 4)
  })

  it("BatchMatMul: batched, broadcast batch (either side 1, rank 2 vs 3, [2,1] vs [1,3]), empty inner dim", async () => {
    const cases: Array<[Array<number>, Array<number>, boolean, boolean]> = [
      [[4, 3, 17], [4, 17, 5], false, false],
      [[4, 17, 3], [4, 5, 17], true, true],
      [[1, 3, 17], [4, 17, 5], false, false],
      [[4, 3, 17], [1, 17, 5], false, false],
      [[4, 3, 17], [1, 5, 17], false, true],
      [[4, 17, 3], [1, 17, 5], true, false],
      [[4, 3, 17], [17, 5], false, false],
      [[3, 17], [4, 17, 5], false, false],
      [[3, 0], [0, 4], false, false],
      [[2, 3, 0], [2, 0, 4], false, false]
    ]
    const problems: Array<string> = []
    let seed = 50
    for (const [as, bs, ta, tb] of cases) {
      const s = seed++
      problems.push(...(await compare(`${as} @ ${bs} tA=${ta} tB=${tb}`, () => tf.matMul(t(as, s), t(bs, s + 7), ta, tb), 1e-4, 1e-4)))
    }
    expect(problems).toEqual([])
  })

  it("BatchMatMul: two-sided batch broadcast [2,1] × [1,3] against a plain-loop reference", async () => {
    // (The stock cpu kernel gets this case wrong: it indexes batches modulo each side's batch count.)
    const A = randn(2 * 3 * 17, 70)
    const B = randn(3 * 17 * 5, 71)
    const [r] = await runOn(BLAS_BACKEND, () => tf.matMul(tf.tensor(A, [2, 1, 3, 17]), tf.tensor(B, [1, 3, 17, 5])))
    expect(r.shape).toEqual([2, 3, 3, 5])
    const ref = new Float32Array(2 * 3 * 3 * 5)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++)
        for (let r0 = 0; r0 < 3; r0++)
          for (let c = 0; c < 5; c++) {
            let acc = 0
            for (let k = 0; k < 17; k++) acc += A[i * 51 + r0 * 17 + k] * B[j * 85 + k * 5 + c]
            ref[((i * 3 + j) * 3 + r0) * 5 + c] = acc
          }
    expect(worstError(r.values, ref, 1e-4, 1e-4)).toBeLessThanOrEqual(1)
  })

  it("_FusedMatMul: bias shapes and activations; prelu falls back", async () => {
    const problems: Array<string> = []
    const acts = ["linear", "relu", "relu6", "elu", "sigmoid", "leakyrelu"] as const
    const biases: Array<Array<number> | undefined> = [undefined, [5], [1, 5], [3, 5], [], [3, 1]]
    let seed = 200
    for (const activation of acts) {
      for (const bias of biases) {
        for (const [ta, tb] of [[false, false], [true, true]] as const) {
          const s = seed++
          problems.push(
            ...(await compare(
              `${activation} bias=${JSON.stringify(bias)} tA=${ta}`,
              () =>
                tf.fused.matMul({
                  a: t(ta ? [17, 3] : [3, 17], s),
                  b: t(tb ? [5, 17] : [17, 5], s + 1),
                  transposeA: ta,
                  transposeB: tb,
                  bias: bias === undefined ? undefined : t(bias, s + 2),
                  activation,
                  leakyreluAlpha: 0.3
                }),
              1e-4,
              1e-4
            ))
          )
        }
      }
    }
    const fb = fallbacks("_FusedMatMul")
    problems.push(
      ...(await compare(
        "prelu",
        () => tf.fused.matMul({ a: t([3, 17], 1), b: t([17, 5], 2), activation: "prelu", preluActivationWeights: t([5], 3) }),
        1e-4,
        1e-4
      ))
    )
    expect(problems).toEqual([])
    expect(fallbacks("_FusedMatMul")).toBe(fb + 1)
  })

  it("binary ops: same shape, row/column/scalar broadcasts both ways (bit-identical)", async () => {
    const pairs: Array<[Array<number>, Array<number>]> = [
      [[3, 17], [3, 17]],
      [[4, 5, 6], [6]],
      [[4, 5, 6], [5, 6]],
      [[4, 5, 6], [1, 5, 6]],
      [[4, 5, 6], [4, 1, 1]],
      [[4, 5, 6], [4, 5, 1]],
      [[4, 5, 6], []],
      [[65], [1]],
      [[0, 3], [3]]
    ]
    const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
      ["add", tf.add],
      ["sub", tf.sub],
      ["mul", tf.mul],
      ["div", tf.div],
      ["squaredDifference", tf.squaredDifference]
    ]
    const problems: Array<string> = []
    let seed = 300
    for (const [name, op] of ops) {
      for (const [as, bs] of pairs) {
        const s = seed++
        problems.push(...(await compare(`${name} ${as} ∘ ${bs}`, () => op(t(as, s), t(bs, s + 1)), 0, 0)))
        problems.push(...(await compare(`${name} ${bs} ∘ ${as}`, () => op(t(bs, s + 2), t(as, s + 3)), 0, 0)))
      }
    }
    expect(problems).toEqual([])
  })

  it("pow: scalar small-integer exponents, general exponents, broadcasts", async () => {
    const problems: Array<string> = []
    const pos = (shape: Array<number>, seed: number) => tf.abs(t(shape, seed))
    for (const e of [0, 1, 2, 3, -1, 0.5, 2.5]) {
      problems.push(...(await compare(`pow x^${e}`, () => tf.pow(pos([4, 17], 7), tf.scalar(e)), 1e-6, 1e-6)))
    }
    problems.push(...(await compare("pow same", () => tf.pow(pos([4, 17], 8), t([4, 17], 9)), 1e-6, 1e-6)))
    problems.push(...(await compare("pow row", () => tf.pow(pos([4, 17], 8), t([17], 9)), 1e-6, 1e-6)))
    expect(problems).toEqual([])
  })

  it("binary ops: two-sided and middle broadcasts take the fast path, int32 inputs fall back", async () => {
    const before = fallbacks("Add") + fallbacks("Multiply")
    const problems: Array<string> = []
    problems.push(...(await compare("add [4,1]+[1,5]", () => tf.add(t([4, 1], 1), t([1, 5], 2)), 0, 0)))
    problems.push(...(await compare("mul [4,5,6]*[1,5,1]", () => tf.mul(t([4, 5, 6], 1), t([1, 5, 1], 2)), 0, 0)))
    problems.push(
      ...(await compare("add int32", () => tf.add(tf.tensor([1, 2, 3], [3], "int32"), tf.tensor([10, 20, 30], [3], "int32")), 0, 0))
    )
    problems.push(
      ...(await compare("mul int32 bcast", () => tf.mul(tf.tensor([1, 2, 3, 4], [2, 2], "int32"), tf.scalar(3, "int32")), 0, 0))
    )
    expect(problems).toEqual([])
    expect(fallbacks("Add") + fallbacks("Multiply")).toBe(before + 2) // the two int32 cases fall back; both broadcasts take the fast path
    const ints = await runOn(BLAS_BACKEND, () => tf.add(tf.tensor([1, 2, 3], [3], "int32"), tf.scalar(5, "int32")))
    expect(ints[0].dtype).toBe("int32")
    expect(Array.from(ints[0].values)).toEqual([6, 7, 8])
  })

  it("float32 tensors cast from int32/bool (integer storage) take the fast paths and stay right", async () => {
    const before = fast("Pow") + fast("BatchMatMul") + fast("Add")
    const problems = [
      ...(await compare("pow int exponent", () => tf.pow(t([4, 17], 1), tf.scalar(2, "int32")), 0, 0)),
      ...(await compare("matmul cast", () => tf.matMul(tf.cast(tf.tensor([1, 2, 3, 4, 5, 6], [2, 3], "int32"), "float32"), t([3, 5], 2)), 1e-5, 1e-5)),
      ...(await compare("add cast bool", () => tf.add(tf.cast(tf.greater(t([3, 7], 3), 0), "float32"), t([3, 7], 4)), 0, 0))
    ]
    expect(problems).toEqual([])
    expect(fast("Pow") + fast("BatchMatMul") + fast("Add")).toBe(before + 3)
  })

  it("unary ops incl. special values (exp/erf within 2 ulp, the rest identical)", async () => {
    const special = [0, -0, NaN, Infinity, -Infinity, 1e-30, -1e-30, 88, 89, -87, -104, -110, 100, 3.5, -3.5]
    const mk = (seed: number) => tf.concat([t([65], seed).mul(3), tf.tensor(special)])
    const ops: Array<[string, (x: tf.Tensor) => tf.Tensor, number]> = [
      ["erf", tf.erf, 3e-7],
      ["exp", tf.exp, 3e-7],
      ["log", (x) => tf.log(tf.abs(x)), 0],
      ["sqrt", (x) => tf.sqrt(tf.abs(x)), 0],
      ["rsqrt", (x) => tf.rsqrt(tf.abs(x)), 0],
      ["square", tf.square, 0],
      ["neg", tf.neg, 0],
      ["abs", tf.abs, 0],
      ["reciprocal", tf.reciprocal, 0],
      ["tanh", tf.tanh, 0],
      ["sigmoid", tf.sigmoid, 0],
      ["relu", tf.relu, 0],
      ["step", (x) => tf.step(x, 0.25), 0]
    ]
    const problems: Array<string> = []
    let seed = 400
    for (const [name, op, rtol] of ops) {
      const s = seed++
      problems.push(...(await compare(name, () => op(mk(s)), 1e-30, rtol)))
    }
    expect(problems).toEqual([])
  })

  it("reductions: contiguous axes fast, non-contiguous and int32 fall back", async () => {
    const axesList: Array<number | Array<number> | undefined> = [0, 1, 2, -1, [0, 1], [1, 2], [0, 1, 2], undefined, [0, 2], []]
    const ops: Array<[string, (x: tf.Tensor, axis: number | Array<number> | undefined, keep: boolean) => tf.Tensor]> = [
      ["sum", (x, a, k) => tf.sum(x, a, k)],
      ["mean", (x, a, k) => tf.mean(x, a, k)],
      ["max", (x, a, k) => tf.max(x, a, k)],
      ["min", (x, a, k) => tf.min(x, a, k)]
    ]
    const problems: Array<string> = []
    let seed = 500
    for (const [name, op] of ops) {
      for (const axis of axesList) {
        for (const keep of [false, true]) {
          const s = seed++
          problems.push(...(await compare(`${name} axis=${JSON.stringify(axis)} keep=${keep}`, () => op(t([3, 17, 5], s), axis, keep), 1e-6, 1e-5)))
        }
      }
    }
    const fb = fallbacks("Sum")
    problems.push(...(await compare("sum int32", () => tf.sum(tf.tensor([[1, 2], [3, 4]], [2, 2], "int32"), 0), 0, 0)))
    expect(problems).toEqual([])
    expect(fallbacks("Sum")).toBeGreaterThan(fb)
  })

  it("softmax over the last axis", async () => {
    const problems: Array<string> = []
    for (const [shape, seed] of [[[5, 17], 1], [[2, 3, 65], 2], [[1], 3], [[4, 1], 4]] as const) {
      problems.push(...(await compare(`softmax ${shape}`, () => tf.softmax(t([...shape], seed).mul(4)), 1e-7, 1e-6)))
    }
    problems.push(...(await compare("logSoftmax", () => tf.logSoftmax(t([5, 17], 9)), 1e-6, 1e-6)))
    expect(problems).toEqual([])
  })

  it("transpose: 2-D, every 3-D perm, attention-style 4-D, rank 5, rank 6 fallback, int32", async () => {
    const cases: Array<[Array<number>, Array<number>]> = [
      [[3, 17], [1, 0]],
      [[65, 33], [1, 0]],
      ...[[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]].map((p): [Array<number>, Array<number>] => [[2, 3, 4], p]),
      [[2, 5, 3, 4], [0, 2, 1, 3]],
      [[2, 1, 3, 4], [0, 2, 1, 3]],
      [[2, 3, 4, 5, 2], [4, 0, 3, 1, 2]],
      [[2, 3, 2, 3, 2, 2], [5, 4, 3, 2, 1, 0]]
    ]
    const problems: Array<string> = []
    let seed = 600
    for (const [shape, perm] of cases) {
      const s = seed++
      problems.push(...(await compare(`transpose ${shape} ${perm}`, () => tf.transpose(t(shape, s), perm), 0, 0)))
    }
    problems.push(
      ...(await compare("transpose int32", () => tf.transpose(tf.tensor([1, 2, 3, 4, 5, 6], [2, 3], "int32"), [1, 0]), 0, 0))
    )
    expect(problems).toEqual([])
  })

  it("gradients through every replaced kernel match the stock backend", async () => {
    const f = () => {
      const x = t([6, 7], 1)
      const w1 = t([7, 9], 2)
      const b1 = t([9], 3)
      const w2 = t([4, 9], 4)
      const target = tf.softmax(t([6, 4], 5))
      const batch = t([3, 6, 7], 6)
      const g = tf.grads((w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, batch: tf.Tensor) => {
        const h = tf.erf(tf.add(tf.matMul(x, w1), b1))
        const y = tf.softmax(tf.matMul(h, w2, false, true))
        const dir = tf.div(h, tf.norm(h, 2, -1, true))
        const bm = tf.matMul(tf.reshape(batch, [18, 7]), w1)
        const hb = tf.fused.matMul({ a: h, b: w2, transposeB: true, bias: b1.slice([0], [4]), activation: "relu" })
        return tf.addN([
          tf.sum(tf.mul(y, target)),
          tf.mean(tf.square(h)),
          tf.sum(tf.squaredDifference(dir, tf.transpose(tf.transpose(dir)))),
          tf.mean(tf.exp(tf.neg(tf.abs(bm)))),
          tf.sum(tf.sigmoid(hb)),
          tf.max(tf.sub(h, tf.mean(h, -1, true))),
          tf.sum(tf.sqrt(tf.add(tf.square(bm), 1)))
        ]) as tf.Scalar
      })
      return g([w1, b1, w2, batch])
    }
    expect(await compare("grads", f, 1e-5, 1e-4)).toEqual([])
  })
})

describe.skipIf(blasMissing !== undefined)("cpu-blas buffer pool", () => {
  it("recycled (dirty) buffers never leak into results", async () => {
    await tf.setBackend(BLAS_BACKEND)
    const be = tf.backend()
    if (!(be instanceof BlasBackend)) throw new Error("expected BlasBackend")
    const n = 64 * 80
    // Fill the pool with NaN buffers of the sizes used below.
    for (let i = 0; i < 4; i++) tf.tidy(() => tf.div(tf.zeros([n]), tf.zeros([n])).add(0))
    const hits = be.poolStats.hits
    const problems = [
      ...(await compare("matmul into recycled", () => tf.matMul(t([64, 17], 1), t([17, 80], 2)), 1e-4, 1e-4)),
      ...(await compare("fused bias into recycled", () => tf.fused.matMul({ a: t([64, 17], 1), b: t([17, 80], 2), bias: t([80], 3) }), 1e-4, 1e-4)),
      ...(await compare("sum into recycled", () => tf.sum(t([2, 64 * 80], 4), 0), 1e-5, 1e-5)),
      ...(await compare("transpose into recycled", () => tf.transpose(t([64, 80], 5)), 0, 0))
    ]
    expect(problems).toEqual([])
    expect(be.poolStats.hits).toBeGreaterThan(hits)
  })

  it("arrays read out with dataSync, and views held by other tensors, are never recycled", async () => {
    await tf.setBackend(BLAS_BACKEND)
    const n = 8192
    const a = tf.add(t([n], 1), 1)
    const seen = a.dataSync()
    const copy = Float32Array.from(seen)
    a.dispose()
    const b = tf.mul(t([n], 2), 2)
    const half = tf.slice(b, [0], [n / 2])
    const halfCopy = Float32Array.from(half.dataSync())
    b.dispose()
    for (let i = 0; i < 6; i++) tf.tidy(() => tf.sub(t([n], 10 + i), 3).mul(7))
    expect(Array.from(seen)).toEqual(Array.from(copy))
    expect(Array.from(half.dataSync())).toEqual(Array.from(halfCopy))
    half.dispose()
  })
})
