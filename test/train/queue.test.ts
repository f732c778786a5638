import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { makeRng } from "../../src/models/rng.ts"
import { matMulABtJs, topKIndices } from "../../src/train/hostMath.ts"
import type { MatMulABt } from "../../src/train/hostMath.ts"
import { decodeF16, encodeF16, f16BitsToF32, f32ToF16Bits, TeacherQueue } from "../../src/train/queue.ts"

// ---------------------------------------------------------------------------------------------------------------
// float16

/** The float32 right below/above x (x finite, non-zero, positive). */
const f32Next = (x: number, dir: 1 | -1): number => {
  const f = new Float32Array([x])
  const u = new Uint32Array(f.buffer)
  u[0] += dir
  return f[0]
}

describe("float16 conversion", () => {
  it("handles the special and boundary values", () => {
    const cases: ReadonlyArray<readonly [number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite half
      [65519.99, 0x7bff], // below the midpoint to "65536" → stays finite
      [65520, 0x7c00], // the midpoint: ties to even → +Inf
      [1e6, 0x7c00], // overflow
      [-1e6, 0xfc00],
      [Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it: tie → even (0)
      [f32Next(2 ** -25, 1), 0x0001], // just above the tie → up
      [3 * 2 ** -25, 0x0002], // 1.5 units: tie between 1 and 2 → even (2)
      [5 * 2 ** -25, 0x0002], // 2.5 units: tie between 2 and 3 → even (2)
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [1023.5 * 2 ** -24, 0x0400], // tie between largest subnormal (odd) and smallest normal → normal
      [1 + 2 ** -11, 0x3c00], // tie between 1 (even) and 1+2^-10 → 1
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 (odd) and 0x3c02 → 0x3c02
      [f32Next(1 + 2 ** -11, 1), 0x3c01], // just above a tie → up
      [1e-10, 0x0000], // underflow
      [-1e-10, 0x8000],
      [1.401298464324817e-45, 0x0000] // float32 subnormal → 0
    ]
    for (const [x, bits] of cases) {
      expect(f32ToF16Bits(x).toString(16), `${x}`).toBe(bits.toString(16))
    }
    const nan = f32ToF16Bits(Number.NaN)
    expect((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0).toBe(true)
    expect(Number.isNaN(f16BitsToF32(nan))).toBe(true)
    expect(f16BitsToF32(0x7c00)).toBe(Number.POSITIVE_INFINITY)
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true)
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24)
    expect(f16BitsToF32(0x7bff)).toBe(65504)
  })

  it("round-trips every one of the 65,536 patterns (NaNs stay NaN)", () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16BitsToF32(h)
      if (Number.isNaN(x)) {
        expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(x)))).toBe(true)
        continue
      }
      if (f32ToF16Bits(x) !== h) expect(f32ToF16Bits(x).toString(16), `pattern ${h.toString(16)}`).toBe(h.toString(16))
    }
  })

  it("rounds to nearest, ties to even, at every midpoint between neighbouring halves", () => {
    let bad = 0
    for (let h = 0; h < 0x7c00; h++) {
      const lo = f16BitsToF32(h)
      const hi = h + 1 === 0x7c00 ? 65536 : f16BitsToF32(h + 1) // the rounding neighbour of 65504 is 2^16
      const mid = (lo + hi) / 2 // exact in float32 (12 significant bits)
      expect(Math.fround(mid)).toBe(mid)
      const even = (h & 1) === 0 ? h : h + 1
      for (const sign of [0, 0x8000]) {
        const s = sign === 0 ? 1 : -1
        if (f32ToF16Bits(s * mid) !== (even | sign)) bad++
        if (mid > 0 && f32ToF16Bits(s * f32Next(mid, -1)) !== (h | sign)) bad++
        if (f32ToF16Bits(s * f32Next(mid, 1)) !== ((h + 1) | sign)) bad++
      }
    }
    expect(bad).toBe(0)
  })

  it("agrees with V8's Math.f16round on random values", () => {
    // the pinned node (22, npm's `node` package, which runs the tests) has Math.f16round behind --js-float16array
    const probe = spawnSync(process.execPath, ["--js-float16array", "-e", "process.stdout.write(typeof Math.f16round)"], {
      encoding: "utf8"
    })
    expect(probe.stdout, `node ${process.version} has no Math.f16round under --js-float16array`).toBe("function")
    const rng = makeRng(5)
    const xs = Float32Array.from({ length: 4000 }, (_, i) => {
      const mag = 2 ** (Math.floor(rng.uniform() * 46) - 28) // 2^-28 … 2^17: subnormals, normals, overflow
      return (i % 2 === 0 ? 1 : -1) * mag * (1 + rng.uniform())
    })
    const script = `const xs=JSON.parse(require("fs").readFileSync(0,"utf8"));process.stdout.write(JSON.stringify(xs.map(Math.f16round)))`
    const res = spawnSync(process.execPath, ["--js-float16array", "-e", script], { input: JSON.stringify([...xs]), encoding: "utf8" })
    const want: Array<number | null> = JSON.parse(res.stdout)
    let bad = 0
    xs.forEach((x, i) => {
      const w = want[i] ?? (x > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY) // JSON writes ±Inf as null
      if (f16BitsToF32(f32ToF16Bits(x)) !== w) bad++
    })
    expect(bad).toBe(0)
  })

  it("encodes and decodes arrays", () => {
    const src = Float32Array.from([0.1, -3.25, 70000, 2 ** -24])
    const bits = encodeF16(src)
    expect([...decodeF16(bits)]).toEqual([f16BitsToF32(f32ToF16Bits(0.1)), -3.25, Number.POSITIVE_INFINITY, 2 ** -24])
    expect([...decodeF16(bits, 1, 2)]).toEqual([-3.25, Number.POSITIVE_INFINITY])
  })
})

// ---------------------------------------------------------------------------------------------------------------
// top-k

describe("topKIndices", () => {
  const bruteTop = (xs: ArrayLike<number>, k: number, skip?: (i: number) => boolean): number[] =>
    Array.from(xs, (v, i) => ({ v: Number.isNaN(v) ? Number.NEGATIVE_INFINITY : v, i }))
      .filter(({ i }) => skip === undefined || !skip(i))
      .sort((a, b) => b.v - a.v || a.i - b.i)
      .slice(0, k)
      .map(({ i }) => i)

  it("matches a full sort (ties → lower index, NaN last), with offsets and skips", () => {
    const rng = makeRng(9)
    for (let trial = 0; trial < 30; trial++) {
      const n = 1 + Math.floor(rng.uniform() * 60)
      // few distinct values → many ties; a few NaNs and infinities
      const xs = Float32Array.from({ length: n + 5 }, () => {
        const u = rng.uniform()
        if (u < 0.05) return Number.NaN
        if (u < 0.08) return Number.NEGATIVE_INFINITY
        return Math.floor(rng.uniform() * 7) - 3
      })
      const k = Math.floor(rng.uniform() * (n + 3))
      const slice = xs.subarray(5, 5 + n)
      expect([...topKIndices(xs, k, 5, n)]).toEqual(bruteTop(slice, k))
      const skip = (i: number): boolean => i % 3 === 1
      expect([...topKIndices(xs, k, 5, n, skip)]).toEqual(bruteTop(slice, k, skip))
    }
    expect(topKIndices([1, 2], 0).length).toBe(0)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// the queue

const randRows = (seed: number, rows: number, d: number): Float32Array => {
  const rng = makeRng(seed)
  return Float32Array.from({ length: rows * d }, () => rng.normal())
}

const unit64 = (x: ArrayLike<number>): number[] => {
  const n = Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0))
  return Array.from(x, (v) => v / n)
}

const rowOf = (x: Float32Array, r: number, d: number): Float32Array => x.subarray(r * d, (r + 1) * d)

describe("TeacherQueue storage", () => {
  it("is a FIFO ring: oldest overwritten first", () => {
    const d = 2
    const q = new TeacherQueue(4, d)
    // row r points at angle r (all unit, distinct), so each row is recognisable after fp16 rounding
    const rows = (from: number, n: number): Float32Array =>
      Float32Array.from({ length: n * d }, (_, i) => (i % 2 === 0 ? Math.cos(from + (i >> 1)) : Math.sin(from + (i >> 1))))
    const angleOf = (x: Float32Array, r: number): number => Math.round(Math.atan2(x[r * d + 1], x[r * d]))
    q.enqueue(rows(0, 3))
    expect(q.size).toBe(3)
    expect(q.head).toBe(3)
    expect([0, 1, 2].map((r) => angleOf(q.fifoRows(), r))).toEqual([0, 1, 2])
    q.enqueue(rows(3, 3)) // angles 3, 4, 5: overwrites slots 3, 0, 1
    expect(q.size).toBe(4)
    expect(q.head).toBe(2)
    const norm = (a: number): number => Math.round(Math.atan2(Math.sin(a), Math.cos(a)))
    expect([0, 1, 2, 3].map((r) => angleOf(q.fifoRows(), r))).toEqual([2, 3, 4, 5].map(norm))
    expect([0, 1, 2, 3].map((i) => q.fifoSlot(i))).toEqual([2, 3, 0, 1])
    // a batch longer than the capacity keeps its last `capacity` rows
    q.enqueue(rows(10, 6))
    expect([0, 1, 2, 3].map((r) => angleOf(q.fifoRows(), r))).toEqual([12, 13, 14, 15].map(norm))
  })

  it("stores the L2-normalised rows rounded to float16", () => {
    const d = 8
    const q = new TeacherQueue(5, d)
    const x = randRows(1, 3, d).map((v) => 37 * v)
    q.enqueue(x)
    for (let r = 0; r < 3; r++) {
      const want = encodeF16(Float32Array.from(unit64(rowOf(x, r, d))))
      expect(q.slotBits(r)).toEqual(want)
      expect(q.gather([r])).toEqual(decodeF16(want))
      const n = Math.sqrt(q.gather([r]).reduce((s, v) => s + v * v, 0))
      expect(Math.abs(n - 1)).toBeLessThan(2e-3)
    }
    expect(() => q.gather([3])).toThrow(/not filled/)
  })

  it("snapshot → restore continues identically", () => {
    const d = 4
    const q = new TeacherQueue(6, d)
    q.enqueue(randRows(2, 8, d))
    const snap = q.snapshot()
    const r = TeacherQueue.restore(snap)
    expect(r.size).toBe(q.size)
    expect(r.head).toBe(q.head)
    expect(r.fifoRows()).toEqual(q.fifoRows())
    const more = randRows(3, 3, d)
    q.enqueue(more)
    r.enqueue(more)
    expect(r.snapshot()).toEqual(q.snapshot())
    // the snapshot is a copy, not a view
    expect(snap.bits).not.toEqual(q.snapshot().bits)
    expect(() => TeacherQueue.restore({ ...snap, bits: snap.bits.subarray(1) })).toThrow(/values/)
    expect(() => TeacherQueue.restore({ ...snap, size: 3, head: 5 })).toThrow(/head/)
  })
})

describe("TeacherQueue.selectHard", () => {
  const D = 6
  const CAP = 50
  const makeQueue = (mirror: boolean): TeacherQueue => {
    const q = new TeacherQueue(CAP, D, { mirror })
    q.enqueue(randRows(20, 70, D)) // wrapped: slots hold rows 20 … 69
    return q
  }
  const P = randRows(21, 3, D)

  /** Brute force in float64 over the decoded slots, full sort (score desc, slot asc). */
  const brute = (q: TeacherQueue, p: Float32Array, rows: number, k: number, rule: "per-row" | "shared-mean"): number[][] => {
    const slots = Array.from({ length: q.size }, (_, s) => unit64(q.gather([s])))
    const pn = Array.from({ length: rows }, (_, b) => unit64(rowOf(p, b, D)))
    const cos = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i], 0)
    const top = (score: (s: number) => number): number[] =>
      slots
        .map((_, s) => ({ s, v: score(s) }))
        .sort((a, b) => b.v - a.v || a.s - b.s)
        .slice(0, k)
        .map(({ s }) => s)
    if (rule === "shared-mean") return [top((s) => pn.reduce((acc, r) => acc + cos(r, slots[s]), 0) / rows)]
    return pn.map((r) => top((s) => cos(r, slots[s])))
  }

  for (const mirror of [true, false]) {
    it(`per-row and shared-mean match brute force (mirror ${mirror})`, () => {
      const q = makeQueue(mirror)
      const perRow = q.selectHard(P, 3, 7, "per-row")
      expect(perRow.k).toBe(7)
      const want = brute(q, P, 3, 7, "per-row")
      for (let b = 0; b < 3; b++) expect([...perRow.indices.subarray(b * 7, (b + 1) * 7)]).toEqual(want[b])
      const shared = q.selectHard(P, 3, 7, "shared-mean")
      expect([...shared.indices]).toEqual(brute(q, P, 3, 7, "shared-mean")[0])
      // the reported scores are the cosines of the selected slots, best first
      for (let j = 1; j < 7; j++) expect(shared.scores[j]).toBeLessThanOrEqual(shared.scores[j - 1])
      // the two rules differ on this data (otherwise the test could not tell them apart)
      expect([...shared.indices]).not.toEqual([...perRow.indices.subarray(0, 7)])
    })
  }

  it("uses the given matmul and caps k at the queue size", () => {
    const q = new TeacherQueue(10, D)
    q.enqueue(randRows(5, 4, D))
    let calls = 0
    const counting: MatMulABt = (a, ar, b, br, d, out) => {
      calls++
      return matMulABtJs(a, ar, b, br, d, out)
    }
    const sel = q.selectHard(P, 3, 256, "per-row", { matmul: counting })
    expect(calls).toBeGreaterThan(0)
    expect(sel.k).toBe(4)
    expect(sel.indices.length).toBe(12)
    const empty = new TeacherQueue(10, D).selectHard(P, 3, 5, "shared-mean")
    expect(empty.k).toBe(0)
  })

  it("breaks exact ties by the lower slot", () => {
    const q = new TeacherQueue(8, 2)
    // slots: 0 [1,0], 1 [0,1], 2 [1,0], 3 [0.6,0.8], 4 [1,0]
    q.enqueue(Float32Array.from([1, 0, 0, 1, 1, 0, 0.6, 0.8, 1, 0]))
    const p = Float32Array.from([1, 0, 2, 0]) // both rows point along [1, 0]
    expect([...q.selectHard(p, 2, 4, "per-row").indices]).toEqual([0, 2, 4, 3, 0, 2, 4, 3])
    expect([...q.selectHard(p, 2, 3, "shared-mean").indices]).toEqual([0, 2, 4])
  })

  it("can exclude near-copies of each row's own teacher", () => {
    const q = new TeacherQueue(20, D)
    const teachers = randRows(30, 2, D)
    q.enqueue(randRows(31, 5, D))
    q.enqueue(teachers) // slots 5, 6 hold the two teachers
    q.enqueue(randRows(32, 5, D))
    const p = Float32Array.from(teachers) // projections that already match their teachers
    const plain = q.selectHard(p, 2, 3, "per-row")
    expect(plain.indices[0]).toBe(5)
    expect(plain.indices[3]).toBe(6)
    const ex = q.selectHard(p, 2, 3, "per-row", { exclude: { teachers, minCosine: 0.9999 } })
    expect([...ex.indices.subarray(0, 3)]).not.toContain(5)
    expect([...ex.indices.subarray(3, 6)]).not.toContain(6)
    // row 0 may still get row 1's teacher as a negative (and vice versa): only its own positive is excluded
    const exShared = q.selectHard(p, 2, 12, "shared-mean", { exclude: { teachers, minCosine: 0.9999 } })
    expect(exShared.k).toBe(10)
    expect([...exShared.indices]).not.toContain(5)
    expect([...exShared.indices]).not.toContain(6)
    // with exclusion and k = everything, per-row k shrinks to what every row has left
    expect(q.selectHard(p, 2, 12, "per-row", { exclude: { teachers, minCosine: 0.9999 } }).k).toBe(11)
    // and the remaining order is the brute-force order without the excluded slot
    const all = q.selectHard(p, 2, 12, "per-row")
    expect([...ex.indices.subarray(0, 3)]).toEqual([...all.indices.subarray(0, 12)].filter((s) => s !== 5).slice(0, 3))
  })
})
