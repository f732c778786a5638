/**
 * The number pathway's numeral finder (`src/text/numerals.ts`): a table of Khmer and Latin digits, separators, ranges
 * and text without numbers, and two properties over random strings: a found numeral, read again, is itself alone
 * (normalising twice changes nothing), and its digits read back as the number the original digits spell.
 */
import { describe, expect, it } from "vitest"
import { makeRng } from "../../src/models/rng.ts"
import { findNumerals } from "../../src/text/numerals.ts"

describe("findNumerals", () => {
  it.each([
    ["ឡានក្រុងចេញនៅម៉ោង ៨ កន្លះព្រឹក។", ["8"]],
    ["លេខទូរស័ព្ទរបស់ខ្ញុំគឺ ០៣៦ ៤៩៧ ៧៥២។", ["036", "497", "752"]],
    ["តម្លៃ ១២៥០០ រៀល", ["12500"]],
    ["It costs 1,000.50 riel.", ["1,000.50"]],
    ["១៩៨៥ and 30 MW", ["1985", "30"]],
    ["10-20 km", ["10-20"]],
    ["១០–២០ គីឡូម៉ែត្រ", ["10-20"]],
    ["from 5 – 6 o'clock", ["5-6"]],
    ["pages 5 - 6", ["5", "6"]],
    ["1\u202f000 people", ["1,000"]],
    ["Arabic separators between digits: 3٫5 and 1٬000", ["3.5", "1,000"]],
    ["the year 2024.", ["2024"]],
    ["-5 degrees", ["5"]],
    ["a 1,2,3 b", ["1,2,3"]],
    ["no numbers here", []],
    ["សូមឲ្យខ្ញុំទឹកក្រូចបួនដប។", []],
    ["", []]
  ])("%j → %j", (text, want) => {
    expect(findNumerals(text)).toEqual(want)
  })

  it("every digit lands in one numeral, in order; a numeral read again is itself alone", () => {
    const rng = makeRng(7)
    const pieces = ["០", "១", "២", "៣", "៤", "៥", "៦", "៧", "៨", "៩", "0", "1", "5", "9", ",", ".", "-", "–", " ", "ក", "a", "\u202f"]
    for (let trial = 0; trial < 2000; trial++) {
      const n = 1 + Math.floor(rng.uniform() * 14)
      let text = ""
      for (let i = 0; i < n; i++) text += pieces[Math.floor(rng.uniform() * pieces.length)]
      const found = findNumerals(text)
      const digits = Array.from(text).flatMap((c) => {
        const cp = c.codePointAt(0)!
        return cp >= 0x30 && cp <= 0x39 ? [c] : cp >= 0x17e0 && cp <= 0x17e9 ? [String(cp - 0x17e0)] : []
      })
      expect(found.join("").replace(/[^0-9]/g, ""), JSON.stringify(text)).toBe(digits.join(""))
      for (const numeral of found) {
        expect(findNumerals(numeral), JSON.stringify({ text, numeral })).toEqual([numeral])
        expect(numeral).toMatch(/^[0-9]+([.,][0-9]+)*(-[0-9]+([.,][0-9]+)*)?$/)
      }
    }
  })
})
