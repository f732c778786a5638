/**
 * The number pointer (`src/text/numberPointer.ts`) on the real Llama-3 tokenizer: the decoder's picks are given as a
 * stream of tokens, one per step (a step during a copy ignores its pick, as in `generate`), and the emitted text is
 * compared with what the rule promises: which numeral is copied, that multi-token numerals are copied whole, that a
 * number's later groups are not replaced, and that text without numerals, or with all of them used, is unchanged.
 */
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { loadTokenizer, type TextTokenizer } from "../../src/models/tokenizer.ts"
import { isDigitGroup, numberPointer, pointerTokenizer } from "../../src/text/numberPointer.ts"

let tok: TextTokenizer
beforeAll(async () => {
  tok = await Effect.runPromise(loadTokenizer("llama3"))
})

const ids = (text: string) => [...tok.encode(text, { addSpecialTokens: false })]

/** The text emitted when the decoder's picks are `picks` (a token id or a text of several ids, one per step). */
const steered = (source: string, picks: ReadonlyArray<number | string>): string => {
  const steer = numberPointer(source, pointerTokenizer(tok))
  const flat = picks.flatMap((p) => (typeof p === "number" ? [p] : ids(p)))
  return tok.decode(flat.map((p) => steer(p)), { cleanUpTokenizationSpaces: false })
}

/** A pick ignored during a copy. */
const ANY = 0

describe("numberPointer", () => {
  it("Llama-3 writes numbers as digit groups without the space before them (what the rule relies on)", () => {
    expect(ids("It is 384 km").map((i) => tok.decode([i]))).toEqual(["It", " is", " ", "384", " km"])
    expect(ids("1,000").map((i) => tok.decode([i]))).toEqual(["1", ",", "000"])
    expect(isDigitGroup("384")).toBe(true)
    expect(isDigitGroup("0384")).toBe(false)
    expect(isDigitGroup(" 3")).toBe(false)
    expect(isDigitGroup(",")).toBe(false)
  })

  it.each([
    // source, the decoder's picks, the text emitted
    ["ចម្ងាយ ៣៨៤ គីឡូម៉ែត្រ", ["It is 160 kilometres."], "It is 384 kilometres."],
    // the first unused numeral in source order replaces a number the source does not have
    ["៣ និង ២៧", ["3 cats and 31 dogs"], "3 cats and 27 dogs"],
    // a numeral whose first token is the decoder's pick is preferred over source order
    ["5 then 12", ["12 before 4"], "12 before 5"],
    // a numeral of several tokens is copied whole; the picks during the copy are ignored
    ["តម្លៃ ១,០០០ រៀល", ["It costs ", "7", ANY, ANY, " riel."], "It costs 1,000 riel."],
    // a number's later groups are the decoder's (only a number's first group is replaced)
    ["៩", ["It is 12,500 riel."], "It is 9,500 riel."],
    // every numeral used: the decoder's digits stand
    ["៨", ["8 and 9"], "8 and 9"],
    // no numeral in the source: nothing changes
    ["គ្មានលេខ", ["It is 160 kilometres."], "It is 160 kilometres."],
    // no number in the answer: nothing changes
    ["១២", ["Hello there."], "Hello there."]
  ])("%j, picks %j → %j", (source, picks, want) => {
    expect(steered(source, picks)).toBe(want)
  })

  it("ranges and decimals are copied as normalised by findNumerals", () => {
    expect(steered("១០–២០ គីឡូម៉ែត្រ", ["About 5", ANY, ANY, " km"])).toBe("About 10-20 km")
    expect(steered("៣٫៥ ម៉ែត្រ", ["It is 4", ANY, ANY, " metres"])).toBe("It is 3.5 metres")
  })
})
