/**
 * Stage B / fine-tune prompts, token sequences and labels with the real Llama-3 tokenizer plus the reserved tokens:
 * the code's prompt format, the `<foreign_emb>` handling, slot positions, truncation, and labels that cover exactly
 * the target tokens (the code's first-half masking is not reproduced).
 */
import { beforeAll, describe, expect, it } from "vitest"
import type { TextTokenizer } from "../../src/models/tokenizer.ts"
import { loadTokenizerSync, reservedTokens } from "../../src/models/tokenizer.ts"
import { encodeRows, promptOf } from "../../src/train/sftData.ts"
import { llinkPromptOf } from "../../src/artifacts/systems.ts"
import type { StageBDoc } from "../../src/schemas/stageB.ts"
import type { SftExampleRow } from "../../src/train/sftData.ts"
import {
  encodeExample,
  finetunePrompt,
  IGNORE_INDEX,
  instructionText,
  padBatch,
  slotPrompt,
  slotTokens,
  stripTokens,
  taskInstruction
} from "../../src/prompts/slots.ts"
import type { EncodedExample } from "../../src/prompts/slots.ts"
import { lmTargets } from "../../src/train/stageBLoss.ts"

const K = 8
const RESERVED = reservedTokens(K)
let tok: TextTokenizer
let slotIds: Array<number>
beforeAll(() => {
  tok = loadTokenizerSync("llama3", { addedTokens: RESERVED })
  slotIds = slotTokens(K).map((t) => tok.tokenToId(t)!)
})

const TEMPLATE_INPUT = "Instruction: Translate the foreign text to English.\nForeign: <foreign><foreign_emb></foreign>\nAnswer in English only."

const encodeOk = (prompt: string, target: string, maxLen = 768, appendEos = false, withSlots = true): EncodedExample => {
  const r = encodeExample(tok, prompt, target, { maxLen, appendEos, ...(withSlots ? { slotIds } : {}) })
  if (!r.ok) throw new Error(r.reason)
  return r.example
}

describe("prompts", () => {
  it("is the code's prompt: an input in the code's template gives exactly input.replace(<foreign_emb>, slots)", () => {
    const instruction = instructionText(TEMPLATE_INPUT, "translate_to_english", "input", RESERVED)
    expect(instruction).toBe("Translate the foreign text to English.")
    const p = slotPrompt(instruction, K)
    expect(p).toBe(TEMPLATE_INPUT.replace("<foreign_emb>", "<f0> <f1> <f2> <f3> <f4> <f5> <f6> <f7>"))
    expect(finetunePrompt(instruction, "សួស្តី")).toBe(TEMPLATE_INPUT.replace("<foreign_emb>", "សួស្តី"))
  })

  it("handles a free-form <foreign_emb> marker: dropped at the end, 'the foreign text' inside", () => {
    expect(instructionText("Translate this into English:  <foreign_emb>  ", "translate_to_english", "input", RESERVED)).toBe(
      "Translate this into English:"
    )
    expect(instructionText("What does <foreign_emb> say about\n rice?", "qa_about_text", "input", RESERVED)).toBe(
      "What does the foreign text say about rice?"
    )
    expect(instructionText("<foreign_emb>", "summarize_in_english", "input", RESERVED)).toBe(taskInstruction("summarize_in_english"))
    // other reserved strings cannot forge special tokens
    expect(instructionText("Say <f3> and <foreign> <foreign_emb>", "x", "input", RESERVED)).toBe("Say and")
    expect(stripTokens("a<f1>b</foreign>c", RESERVED)).toBe("abc")
    // the code's fixed instruction per task type ignores the input
    expect(instructionText(TEMPLATE_INPUT.replace("Translate", "Render"), "qa_about_text", "taskType")).toBe(
      "Answer questions about the foreign text in English."
    )
    expect(taskInstruction("bullet_pointify")).toBe("Bullet Pointify the foreign text in English.")
  })
})

describe("sequences and labels", () => {
  it("labels cover exactly the target tokens", () => {
    const target = "The cat sat on the mat, and then it slept for a long, long time."
    const prompt = slotPrompt("Translate the foreign text to English.", K)
    const ex = encodeOk(prompt, target)
    const promptIds = tok.encode(prompt, { addSpecialTokens: false })
    const targetIds = tok.encode(` ${target}`, { addSpecialTokens: false })
    expect(ex.ids[0]).toBe(tok.bosId)
    expect(ex.ids).toEqual([tok.bosId, ...promptIds, ...targetIds])
    expect(ex.targetStart).toBe(1 + promptIds.length)
    const labelled = ex.labels.flatMap((l, i) => (l === IGNORE_INDEX ? [] : [i]))
    expect(labelled).toEqual(Array.from({ length: targetIds.length }, (_, i) => ex.targetStart + i))
    labelled.forEach((i) => expect(ex.labels[i]).toBe(ex.ids[i]))
    expect(tok.decode(labelled.map((i) => ex.ids[i]))).toBe(` ${target}`)
    // the same tokens as tokenizing prompt + " " + target in one go (the code's way)
    expect(tok.encode(`${prompt} ${target}`)).toEqual(ex.ids)
    // the slot positions hold <f0> … <f7>, in order, inside the prompt
    expect(ex.slotPositions.map((p) => ex.ids[p])).toEqual(slotIds)
    expect(ex.slotPositions.every((p) => p < ex.targetStart)).toBe(true)
  })

  it("does not reproduce the code's first-half masking: a target longer than the prompt is labelled in full", () => {
    const target = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ")
    const ex = encodeOk(slotPrompt("Translate.", K), target)
    const mid = Math.floor(ex.ids.length / 2)
    expect(ex.targetStart).toBeLessThan(mid) // the code would have masked target tokens before `mid`
    for (let i = 0; i < ex.ids.length; i++) expect(ex.labels[i] !== IGNORE_INDEX).toBe(i >= ex.targetStart)
  })

  it("cuts the target at maxLen, appends EOS on request, skips prompts that leave no room", () => {
    const prompt = slotPrompt("Translate the foreign text to English.", K)
    const full = encodeOk(prompt, "one two three four five six")
    const cut = encodeOk(prompt, "one two three four five six", full.targetStart + 2)
    expect(cut.ids).toEqual(full.ids.slice(0, full.targetStart + 2))
    expect(cut.labels.filter((l) => l !== IGNORE_INDEX)).toHaveLength(2)
    const eos = encodeOk(prompt, "one", 768, true)
    expect(eos.ids[eos.ids.length - 1]).toBe(tok.eosId)
    expect(eos.labels[eos.labels.length - 1]).toBe(tok.eosId)
    const none = encodeExample(tok, prompt, "one", { maxLen: full.targetStart, appendEos: false, slotIds })
    expect(none.ok).toBe(false)
    expect(encodeExample(tok, prompt, "   ", { maxLen: 768, appendEos: false, slotIds }).ok).toBe(false)
    expect(() => encodeExample(tok, slotPrompt("x", 2), "y", { maxLen: 768, appendEos: false, slotIds })).toThrow(/nowhere/)
  })

  it("pads right and shifts labels into next-token targets", () => {
    const prompt = slotPrompt("Translate.", K)
    const a = encodeOk(prompt, "short")
    const b = encodeOk(prompt, "a somewhat longer answer here")
    const batch = padBatch([a, b], 128009)
    const T = b.ids.length
    expect(batch.ids[0]).toHaveLength(T)
    expect(batch.attentionMask[0].reduce((x, y) => x + y, 0)).toBe(a.ids.length)
    expect(batch.labels[0].slice(a.ids.length).every((l) => l === IGNORE_INDEX)).toBe(true)
    const t = lmTargets(batch.labels)
    const nA = a.ids.length - a.targetStart
    expect(t.tokens).toHaveLength(nA + (b.ids.length - b.targetStart))
    expect(t.batch.slice(0, nA).every((x) => x === 0)).toBe(true)
    expect(t.position[0]).toBe(a.targetStart - 1) // the hidden state before the first target token predicts it
    expect(t.tokens[0]).toBe(a.ids[a.targetStart])
    expect(batch.slotPositions).toEqual([a.slotPositions, b.slotPositions])
  })

  it("encodes sft rows for Stage B (slots) and the fine-tune baseline (foreign text), filtering task types", () => {
    const rows: Array<SftExampleRow> = [
      { taskType: "translate_to_english", input: TEMPLATE_INPUT, output: "Hello.", foreignRaw: "សួស្តី", row: 4 },
      { taskType: "qa_about_text", input: "What is <foreign_emb> about?", output: "Greetings.", foreignRaw: "សួស្តី", row: 7 },
      { taskType: "translate_to_english", input: TEMPLATE_INPUT, output: "  ", foreignRaw: "x", row: 9 }
    ]
    const settings = { instruction: "input" as const, appendEos: false, maxSeqLen: 768, taskTypes: [], reserved: RESERVED }
    const slots = encodeRows(tok, rows, settings, { kind: "slots", K, slotIds })
    expect(slots.examples.map((e) => e.row)).toEqual([4, 7])
    expect(slots.skipped).toEqual({ "empty target": 1 })
    expect(tok.decode(slots.examples[1].example.ids)).toContain("Instruction: What is the foreign text about?\nForeign: <foreign><f0> <f1>")
    const onlyTranslate = encodeRows(tok, rows, { ...settings, taskTypes: ["translate_to_english"] }, { kind: "slots", K, slotIds })
    expect(onlyTranslate.examples.map((e) => e.row)).toEqual([4])
    const text = encodeRows(tok, rows, settings, { kind: "text", maxForeignChars: 3 })
    expect(promptOf(rows[0], settings, { kind: "text", maxForeignChars: 3 })).toContain("<foreign>សួស</foreign>") // cut to 3 code points
    expect(text.examples[0].example.slotPositions).toEqual([])
    expect(encodeRows(tok, rows, settings, { kind: "slots", K, slotIds }, 1).examples).toHaveLength(1) // limit
  })

  it("the number pathway: numerals of the foreign text on a line after the slots; off, or no numerals, is the paper's prompt", () => {
    const settings = { instruction: "input" as const, appendEos: false, maxSeqLen: 768, taskTypes: [], reserved: RESERVED }
    const row: SftExampleRow = { taskType: "translate_to_english", input: TEMPLATE_INPUT, output: "It is 384 km, 1,000 riel.", foreignRaw: "ចម្ងាយ ៣៨៤ គីឡូម៉ែត្រ, 1,000 រៀល<f2>", row: 0 }
    const on = promptOf(row, settings, { kind: "slots", K, slotIds, numbers: "copy" })
    expect(on).toBe(slotPrompt("Translate the foreign text to English.", K) .replace("\nAnswer", "\nNumbers: 384; 1,000\nAnswer"))
    expect(promptOf(row, settings, { kind: "slots", K, slotIds, numbers: "off" })).toBe(slotPrompt("Translate the foreign text to English.", K))
    expect(promptOf(row, settings, { kind: "slots", K, slotIds })).toBe(slotPrompt("Translate the foreign text to English.", K))
    expect(promptOf({ ...row, foreignRaw: "សួស្តី" }, settings, { kind: "slots", K, slotIds, numbers: "copy" })).toBe(slotPrompt("Translate the foreign text to English.", K))
    // the slots stay where they were, each once, and the numerals are ordinary tokens after them
    const ex = encodeOk(on, row.output)
    expect(ex.slotPositions).toHaveLength(K)
    expect(tok.decode(ex.ids.slice(ex.slotPositions[K - 1] + 1, ex.targetStart))).toBe("</foreign>\nNumbers: 384; 1,000\nAnswer in English only.")

    // evaluation builds LLINK's prompt as Stage B recorded it: the numerals only when its document says "copy"
    const doc = { addedTokens: RESERVED, prompt: { instruction: "input", appendEos: false, maxSeqLen: 768 } } as unknown as StageBDoc
    const sft = { id: 0, row: 0, task_type: row.taskType, bucket: "content", instruction: "", input: row.input, output: row.output, foreign_raw: row.foreignRaw, english_ref: row.output, offline: true } as const
    expect(llinkPromptOf({ stageBDoc: doc, K, slotIds, chooser: undefined }, sft)).toBe(promptOf(row, settings, { kind: "slots", K, slotIds }))
    expect(llinkPromptOf({ stageBDoc: { ...doc, prompt: { ...doc.prompt, numbers: "copy" } }, K, slotIds, chooser: undefined }, sft)).toBe(on)
  })
})
