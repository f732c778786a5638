/**
 * `generate`'s wiring of the number pointer (`numberSteers`): off gives no steer; on gives one steer per example,
 * reading that example's own foreign text, through the system's tokenizer (the real Llama-3 one here).
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadTokenizer } from "../../src/models/tokenizer.ts"
import { numberSteers } from "../../src/text/numberPointer.ts"
import type { SftRow } from "../../src/schemas/sft.ts"

const row = (foreign: string, i: number): SftRow => ({
  id: i,
  row: i,
  task_type: "translate_to_english",
  bucket: "content",
  instruction: "Translate to English.",
  input: "<foreign_emb>",
  output: "",
  foreign_raw: foreign,
  english_ref: "",
  offline: true
})

describe("numberSteers", () => {
  it("off: none; on: each example's steer copies its own numerals in place of the decoder's digits", async () => {
    const tok = await Effect.runPromise(loadTokenizer("llama3"))
    const rows = [row("ចម្ងាយ ៣៨៤ គីឡូម៉ែត្រ", 0), row("តម្លៃ ១,០០០ រៀល", 1), row("គ្មានលេខ", 2)]
    expect(numberSteers("off", tok, rows)).toBeUndefined()
    const steers = numberSteers("on", tok, rows)!
    expect(steers.length).toBe(3)
    const picks = [...tok.encode("It is 12 km away", { addSpecialTokens: false })]
    const out = steers.map((steer) => tok.decode(picks.map((p) => steer(p))))
    expect(out[0]).toBe("It is 384 km away")
    // a numeral of three tokens is copied whole; the decoder's picks during the copy (" km away") are ignored
    expect(out[1]).toBe("It is 1,000")
    expect(out[2]).toBe("It is 12 km away")
  })
})
