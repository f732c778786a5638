/**
 * The slot policy (`stageB.slotPolicy`): K from the encoder token count, the bounds checks, the training draw, and
 * the prompts: for every K in [min, max] the prompt carries exactly the first K slot tokens and the encoded rows'
 * slot positions are theirs, in order.
 */
import { Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { loadTokenizerSync, reservedTokens, type TextTokenizer } from "../../src/models/tokenizer.ts"
import { drawSlots, lengthChooser, maxSlots, policyProblem, SlotPolicy, slotsForLength } from "../../src/prompts/slotPolicy.ts"
import { slotTokens } from "../../src/prompts/slots.ts"
import { encodeRows, promptOf, type SftExampleRow, slotCountOf } from "../../src/train/sftData.ts"

const policy = { min: 2, max: 16, tokensPerSlot: 3 }

describe("slot policy", () => {
  it("K = clamp(⌈n / r⌉, min, max)", () => {
    const cases: ReadonlyArray<readonly [number, number]> = [[0, 2], [1, 2], [6, 2], [7, 3], [9, 3], [10, 4], [45, 15], [46, 16], [48, 16], [400, 16]]
    for (const [n, k] of cases) expect(slotsForLength(policy, n), `n = ${n}`).toBe(k)
    expect(slotsForLength({ min: 1, max: 8, tokensPerSlot: 2.5 }, 6)).toBe(3)
  })

  it("decodes the config forms and rejects the bad ones; K_max and the bounds against models.slots", () => {
    const decode = Schema.decodeUnknownSync(SlotPolicy)
    expect(decode({ fixed: 4 })).toEqual({ fixed: 4 })
    expect(decode({ byLength: policy })).toEqual({ byLength: policy })
    expect(() => decode({ fixed: 0 })).toThrow()
    expect(() => decode({ byLength: { min: 2, max: 8 } })).toThrow()
    expect(() => decode({ byLength: { ...policy, tokensPerSlot: 0 } })).toThrow()
    expect(maxSlots(undefined, 8)).toBe(8)
    expect(maxSlots({ fixed: 4 }, 8)).toBe(4)
    expect(maxSlots({ byLength: policy }, 16)).toBe(16)
    expect(policyProblem(undefined, 8)).toBeUndefined()
    expect(policyProblem({ fixed: 8 }, 8)).toBeUndefined()
    expect(policyProblem({ fixed: 9 }, 8)).toMatch(/slotPolicy\.fixed is 9 but models\.slots is 8/)
    expect(policyProblem({ byLength: policy }, 8)).toMatch(/byLength\.max is 16 but models\.slots is 8/)
    expect(policyProblem({ byLength: { ...policy, min: 17 } }, 16)).toMatch(/min \(17\) is above its max \(16\)/)
    expect(policyProblem({ byLength: policy }, 16)).toBeUndefined()
  })

  it("a training draw is uniform on [min, budget] and never leaves it", () => {
    for (const budget of [1, 2, 5, 16]) {
      const seen = new Map<number, number>()
      const n = 4000
      for (let i = 0; i < n; i++) {
        const k = drawSlots(2, budget, (i + 0.5) / n)
        seen.set(k, (seen.get(k) ?? 0) + 1)
      }
      const lo = Math.min(2, budget)
      expect([...seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: budget - lo + 1 }, (_, i) => lo + i))
      for (const c of seen.values()) expect(Math.abs(c - n / seen.size)).toBeLessThanOrEqual(1)
    }
    expect(drawSlots(2, 6, 0)).toBe(2)
    expect(drawSlots(2, 6, 0.999999)).toBe(6)
  })
})

describe("slot policy prompts", () => {
  const K = 16
  const RESERVED = reservedTokens(K)
  let tok: TextTokenizer
  let slotIds: Array<number>
  beforeAll(() => {
    tok = loadTokenizerSync("llama3", { addedTokens: RESERVED })
    slotIds = slotTokens(K).map((t) => tok.tokenToId(t)!)
  })
  const settings = { instruction: "taskType" as const, appendEos: true, maxSeqLen: 256, taskTypes: [], reserved: RESERVED }

  it("for every K in [min, max] the prompt and the slot rows agree: the first K slot tokens, each once, in order", () => {
    // a "tokenizer" of one token per character makes the example's own K exactly ⌈chars / r⌉ (clamped)
    const chooser = lengthChooser(policy, (text) => Array.from(text).length)
    const rows: Array<SftExampleRow> = Array.from({ length: 60 }, (_, i) => ({
      taskType: "translate_to_english",
      input: "",
      output: `Sentence ${i}.`,
      foreignRaw: "ក".repeat(i) + (i % 7 === 0 ? "<f3>" : ""),
      row: i
    }))
    const kind = { kind: "slots" as const, K, slotIds, numbers: "copy" as const, chooser }
    const set = encodeRows(tok, rows, settings, kind)
    expect(set.examples).toHaveLength(rows.length)
    const seenK = new Set<number>()
    set.examples.forEach((e, i) => {
      const own = slotsForLength(policy, i) // the reserved "<f3>" is stripped before counting
      expect(slotCountOf(rows[i], settings, kind)).toBe(own)
      expect(e.example.slotPositions).toHaveLength(own)
      expect(e.byK).toHaveLength(own - policy.min + 1)
      e.byK!.forEach((ex, j) => {
        const k = policy.min + j
        seenK.add(k)
        const prompt = promptOf(rows[i], settings, kind, k)
        expect(prompt).toContain(`<foreign>${slotTokens(k).join(" ")}</foreign>`)
        expect(ex.slotPositions).toHaveLength(k)
        expect(ex.slotPositions.map((p) => ex.ids[p])).toEqual(slotIds.slice(0, k))
        expect(slotIds.slice(k).some((id) => ex.ids.includes(id))).toBe(false)
        // everything but the slot run is the same prompt: the target and its labels do not move with K
        expect(ex.ids.slice(ex.targetStart)).toEqual(e.example.ids.slice(e.example.targetStart))
        expect(ex.ids.length - ex.targetStart).toBe(e.example.ids.length - e.example.targetStart)
      })
      expect(e.byK![e.byK!.length - 1]).toBe(e.example)
    })
    expect([...seenK].sort((a, b) => a - b)).toEqual(Array.from({ length: K - policy.min + 1 }, (_, i) => policy.min + i))
  })

  it("without a chooser an example has all K slots and no per-K copies (the paper's prompt)", () => {
    const row: SftExampleRow = { taskType: "translate_to_english", input: "", output: "Hi.", foreignRaw: "សួស្តី", row: 0 }
    const set = encodeRows(tok, [row], settings, { kind: "slots", K, slotIds })
    expect(set.examples[0].byK).toBeUndefined()
    expect(set.examples[0].example.slotPositions.map((p) => set.examples[0].example.ids[p])).toEqual(slotIds)
  })
})
