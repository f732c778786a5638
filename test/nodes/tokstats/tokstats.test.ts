/**
 * The tokstats stage with the real Llama-3 tokenizer: exact token counts of known sentences (no BOS), Khmer
 * inflation (ratio > 1), the saved-tokens arithmetic for K slots, the per-pair table and the SVG histogram.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { loadTokenizerSync, LLAMA3 } from "../../../src/models/tokenizer.ts"
import { SVG_FILE, tokstats } from "../../../src/nodes/tokstats/stage.ts"
import { type Row, writeTable } from "../../../src/formats/parquet/table.ts"
import { PairColumns } from "../../../src/schemas/rows.ts"
import { rows, runStage, tempDir, tokstatsParams } from "../../support/dataStages.ts"
import { configOf } from "../../support/stageB.ts"

const PAIRS: ReadonlyArray<readonly [string, string]> = [
  ["Hello world", "សួស្ដី​ពិភពលោក"],
  ["I like to eat rice with fish.", "ខ្ញុំចូលចិត្តញ៉ាំបាយជាមួយត្រី។"],
  ["The bus to Siem Reap leaves at seven o'clock in the morning.", "ឡានក្រុងទៅសៀមរាបចេញនៅម៉ោងប្រាំពីរព្រឹក។"]
]

const writeTrain = async (dir: string): Promise<string> => {
  const file = path.join(dir, "train.parquet")
  const data: Array<Row> = PAIRS.map(([english, foreign], id) => ({ id: id + 10, english, foreign, origin: "t", score: null }))
  await Effect.runPromise(writeTable(file, PairColumns, Stream.fromIterable(data)))
  return file
}

describe("tokstats stage (Llama-3 tokenizer)", () => {
  it("encodes a known sentence to the known Llama-3 ids", () => {
    const tok = loadTokenizerSync(LLAMA3)
    // "Hello world" is [9906, 1917] in Llama 3 (128000 = <|begin_of_text|> only with special tokens)
    expect(tok.encode("Hello world", { addSpecialTokens: false })).toEqual([9906, 1917])
    expect(tok.encode("Hello world")).toEqual([128000, 9906, 1917])
  })

  it("counts tokens without BOS, shows Khmer inflation and the tokens K slots save", async () => {
    const dir = tempDir("tokstats")
    const input = await writeTrain(dir)
    const ran = await runStage(tokstats, tokstatsParams({ slots: 8 }), { train: input }, dir)
    const table = await rows(ran.outputs["tokstats.table"])
    const tok = loadTokenizerSync(LLAMA3)
    const expected = PAIRS.map(([en, km], i) => ({
      id: i + 10,
      englishTokens: tok.encode(en, { addSpecialTokens: false }).length,
      foreignTokens: tok.encode(km, { addSpecialTokens: false }).length,
      englishChars: [...en].length,
      foreignChars: [...km].length
    }))
    expect(table).toEqual(expected)
    expect(table[0].englishTokens).toBe(2)
    const summary = JSON.parse(fs.readFileSync(ran.outputs["tokstats"], "utf8"))
    const enT = expected.reduce((s, r) => s + r.englishTokens, 0)
    const kmT = expected.reduce((s, r) => s + r.foreignTokens, 0)
    const enC = expected.reduce((s, r) => s + r.englishChars, 0)
    const kmC = expected.reduce((s, r) => s + r.foreignChars, 0)
    expect(summary.pairs).toBe(3)
    expect(summary.english.tokens).toBe(enT)
    expect(summary.foreign.tokens).toBe(kmT)
    expect(summary.english.tokensPerChar).toBeCloseTo(enT / enC, 10)
    expect(summary.foreign.tokensPerChar).toBeCloseTo(kmT / kmC, 10)
    expect(summary.foreignToEnglishTokenRatio.ofTotals).toBeGreaterThan(1)
    expect(summary.foreign.tokensPerChar).toBeGreaterThan(summary.english.tokensPerChar)
    expect(summary.slots).toMatchObject({ K: 8, savedPerSentence: { total: kmT - 3 * 8, mean: (kmT - 24) / 3 } })
    const svg = fs.readFileSync(path.join(ran.outputs["tokstats.svg"], SVG_FILE), "utf8")
    expect(svg.startsWith("<svg")).toBe(true)
    expect(svg).toContain("Llama-3 tokens per sentence")
    expect(ran.outcome.rows).toEqual({ "tokstats.table": 3 })
  })

  it("measures only the first maxPairs pairs", async () => {
    const dir = tempDir("tokstats2")
    const input = await writeTrain(dir)
    const ran = await runStage(tokstats, tokstatsParams({ maxPairs: 2 }), { train: input }, dir)
    expect((await rows(ran.outputs["tokstats.table"])).map((r) => r.id)).toEqual([10, 11])
  })

  it("counts the saving at the slot policy's largest K, and at models.slots without one", () => {
    expect(tokstats.selectParams(configOf({ models: { slots: 8 } }))).toMatchObject({ slots: 8 })
    expect(tokstats.selectParams(configOf({ models: { slots: 8 }, stageB: { slotPolicy: { fixed: 4 } } }))).toMatchObject({ slots: 4 })
    const byLength = { byLength: { min: 2, max: 6, tokensPerSlot: 2 } }
    expect(tokstats.selectParams(configOf({ models: { slots: 8 }, stageB: { slotPolicy: byLength } }))).toMatchObject({ slots: 6 })
  })
})
