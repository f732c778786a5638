/**
 * The bulk draw `fillU32` is the same stream as `nextU32`, and the dropout masks built on it (LoRA's, the
 * projector's) equal the plain one-draw-at-a-time references written here, across their 8,192-draw chunks.
 */
import { describe, expect, it } from "vitest"
import { dropoutMask as loraDropoutMask } from "../../src/models/lora.ts"
import { dropoutMask as projectorDropoutMask } from "../../src/models/projector.ts"
import { makeRng } from "../../src/models/rng.ts"

describe("rng", () => {
  it("fillU32 draws the nextU32 stream and leaves the generator where nextU32 would", () => {
    const a = makeRng(123)
    const b = makeRng(123)
    for (const n of [1, 7, 8192, 10_001]) {
      const bulk = new Uint32Array(n)
      a.fillU32(bulk)
      const one = Uint32Array.from({ length: n }, () => b.nextU32())
      expect(bulk).toEqual(one)
    }
    expect(a.nextU32()).toBe(b.nextU32())
    expect(a.uniform()).toBe(b.uniform())
  })

  it("LoRA's dropout mask is the one-draw-at-a-time mask", () => {
    const p = 0.05
    const n = 20_000
    const mask = loraDropoutMask(makeRng(7), n, p)
    const ref = makeRng(7)
    const want = Float32Array.from({ length: n }, () => (ref.nextU32() >= p * 4294967296 ? 1 / (1 - p) : 0))
    expect(mask).toEqual(want)
    const zeros = mask.filter((v) => v === 0).length
    expect(zeros).toBeGreaterThan(0.03 * n)
    expect(zeros).toBeLessThan(0.07 * n)
  })

  it("the projector's dropout mask is the one-uniform-at-a-time mask", () => {
    const p = 0.1
    const mask = projectorDropoutMask(makeRng(11), 100, 250, p)
    const ref = makeRng(11)
    const want = Float32Array.from({ length: 100 * 250 }, () => (ref.uniform() < p ? 0 : 1 / (1 - p)))
    expect(mask).toEqual(want)
  })
})
