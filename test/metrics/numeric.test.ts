/** Numeric fidelity: number and number+unit extraction, matching, aggregation; a measurement on real data. */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { aggregateNumericFidelity, extractNumbers, numericFidelity } from "../../src/metrics/numeric.ts"
import { khmerToLatinDigits } from "../../src/text/numerals.ts"
import { skipFor } from "../support/envGate.ts"

const pick = (text: string) => extractNumbers(text).map((m) => [m.value, m.unit])

describe("extractNumbers", () => {
  it("reads decimals, thousands separators and Khmer digits", () => {
    expect(khmerToLatinDigits("ឆ្នាំ ២០១៩ មាន ១,២០០ នាក់")).toBe("ឆ្នាំ 2019 មាន 1,200 នាក់")
    expect(pick("In 2019, 1,200 people paid 3.50 each; 007 agents.")).toEqual([
      ["2019", null],
      ["1200", null],
      ["3.5", null],
      ["7", null]
    ])
    expect(pick("ឆ្នាំ ២០១៩ មាន ១,២០០ នាក់")).toEqual([["2019", null], ["1200", null]])
    expect(pick("numbers 1,2,3 and 12,5")).toEqual([["1", null], ["2", null], ["3", null], ["12", null], ["5", null]])
  })

  it("attaches units, currencies and scales canonically", () => {
    expect(pick("A 5 MW plant, 20 kW panels, 10% growth and $1,200 saved.")).toEqual([
      ["5", "MW"],
      ["20", "kW"],
      ["10", "%"],
      ["1200", "USD"]
    ])
    expect(pick("10 percent, 3 kilometres, 2 tonnes, 4 years, a 5-year plan")).toEqual([
      ["10", "%"],
      ["3", "km"],
      ["2", "t"],
      ["4", "year"],
      ["5", "year"]
    ])
    expect(pick("$5 million")).toEqual([["5", "USD million"]])
    expect(pick("5 million dollars")).toEqual([["5", "USD million"]])
    expect(pick("US$ 30 and 40 USD and 9,000 riels")).toEqual([["30", "USD"], ["40", "USD"], ["9000", "KHR"]])
    expect(pick("the 21st century")).toEqual([["21", null]])
    // Not mentions: digits glued to letters before them.
    expect(pick("the G20 met on A4 paper")).toEqual([])
    // SI symbols are case-sensitive: milliwatt is not megawatt.
    expect(pick("5 mW")).toEqual([["5", null]])
    expect(extractNumbers("Costs $1,200 now")[0].text).toBe("$1,200")
  })
})

describe("numericFidelity", () => {
  it("catches a unit slip while the value survives", () => {
    const f = numericFidelity("The plant has a capacity of 5 MW.", "The plant can make 5 kW.")
    expect(f.mentions).toBe(1)
    expect(f.valuesMatched).toBe(1)
    expect(f.unitMentions).toBe(1)
    expect(f.unitsMatched).toBe(0)
    expect(f.matched).toBe(0)
    expect(f.score).toBe(0)
    expect(f.valueRecall).toBe(1)
    expect(f.unitRecall).toBe(0)
    expect(f.missing).toEqual(["5 MW"])
  })

  it("accepts formatting changes and counts mentions as a multiset", () => {
    expect(numericFidelity("It cost 1,000 dollars", "It cost $1000").score).toBe(1)
    expect(numericFidelity("growth of 2.50 percent", "growth of 2.5%").score).toBe(1)
    const twice = numericFidelity("5 boys and 5 girls", "5 children")
    expect(twice.matched).toBe(1)
    expect(twice.score).toBe(0.5)
    // A bare reference number matches whatever unit the output gives it.
    expect(numericFidelity("in 2019", "in 2019 years").score).toBe(1)
    const none = numericFidelity("No numbers here.", "Nor here 5.")
    expect(none.score).toBeNull()
    expect(none.unitRecall).toBeNull()
  })

  it("aggregates micro and macro over applicable examples only", () => {
    const items = [
      numericFidelity("5 MW and 10 km", "5 MW and 12 km"), // 1/2
      numericFidelity("2019", "2019"), // 1/1
      numericFidelity("no numbers", "whatever") // n/a
    ]
    const a = aggregateNumericFidelity(items)
    expect(a.examples).toBe(3)
    expect(a.applicable).toBe(2)
    expect(a.mentions).toBe(3)
    expect(a.micro).toBeCloseTo(2 / 3, 12)
    expect(a.macro).toBeCloseTo(0.75, 12)
    expect(a.unitRecall).toBeCloseTo(0.5, 12)
    expect(a.perfect).toBe(1)
    const empty = aggregateNumericFidelity([])
    expect(empty.micro).toBeNull()
    expect(empty.macro).toBeNull()
  })
})

const dataDir = path.resolve(import.meta.dirname, "../../../shared/data/km-en")
const flores = path.join(dataDir, "flores200_devtest.eng_Latn")
const haveData = !skipFor("shared-data", fs.existsSync(flores) ? undefined : `${dataDir} absent: the real-data measurement skips`)

describe.skipIf(!haveData)("numeric fidelity on real FLORES text", () => {
  it("is 1 for a reference against itself and measures Khmer-digit agreement", () => {
    const en = fs.readFileSync(flores, "utf8").split("\n").filter((l) => l !== "")
    const km = fs.readFileSync(path.join(dataDir, "flores200_devtest.khm_Khmr"), "utf8").split("\n").filter((l) => l !== "")
    expect(en.length).toBe(km.length)
    const self = aggregateNumericFidelity(en.map((e) => numericFidelity(e, e)))
    expect(self.micro).toBe(1)
    expect(self.applicable).toBeGreaterThan(100)
    // Values only: how many English numbers appear (as values) on the Khmer side, digits converted.
    const cross = aggregateNumericFidelity(en.map((e, i) => numericFidelity(e, km[i])))
    console.log(
      `FLORES devtest: ${self.applicable}/${self.examples} English lines have numbers (${self.mentions} mentions); ` +
        `value recall of the Khmer side ${cross.valueRecall?.toFixed(3)}`
    )
    expect(cross.valueRecall).toBeGreaterThan(0.5)
  })
})
