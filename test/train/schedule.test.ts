import { describe, expect, it } from "vitest"
import {
  linearAnneal,
  linearWarmup,
  stageALearningRate,
  stageATemperature,
  warmupCosine,
  warmupStepsOf
} from "../../src/train/schedule.ts"

describe("schedules", () => {
  it("anneal the temperature linearly 0.17 → 0.08 over 20,000 steps, then hold", () => {
    expect(linearAnneal(0, stageATemperature)).toBeCloseTo(0.17, 12)
    expect(linearAnneal(5_000, stageATemperature)).toBeCloseTo(0.17 - 0.09 / 4, 12)
    expect(linearAnneal(10_000, stageATemperature)).toBeCloseTo(0.125, 12)
    expect(linearAnneal(20_000, stageATemperature)).toBeCloseTo(0.08, 12)
    expect(linearAnneal(30_000, stageATemperature)).toBeCloseTo(0.08, 12)
    expect(linearAnneal(-5, stageATemperature)).toBeCloseTo(0.17, 12)
  })

  it("warm up linearly then follow a cosine down to the floor (the code's cosine_lr)", () => {
    const lr = (s: number): number => warmupCosine(s, stageALearningRate)
    expect(lr(0)).toBe(0)
    expect(lr(1)).toBeCloseTo(1e-3 / 3000, 15)
    expect(lr(1_500)).toBeCloseTo(5e-4, 15)
    expect(lr(3_000)).toBeCloseTo(1e-3, 15)
    // halfway through the cosine: floor + half the range
    expect(lr(3_000 + 8_500)).toBeCloseTo(1e-5 + 0.5 * (1e-3 - 1e-5), 15)
    // a quarter of the way: floor + (1 + cos(π/4))/2 · range
    expect(lr(3_000 + 4_250)).toBeCloseTo(1e-5 + 0.5 * (1 + Math.SQRT1_2) * (1e-3 - 1e-5), 15)
    expect(lr(20_000)).toBeCloseTo(1e-5, 15)
    expect(lr(26_000)).toBeCloseTo(1e-5, 15) // clamped (the code would climb back up)
    for (let s = 3_000; s < 20_000; s += 500) expect(lr(s + 500)).toBeLessThan(lr(s))
    for (let s = 0; s < 3_000; s += 500) expect(lr(s + 500)).toBeGreaterThan(lr(s))
  })

  it("Stage B: linear warmup over 15% then linear decay to 0", () => {
    const c = { peak: 1e-4, totalSteps: 1_000, warmupFraction: 0.15 }
    expect(warmupStepsOf(c)).toBe(150)
    expect(linearWarmup(0, c)).toBe(0)
    expect(linearWarmup(75, c)).toBeCloseTo(5e-5, 15)
    expect(linearWarmup(150, c)).toBeCloseTo(1e-4, 15)
    expect(linearWarmup(575, c)).toBeCloseTo(5e-5, 15)
    expect(linearWarmup(1_000, c)).toBe(0)
    expect(linearWarmup(1_200, c)).toBe(0)
    expect(warmupStepsOf({ peak: 1, totalSteps: 7, warmupFraction: 0.15 })).toBe(1)
  })
})
