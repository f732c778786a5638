/**
 * How many slots an example gets (`stageB.slotPolicy`, beyond the paper: its §7.3 proposes K = 2–4 for simple inputs
 * and 12–16 for dense ones).
 *
 * - absent: K = `models.slots` for every example (the paper's fixed K = 8; the run writes exactly what it wrote
 *   before the policy existed);
 * - `{ "fixed": K }`: K for every example (K ≤ `models.slots`);
 * - `{ "byLength": { "min", "max", "tokensPerSlot": r } }`: the slot module makes K_max = `max` slots and an example
 *   uses the first K = clamp(⌈n / r⌉, min, max) of them, n being the foreign text's encoder (XLM-R) token count,
 *   special tokens excluded, after the reserved-token strings are stripped.
 *
 * Training under `byLength` draws each example's K uniformly from [min, K(x)] on every micro-batch (seeded by step,
 * micro-batch and position), so every prefix length up to the example's own budget is trained and the budget itself
 * is what inference uses. Validation, generation and retrieval use K(x).
 */
import { Schema } from "effect"
import { Positive, Size } from "../schemas/fields.ts"
import { stripTokens } from "./slots.ts"

export const FixedSlots = Schema.Struct({ fixed: Size })
export const ByLengthSlots = Schema.Struct({
  byLength: Schema.Struct({ min: Size, max: Size, tokensPerSlot: Positive })
})
export const SlotPolicy = Schema.Union([FixedSlots, ByLengthSlots])
export type SlotPolicy = typeof SlotPolicy.Type
export type ByLengthPolicy = (typeof ByLengthSlots.Type)["byLength"]

/** The slot module's K (K_max): the policy's fixed K or its `max`; `modelsSlots` without a policy. */
export const maxSlots = (policy: SlotPolicy | undefined, modelsSlots: number): number =>
  policy === undefined ? modelsSlots : "fixed" in policy ? policy.fixed : policy.byLength.max

/** What is wrong with a policy for a run whose models document has `modelsSlots` slot tokens (undefined: fine). */
export const policyProblem = (policy: SlotPolicy | undefined, modelsSlots: number): string | undefined => {
  if (policy === undefined) return undefined
  if ("fixed" in policy) {
    return policy.fixed > modelsSlots ? `stageB.slotPolicy.fixed is ${policy.fixed} but models.slots is ${modelsSlots} (the decoder has only that many slot tokens)` : undefined
  }
  const { min, max } = policy.byLength
  if (min > max) return `stageB.slotPolicy.byLength.min (${min}) is above its max (${max})`
  if (max > modelsSlots) return `stageB.slotPolicy.byLength.max is ${max} but models.slots is ${modelsSlots} (the decoder has only that many slot tokens; raise models.slots)`
  return undefined
}

/** The policy in words, for the report. */
export const describeSlotPolicy = (policy: SlotPolicy): string =>
  "fixed" in policy
    ? `fixed K = ${policy.fixed}`
    : `K(x) = clamp(⌈encoder tokens / ${policy.byLength.tokensPerSlot}⌉, ${policy.byLength.min}, ${policy.byLength.max}) (stageB.slotPolicy byLength)`

/** K for an example of `encoderTokens` foreign tokens under a length policy: clamp(⌈n / r⌉, min, max). */
export const slotsForLength = (policy: ByLengthPolicy, encoderTokens: number): number =>
  Math.min(policy.max, Math.max(policy.min, Math.ceil(encoderTokens / policy.tokensPerSlot)))

/** Chooses K per example: `of(foreign)` is the example's K; `min` the smallest K a training draw may take. */
export interface SlotChooser {
  readonly min: number
  readonly max: number
  readonly of: (foreign: string) => number
}

/** The chooser of a length policy, counting tokens with `countTokens` (the encoder tokenizer, no special tokens). */
export const lengthChooser = (policy: ByLengthPolicy, countTokens: (text: string) => number): SlotChooser => ({
  min: policy.min,
  max: policy.max,
  of: (foreign) => slotsForLength(policy, countTokens(foreign))
})

/**
 * How many slots an example whose foreign text is `foreign` gets: the chooser's K of the text with the reserved-token
 * strings stripped (as every prompt strips them), or all `K` without a chooser.
 */
export const slotCountFor = (foreign: string, K: number, chooser: SlotChooser | undefined, reserved: ReadonlyArray<string>): number =>
  chooser === undefined ? K : chooser.of(stripTokens(foreign, reserved))

/**
 * A training draw of K for an example whose budget is `budget`: uniform on [min, budget], from `u` ∈ [0, 1).
 */
export const drawSlots = (min: number, budget: number, u: number): number => {
  const lo = Math.min(min, budget)
  return lo + Math.min(budget - lo, Math.floor(u * (budget - lo + 1)))
}
