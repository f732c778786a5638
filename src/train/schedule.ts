/**
 * Training schedules as pure functions of the (0-based) optimizer step.
 *
 * - `linearAnneal`: the Stage A temperature, τ(step) = τ0 + (τ1 − τ0)·min(1, step / totalSteps) (code: 0.17 → 0.08
 *   over 20,000 steps; step 0 uses τ0).
 * - `warmupCosine`: the Stage A learning rate, as the code's `cosine_lr`: peak·step/warmup during warmup (step 0 →
 *   0), then floor + ½(1 + cos(π·t))·(peak − floor) with t = (step − warmup)/(total − warmup). Unlike the code, t is
 *   clamped to [0, 1], so steps past the end stay at the floor instead of climbing back up.
 * - `linearWarmup`: the Stage B schedule (Hugging Face `get_linear_schedule_with_warmup`): peak·step/warmup, then
 *   a linear decay to 0 at `totalSteps`; warmup = floor(warmupFraction · totalSteps) (Stage B: 15%).
 */

export interface AnnealConfig {
  readonly from: number
  readonly to: number
  readonly totalSteps: number
}

/** Linear interpolation from `from` (step 0) to `to` (step ≥ totalSteps). */
export const linearAnneal = (step: number, c: AnnealConfig): number => {
  const frac = Math.min(1, Math.max(0, step / Math.max(1, c.totalSteps)))
  return c.from + (c.to - c.from) * frac
}

/** The code's Stage A temperature schedule. */
export const stageATemperature: AnnealConfig = { from: 0.17, to: 0.08, totalSteps: 20_000 }

export interface WarmupCosineConfig {
  readonly peak: number
  readonly warmupSteps: number
  readonly totalSteps: number
  /** The learning rate the cosine ends at (code: 1e-5). */
  readonly floor: number
}

/** The code's Stage A learning-rate schedule. */
export const stageALearningRate: WarmupCosineConfig = { peak: 1e-3, warmupSteps: 3_000, totalSteps: 20_000, floor: 1e-5 }

/** Linear warmup from 0, then cosine from `peak` down to `floor` at `totalSteps` (and `floor` afterwards). */
export const warmupCosine = (step: number, c: WarmupCosineConfig): number => {
  if (step < c.warmupSteps) return (c.peak * Math.max(0, step)) / Math.max(1, c.warmupSteps)
  const t = Math.min(1, Math.max(0, (step - c.warmupSteps) / Math.max(1, c.totalSteps - c.warmupSteps)))
  return c.floor + 0.5 * (1 + Math.cos(Math.PI * t)) * (c.peak - c.floor)
}

export interface LinearWarmupConfig {
  readonly peak: number
  readonly totalSteps: number
  /** Fraction of `totalSteps` spent warming up (Stage B: 0.15). */
  readonly warmupFraction: number
}

/** The number of warmup steps of a `LinearWarmupConfig`: floor(fraction · total). */
export const warmupStepsOf = (c: LinearWarmupConfig): number => Math.floor(c.warmupFraction * c.totalSteps)

/** Linear warmup from 0 to `peak`, then linear decay to 0 at `totalSteps` (0 afterwards). */
export const linearWarmup = (step: number, c: LinearWarmupConfig): number => {
  const w = warmupStepsOf(c)
  if (step < w) return (c.peak * Math.max(0, step)) / Math.max(1, w)
  return c.peak * Math.max(0, (c.totalSteps - step) / Math.max(1, c.totalSteps - w))
}
