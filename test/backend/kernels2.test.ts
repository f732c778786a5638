// The cpu-blas data-movement kernels (Slice, StridedSlice, PadV2, Concat, SplitV, GatherV2, UnsortedSegmentSum)
// and the general N-d broadcasting path of the binary kernels, against the stock cpu kernels: odd sizes, size-1
// axes, empty slices, int32 fallbacks, and gradients.
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { kernelStats } from "../../src/backend/cpuBlas/shared.ts"
import { blasMissing, onBoth, randn, rng, runOn, size, worstError } from "../support/backend.ts"

const t = (shape: Array<number>, seed: number): tf.Tensor => tf.tensor(randn(size(shape), seed), shape, "float32")
const ints = (shape: Array<number>, seed: number): tf.Tensor => {
  const r = rng(seed)
  return tf.tensor(Array.from({ length: size(shape) }, () => Math.floor(r() * 100) - 50), shape, "int32")
}
const fast = (name: string): number => kernelStats[name]?.fast ?? 0
const fallbacks = (name: string): number => kernelStats[name]?.fallback ?? 0

/** Compare every output of f on cpu vs cpu-blas; returns a list of failure descriptions. */
const compare = async (label: string, f: () => tf.Tensor | Array<tf.Tensor>, atol = 0, rtol = 0) => {
  const { stock, fast } = await onBoth(f)
  const problems: Array<string> = []
  if (stock.length !== fast.length) return [`${label}: ${fast.length} outputs vs ${stock.length}`]
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

describe.skipIf(blasMissing !== undefined)("cpu-blas data-movement kernels vs stock cpu", () => {
  it("Slice: last-axis halves (RoPE), middle axes, size-1 axes, empty, -1 sizes, contiguous views", async () => {
    const cases: Array<[Array<number>, Array<number>, Array<number>]> = [
      [[2, 3, 5, 8], [0, 0, 0, 0], [2, 3, 5, 4]],
      [[2, 3, 5, 8], [0, 0, 0, 4], [2, 3, 5, 4]],
      [[2, 3, 5, 8], [0, 0, 0, 4], [-1, -1, -1, -1]],
      [[3, 7, 65], [1, 2, 3], [2, 4, 61]],
      [[3, 7, 65], [0, 2, 0], [3, 4, 65]],
      [[3, 1, 65], [0, 0, 64], [3, 1, 1]],
      [[4, 5, 6], [1, 0, 0], [2, 5, 6]],
      [[4, 5, 6], [1, 2, 0], [1, 2, 6]],
      [[4, 5, 6], [0, 0, 3], [4, 5, 0]],
      [[4, 5, 6], [0, 5, 0], [4, 0, 6]],
      [[17], [3], [11]],
      [[2, 3, 4, 5, 6], [1, 0, 2, 1, 3], [1, 3, 2, 3, 2]],
      [[5, 130], [1, 1], [3, 128]]
    ]
    const problems: Array<string> = []
    let seed = 1
    for (const [shape, begin, sz] of cases) {
      const s = seed++
      problems.push(...(await compare(`slice ${shape} @${begin} #${sz}`, () => tf.slice(t(shape, s), begin, sz))))
    }
    const fb = fallbacks("Slice")
    problems.push(...(await compare("slice int32", () => tf.slice(ints([3, 4, 5], 9), [0, 1, 2], [3, 2, 2]))))
    expect(problems).toEqual([])
    expect(fallbacks("Slice")).toBe(fb + 1)
  })

  it("StridedSlice: stride-1 boxes with masks, shrink and new axes; strided cases fall back", async () => {
    const problems: Array<string> = []
    const x = () => t([3, 4, 10], 20)
    const before = fast("StridedSlice")
    problems.push(...(await compare("ss box", () => tf.stridedSlice(x(), [0, 1, 2], [3, 3, 7], [1, 1, 1]))))
    problems.push(...(await compare("ss masks", () => tf.stridedSlice(x(), [1, 0, 5], [0, 2, 0], [1, 1, 1], 0b101, 0b101))))
    problems.push(...(await compare("ss shrink", () => tf.stridedSlice(x(), [1, 0, 3], [2, 4, 8], [1, 1, 1], 0, 0, 0, 0, 0b001))))
    problems.push(...(await compare("ss newaxis", () => tf.stridedSlice(x(), [0, 0, 1], [0, 3, 9], [1, 1, 1], 0, 0, 0, 0b001))))
    problems.push(...(await compare("ss negative", () => tf.stridedSlice(x(), [-2, 0, -6], [3, 4, -1], [1, 1, 1]))))
    problems.push(...(await compare("ss empty", () => tf.stridedSlice(x(), [0, 2, 5], [3, 2, 9], [1, 1, 1]))))
    const fastNow = fast("StridedSlice")
    problems.push(...(await compare("ss step 2", () => tf.stridedSlice(x(), [0, 0, 1], [3, 4, 10], [1, 2, 3]))))
    problems.push(...(await compare("ss reverse", () => tf.stridedSlice(x(), [2, 3, 9], [0, 0, 0], [-1, -1, -1]))))
    expect(problems).toEqual([])
    expect(fastNow - before).toBeGreaterThanOrEqual(5)
    expect(fast("StridedSlice")).toBe(fastNow)
  })

  it("PadV2: all sides, one side, zero paddings, constant values, int32 falls back", async () => {
    const problems: Array<string> = []
    const cases: Array<[Array<number>, Array<[number, number]>, number]> = [
      [[2, 3, 5], [[0, 0], [0, 0], [0, 5]], 0],
      [[2, 3, 5], [[0, 0], [0, 0], [5, 0]], 0],
      [[2, 3, 5], [[1, 2], [0, 3], [2, 1]], 1.5],
      [[7], [[3, 0]], -2],
      [[4, 1, 33], [[0, 0], [2, 0], [0, 0]], 0],
      [[2, 0, 3], [[1, 1], [1, 1], [0, 0]], 7]
    ]
    let seed = 40
    for (const [shape, pads, v] of cases) {
      const s = seed++
      problems.push(...(await compare(`pad ${shape} ${JSON.stringify(pads)}`, () => tf.pad(t(shape, s), pads, v))))
    }
    const fb = fallbacks("PadV2")
    problems.push(...(await compare("pad int32", () => tf.pad(ints([2, 3], 1), [[1, 0], [0, 2]], 4))))
    expect(problems).toEqual([])
    expect(fallbacks("PadV2")).toBe(fb + 1)
  })

  it("Concat: every axis, odd sizes, empty inputs, many inputs, int32 falls back", async () => {
    const problems: Array<string> = []
    const cases: Array<[Array<Array<number>>, number]> = [
      [[[2, 3, 5, 4], [2, 3, 5, 4]], -1],
      [[[2, 3, 5, 4], [2, 3, 5, 7]], 3],
      [[[2, 3, 5], [2, 1, 5], [2, 4, 5]], 1],
      [[[2, 3, 5], [1, 3, 5]], 0],
      [[[2, 3, 5], [2, 3, 0], [2, 3, 2]], 2],
      [[[2, 0, 5], [2, 0, 5]], 1],
      [[[3], [5], [1]], 0],
      [[[1, 65], [1, 3]], 1]
    ]
    let seed = 60
    for (const [shapes, axis] of cases) {
      const s = seed++
      problems.push(...(await compare(`concat ${JSON.stringify(shapes)} axis ${axis}`, () => tf.concat(shapes.map((sh, i) => t(sh, s * 10 + i)), axis))))
    }
    const fb = fallbacks("Concat")
    problems.push(...(await compare("concat int32", () => tf.concat([ints([2, 3], 1), ints([2, 2], 2)], 1))))
    expect(problems).toEqual([])
    expect(fallbacks("Concat")).toBe(fb + 1)
  })

  it("SplitV: even and uneven splits on every axis (views on the leading axis)", async () => {
    const problems: Array<string> = []
    const cases: Array<[Array<number>, number | Array<number>, number]> = [
      [[2, 3, 8], 2, -1],
      [[2, 3, 8], [3, 0, 5], 2],
      [[2, 6, 5], [1, 2, 3], 1],
      [[6, 2, 5], [4, 2], 0],
      [[1, 6, 5], [4, -1], 1],
      [[3, 65], [1, 64], 1]
    ]
    let seed = 80
    for (const [shape, splits, axis] of cases) {
      const s = seed++
      problems.push(...(await compare(`split ${shape} ${JSON.stringify(splits)} axis ${axis}`, () => tf.split(t(shape, s), splits, axis))))
    }
    problems.push(...(await compare("split int32", () => tf.split(ints([2, 4], 3), 2, 1))))
    expect(problems).toEqual([])
  })

  it("GatherV2: rows (embedding lookup), other axes, 2-D indices, repeats, int32 x and batchDims fall back", async () => {
    const problems: Array<string> = []
    const idx = (vals: Array<number>, shape?: Array<number>) => tf.tensor(vals, shape ?? [vals.length], "int32")
    problems.push(...(await compare("gather rows", () => tf.gather(t([50, 17], 1), idx([3, 49, 0, 3, 7])))))
    problems.push(...(await compare("gather rows 2-D idx", () => tf.gather(t([50, 17], 2), idx([3, 4, 5, 6, 0, 0], [2, 3])))))
    problems.push(...(await compare("gather axis 1", () => tf.gather(t([3, 10, 4], 3), idx([9, 0, 2]), 1))))
    problems.push(...(await compare("gather last axis", () => tf.gather(t([3, 10, 4], 4), idx([3, 3, 1, 0, 2]), 2))))
    problems.push(...(await compare("gather 1-D", () => tf.gather(t([10], 5), idx([9, 1]), 0))))
    problems.push(...(await compare("gather empty", () => tf.gather(t([10, 3], 6), idx([]), 0))))
    const fb = fallbacks("GatherV2")
    problems.push(...(await compare("gather int32 x", () => tf.gather(ints([5, 3], 7), idx([4, 0])))))
    problems.push(...(await compare("gather batchDims 1", () => tf.gather(t([2, 5, 3], 8), idx([4, 0, 1, 1], [2, 2]), 1, 1))))
    expect(problems).toEqual([])
    expect(fallbacks("GatherV2")).toBe(fb + 2)
    // Out-of-range indices still raise the stock error.
    await tf.setBackend(BLAS_BACKEND)
    expect(() => tf.tidy(() => tf.gather(t([5, 3], 1), idx([5])))).toThrow(/not in \[0, 4\]/)
  })

  it("UnsortedSegmentSum: repeats, unused and out-of-range segments, inner dims; rank-2 ids fall back", async () => {
    const problems: Array<string> = []
    // Typed as 1-D for the op's signature; the last case passes rank-2 ids on purpose (the kernel must fall back).
    const ids = (vals: Array<number>, shape: Array<number> = [vals.length]): tf.Tensor1D => {
      const r: tf.Tensor = tf.tensor(vals, shape, "int32")
      return r as tf.Tensor1D
    }
    problems.push(...(await compare("uss basic", () => tf.unsortedSegmentSum(t([6, 5], 1), ids([0, 3, 3, 1, 0, 3]), 7))))
    problems.push(...(await compare("uss 1-D", () => tf.unsortedSegmentSum(t([6], 2), ids([2, 2, 2, 0, 1, 2]), 3))))
    problems.push(...(await compare("uss 3-D", () => tf.unsortedSegmentSum(t([4, 3, 2], 3), ids([1, 1, 0, 1]), 2))))
    problems.push(...(await compare("uss out of range", () => tf.unsortedSegmentSum(t([5, 3], 4), ids([0, 9, -1, 2, 0]), 3))))
    problems.push(...(await compare("uss one segment", () => tf.unsortedSegmentSum(t([3, 4], 5), ids([0, 0, 0]), 1))))
    const fb = fallbacks("UnsortedSegmentSum")
    problems.push(...(await compare("uss rank-2 ids", () => tf.unsortedSegmentSum(t([2, 3], 6), ids([0, 1, 1, 0, 2, 1], [2, 3]), 3))))
    expect(problems).toEqual([])
    expect(fallbacks("UnsortedSegmentSum")).toBe(fb + 1)
  })

  it("gradients of slice, concat, split, pad, gather (incl. repeated rows) equal the stock ones", async () => {
    const f = () => {
      const x = t([2, 3, 5, 8], 1)
      const table = t([40, 6], 2)
      const idx = tf.tensor([3, 17, 3, 0, 39, 17, 3], [7], "int32")
      const other = t([2, 3, 5, 4], 3)
      const g = tf.grads((x: tf.Tensor, table: tf.Tensor, other: tf.Tensor) => {
        // rotate-half RoPE
        const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 4])
        const x2 = tf.slice(x, [0, 0, 0, 4], [-1, -1, -1, 4])
        const rot = tf.concat([tf.neg(x2), x1], -1)
        const cos = t([1, 1, 5, 8], 4)
        const roped = tf.add(tf.mul(x, cos), tf.mul(rot, t([2, 1, 5, 8], 5)))
        const [p, q] = tf.split(roped, [3, 5], 3)
        const emb = tf.gather(table, idx)
        const gathered = tf.gather(table, tf.tensor([1, 2, 1], [3], "int32"), 1)
        const padded = tf.pad(other, [[0, 0], [1, 0], [0, 0], [2, 2]])
        return tf.addN([
          tf.sum(tf.square(p)),
          tf.sum(tf.mul(q, t([2, 3, 5, 5], 6))),
          tf.sum(tf.square(emb)),
          tf.sum(tf.mul(gathered, t([40, 3], 7))),
          tf.sum(tf.mul(padded, t([2, 4, 5, 8], 8))),
          tf.sum(tf.mul(tf.concat([other, x1], 0), t([4, 3, 5, 4], 9)))
        ]) as tf.Scalar
      })
      return g([x, table, other])
    }
    expect(await compare("grads", f, 1e-6, 1e-5)).toEqual([])
  })
})

describe.skipIf(blasMissing !== undefined)("cpu-blas general broadcasting vs stock cpu", () => {
  const pairs: Array<[Array<number>, Array<number>]> = [
    [[4, 3, 5, 6], [4, 1, 1, 6]], // attention mask
    [[2, 3, 5, 6], [2, 1, 5, 6]], // RoPE cos per batch
    [[2, 3, 5, 6], [1, 1, 5, 6]],
    [[4, 5, 6], [1, 5, 1]],
    [[4, 1], [1, 5]],
    [[4, 1, 6], [1, 5, 1]],
    [[2, 1, 3, 1, 2], [1, 2, 1, 2, 1]],
    [[3, 1, 7], [3, 2, 1]],
    [[1, 7], [5, 1]],
    [[2, 3, 1], [3, 4]],
    [[2, 0, 3], [2, 1, 3]],
    [[65, 1, 3], [1, 2, 3]]
  ]
  const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
    ["add", tf.add],
    ["sub", tf.sub],
    ["mul", tf.mul],
    ["div", tf.div],
    ["squaredDifference", tf.squaredDifference],
    ["pow", (a, b) => tf.pow(tf.abs(a), b)]
  ]

  it("every op on middle, two-sided and alternating broadcasts, both operand orders (bit-identical)", async () => {
    const problems: Array<string> = []
    const before = ["Add", "Sub", "Multiply", "RealDiv", "SquaredDifference", "Pow"].reduce((s, n) => s + fallbacks(n), 0)
    let seed = 700
    for (const [name, op] of ops) {
      for (const [as, bs] of pairs) {
        const s = seed++
        problems.push(...(await compare(`${name} ${as} ∘ ${bs}`, () => op(t(as, s), t(bs, s + 1)))))
        problems.push(...(await compare(`${name} ${bs} ∘ ${as}`, () => op(t(bs, s + 2), t(as, s + 3)))))
      }
    }
    expect(problems).toEqual([])
    expect(["Add", "Sub", "Multiply", "RealDiv", "SquaredDifference", "Pow"].reduce((s, n) => s + fallbacks(n), 0)).toBe(before)
  })

  it("broadcast gradients (sum over broadcast axes) equal the stock ones", async () => {
    const f = () => {
      const g = tf.grads((s: tf.Tensor, m: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(tf.softmax(tf.add(s, m)), tf.div(t([3, 2, 4, 4], 3), tf.add(tf.square(c), 1)))) as tf.Scalar
      )
      return g([t([3, 2, 4, 4], 1), t([3, 1, 1, 4], 2), t([3, 1, 4, 1], 4)])
    }
    expect(await compare("bcast grads", f, 1e-6, 1e-5)).toEqual([])
  })

  it("int32 broadcasts still fall back and stay int32", async () => {
    const fb = fallbacks("Add")
    const r = await runOn(BLAS_BACKEND, () => tf.add(tf.tensor([1, 2], [2, 1], "int32"), tf.tensor([10, 20, 30], [1, 3], "int32")))
    expect(r[0].dtype).toBe("int32")
    expect(Array.from(r[0].values)).toEqual([11, 21, 31, 12, 22, 32])
    expect(fallbacks("Add")).toBe(fb + 1)
  })
})
