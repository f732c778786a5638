/**
 * The number drill (src/nodes/tinyDecoder/numberDrill.ts): English and digits only, every digit-group token of Llama-3's
 * tokenizer among the trained labels, the `Numbers:` line exactly the number pathway's numerals, drilled sentences
 * that keep their words, and the same texts for the same seed.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { loadTokenizer } from "../../../src/models/tokenizer.ts"
import { COPY_INSTRUCTION, digitGroups, numberDrill } from "../../../src/nodes/tinyDecoder/numberDrill.ts"
import { decoderExamples } from "../../../src/nodes/tinyDecoder/pretrain.ts"
import { NUMBERS_LABEL } from "../../../src/prompts/slots.ts"
import { findNumerals } from "../../../src/text/numerals.ts"

const repoRoot = path.resolve(import.meta.dirname, "../../..")
const KHMER = /[\u1780-\u17FF\u19E0-\u19FF]/u
const english = fs.readFileSync(path.join(repoRoot, "datasets/km-en-sample/km-en.mini.tsv"), "utf8").trim().split("\n")
  .map((l) => l.split("\t")[0])

describe("number drill", () => {
  it("lists the 1,110 digit groups, each one Llama-3 token", async () => {
    const groups = digitGroups()
    expect(groups.length).toBe(10 + 100 + 1000)
    expect(new Set(groups).size).toBe(groups.length)
    const tok = await Effect.runPromise(loadTokenizer("llama3"))
    for (const g of groups) expect(tok.encode(g, { addSpecialTokens: false }).length).toBe(1)
  })

  it("trains every digit-group token as a label, in English only, with the number pathway's Numbers line", async () => {
    const tok = await Effect.runPromise(loadTokenizer("llama3"))
    const drill = numberDrill(english, 5)
    const examples = decoderExamples(tok, [], undefined, drill)
    expect(examples.length).toBe(drill.length)
    const labelled = new Map<number, number>()
    for (const e of examples) {
      expect(KHMER.test(tok.decode(e.ids))).toBe(false)
      for (const l of e.labels) if (l >= 0) labelled.set(l, (labelled.get(l) ?? 0) + 1)
    }
    const counts = digitGroups().map((g) => labelled.get(tok.encode(g, { addSpecialTokens: false })[0]) ?? 0)
    // each token is the answer of copy lists (cycled: ~13 each over 1,000 lists of 8-16) and of a drilled sentence
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(10)
    for (const d of drill) {
      if (d.numbers === undefined) continue
      expect(d.numbers).toEqual(findNumerals(d.input ?? ""))
      const i = drill.indexOf(d)
      const text = tok.decode(examples[i].ids)
      expect(text).toContain(`\n${NUMBERS_LABEL} ${d.numbers.join("; ")}\n`)
    }
    expect(drill.filter((d) => d.instruction === COPY_INSTRUCTION).length).toBe(1000)
  })

  it("drills sentences that keep every word and change only digits, and repeats for a seed", () => {
    const drill = numberDrill(english, 5)
    const plain = drill.filter((d) => d.instruction === undefined)
    const withDigits = new Set(english.filter((s) => /\d/.test(s)).map((s) => s.replace(/\d+/g, "#")))
    expect(plain.length).toBe(english.filter((s) => /\d/.test(s)).length)
    let changed = 0
    for (const d of plain) {
      expect(withDigits.has(d.text.replace(/\d+/g, "#"))).toBe(true)
      if (!english.includes(d.text)) changed++
    }
    expect(changed).toBeGreaterThan(plain.length * 0.9)
    expect(numberDrill(english, 5)).toEqual(drill)
    expect(numberDrill(english, 6)).not.toEqual(drill)
  })
})
