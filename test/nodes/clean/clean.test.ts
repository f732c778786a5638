/**
 * The clean stage: NFC, zero-width removal (ZWSP/BOM/WJ removed, ZWNJ/ZWJ kept), whitespace, empty sides, the
 * script check, exact-duplicate removal, truncation on code points (never splitting a surrogate pair), the rejects
 * table and the quality summary (counts, histograms, suspected damaged Khmer).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { analyzeForeign, analyzeForeignUtf8, khmerDamage, scriptShare } from "../../../src/nodes/clean/script.ts"
import { hashPair, hashPairUtf8 } from "../../../src/nodes/clean/hash.ts"
import { pairScanner } from "../../../src/nodes/clean/scan.ts"
import { codePointLength, isSurelyNfc, textFlags, textFlagsUtf8, truncateCodePoints } from "../../../src/text/unicode.ts"
import { clean } from "../../../src/nodes/clean/stage.ts"
import { normalizeText } from "../../../src/text/unicode.ts"
import { type Row, writeTable } from "../../../src/formats/parquet/table.ts"
import { PairColumns } from "../../../src/schemas/rows.ts"
import { cleanParams, rows, runStage, runStageFailure, tempDir } from "../../support/dataStages.ts"

const KHMER: ReadonlyArray<readonly [number, number]> = [
  [0x1780, 0x17ff],
  [0x19e0, 0x19ff]
]

const writePairs = (dir: string, pairs: ReadonlyArray<readonly [string, string]>): Promise<string> => {
  const file = path.join(dir, "pairs.parquet")
  const data: Array<Row> = pairs.map(([english, foreign], id) => ({ id, english, foreign, origin: `t.tsv:${id + 1}`, score: null }))
  return Effect.runPromise(writeTable(file, PairColumns, Stream.fromIterable(data))).then(() => file)
}

const runClean = async (pairs: ReadonlyArray<readonly [string, string]>, fields: Record<string, unknown> = {}) => {
  const dir = tempDir("clean")
  const input = await writePairs(dir, pairs)
  const ran = await runStage(clean, cleanParams(fields), { pairs: input }, dir)
  return {
    ran,
    kept: await rows(ran.outputs["clean"]),
    rejects: await rows(ran.outputs["clean.rejects"]),
    quality: JSON.parse(fs.readFileSync(ran.outputs["clean.quality"], "utf8")) as Record<string, unknown> & {
      byReason: Record<string, number>
      truncated: number
      normalisation: Record<string, number>
      lengths: { english: { count: number; max: number; histogram: { counts: Array<number> } }; foreign: { count: number; max: number } }
      khmerDamage: Record<string, { rows: number; exampleIds: Array<number> }>
    }
  }
}

describe("text helpers", () => {
  it("truncates on code points and never splits a surrogate pair", () => {
    expect(truncateCodePoints("ab😀cd😀", 3)).toBe("ab😀")
    expect(truncateCodePoints("ab😀cd😀", 5)).toBe("ab😀cd")
    expect(truncateCodePoints("ab😀cd😀", 6)).toBe("ab😀cd😀")
    const s = "ក".repeat(255) + "😀" + "ខ"
    const cut = truncateCodePoints(s, 256)
    expect(codePointLength(cut)).toBe(256)
    expect(cut.endsWith("😀")).toBe(true)
    expect(/\p{Surrogate}/u.test(cut)).toBe(false)
    const cut2 = truncateCodePoints("ក".repeat(255) + "👍🏽x", 256) // emoji + skin-tone modifier: two code points
    expect(cut2).toBe("ក".repeat(255) + "👍")
  })

  it("the NFC fast check never claims NFC for a string that normalisation changes", () => {
    const safe: Array<number> = []
    for (let c = 0; c < 0x300; c++) safe.push(c)
    for (let c = 0x1780; c <= 0x17ff; c++) safe.push(c)
    for (let c = 0x19e0; c <= 0x19ff; c++) safe.push(c)
    safe.push(0x200b, 0x200c, 0x200d)
    const khmerMarks = safe.filter((c) => c >= 0x17b4 && c <= 0x17dd)
    // every claim of NFC must be true, and the check must claim it where it plainly holds (so "never claims" is
    // not passed by a function that always says no)
    const wrong: Array<string> = []
    let claimed = 0
    const check = (s: string) => {
      if (!isSurelyNfc(s)) return
      claimed++
      if (s.normalize("NFC") !== s) wrong.push(s)
    }
    for (const a of safe) check(String.fromCharCode(a))
    for (const a of khmerMarks) for (const b of khmerMarks) check("ក" + String.fromCharCode(a, b))
    expect(wrong).toEqual([])
    for (let c = 0x20; c < 0x7f; c++) expect(isSurelyNfc(String.fromCharCode(c))).toBe(true)
    for (let c = 0x1780; c <= 0x17a2; c++) expect(isSurelyNfc(String.fromCharCode(c))).toBe(true)
    expect(claimed).toBeGreaterThan(safe.length / 2)
    expect(isSurelyNfc("cafe\u0301")).toBe(false)
    expect(isSurelyNfc("ខ្ញុំចូលចិត្តបាយ។ I like rice.")).toBe(true)
  })

  it("measures the share of letters in the Khmer ranges", () => {
    expect(scriptShare("ខ្ញុំចូលចិត្តបាយ។", KHMER)).toBe(1)
    expect(scriptShare("Khnhom chol chet bay.", KHMER)).toBe(0)
    expect(scriptShare("ខ្ញុំ OK", KHMER)).toBeCloseTo(5 / 7)
    expect(scriptShare("១២៣ ... !!", KHMER)).toBe(1)
    expect(scriptShare("... !!", KHMER)).toBe(0)
    expect(scriptShare("Ça va ក", KHMER)).toBeCloseTo(1 / 5)
  })

  it("spots damaged Khmer", () => {
    expect(khmerDamage("ខ្ញុំចូលចិត្តបាយ។")).toEqual([])
    expect(khmerDamage("ស ្ត")).toEqual(["spaceAroundCoeng"])
    expect(khmerDamage("ស្ ត")).toEqual(["spaceAroundCoeng", "coengAtWordEnd"])
    expect(khmerDamage("ខ្ញុំចូលចិត្")).toEqual(["coengAtWordEnd"])
    expect(khmerDamage("ាក")).toEqual(["orphanDependentVowel"])
    expect(khmerDamage("ខ្ញុំ ើញ")).toEqual(["orphanDependentVowel"])
    expect(khmerDamage("ប៊ីចេក")).toEqual([]) // register shifter then vowel: valid
  })

  it("normalises exactly like the plain regex definition (fuzzed over tricky characters)", () => {
    const reference = (s: string, zw: boolean) => {
      let t = s.normalize("NFC")
      if (zw) t = t.replace(/[\u200B\uFEFF\u2060]/g, "")
      return t.replace(/\s+/g, " ").trim()
    }
    const alphabet = ["a", "e", "\u0301", " ", "  ", "\t", "\n", "\u00A0", "\u200B", "\u200C", "\uFEFF", "\u2060", "ក", "្", "ត", "\u17DD", "ា", "😀", "\u3000", "\u2002"]
    let seed = 7
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    for (let k = 0; k < 3000; k++) {
      const s = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("")
      expect(normalizeText(s, true)).toBe(reference(s, true))
      expect(normalizeText(s, false)).toBe(reference(s, false))
    }
  })

  it("the UTF-8 versions of textFlags, analyzeForeign and hashPair give what the string versions give (fuzzed)", () => {
    // every class the byte versions decode differently: ASCII, 2-byte (é, NBSP), 3-byte (Khmer, COENG, U+17DD,
    // zero-width, U+3000), 4-byte (emoji, 𝔸), spaces around COENG, dependent vowels without a base
    const alphabet = ["a", "Z", "7", " ", "\t", "é", "\u0301", "\u00A0", "ក", "ខ", "្", "ត", "\u17DD", "ា", "ុ", "។", "\u200B",
      "\u200C", "\uFEFF", "\u2060", "\u3000", "😀", "𝔸", "中", "ş", "\u19E0"]
    const ranges: ReadonlyArray<readonly [number, number]> = [[0x1780, 0x17ff], [0x19e0, 0x19ff]]
    let seed = 11
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    const word = () => Array.from({ length: Math.floor(rand() * 10) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("")
    const a = new Uint32Array(2)
    const b = new Uint32Array(2)
    for (let k = 0; k < 5000; k++) {
      const x = word()
      const y = word()
      // inside a larger buffer, so the ranges do not start at 0
      const buf = Buffer.from(`<${x}|${y}>`)
      const xs = 1
      const xe = xs + Buffer.byteLength(x)
      const ys = xe + 1
      const ye = ys + Buffer.byteLength(y)
      expect([x, textFlagsUtf8(buf, xs, xe)]).toEqual([x, textFlags(x)])
      expect([y, analyzeForeignUtf8(buf, ys, ye, ranges)]).toEqual([y, analyzeForeign(y, ranges)])
      hashPair(x, y, a)
      hashPairUtf8(buf, xs, xe, buf, ys, ye, b)
      expect([x, y, [...b]]).toEqual([x, y, [...a]])
    }
  })

  it("the one-pass scanner of the byte path answers what textFlagsUtf8, analyzeForeignUtf8 and hashPairUtf8 answer (fuzzed)", () => {
    const alphabet = ["a", "Z", "7", " ", " ", "\t", "\r", "\u0001", "é", "\u0301", "\u00A0", "ក", "ខ", "្", "ត", "\u17DD", "ា", "ុ", "។",
      "\u200B", "\u200C", "\u200D", "\uFEFF", "\u2060", "\u3000", "😀", "中", "ş", "\u19E0", "\u0300", "\u2028"]
    for (const ranges of [[[0x1780, 0x17ff], [0x19e0, 0x19ff]], [[0x41, 0x5a]], []] as ReadonlyArray<ReadonlyArray<readonly [number, number]>>) {
      const { scan, result } = pairScanner(ranges)
      let seed = 23
      const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
      const word = () => Array.from({ length: Math.floor(rand() * 10) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("")
      const key = new Uint32Array(2)
      let onBytes = 0
      for (let k = 0; k < 20000; k++) {
        // mostly clean words (so that the byte path is taken often), some with anything
        const x = rand() < 0.5 ? word() : word().replace(/[^a-zក-៹ ]/gu, "").replace(/ +/g, " ").trim()
        const y = rand() < 0.5 ? word() : word().replace(/[^a-zក-៹ ]/gu, "").replace(/ +/g, " ").trim()
        const buf = Buffer.from(`<${x}|${y}>`)
        const xs = 1
        const xe = xs + Buffer.byteLength(x)
        const ys = xe + 1
        const ye = ys + Buffer.byteLength(y)
        const clean = textFlagsUtf8(buf, xs, xe) === 0 && textFlagsUtf8(buf, ys, ye) === 0
        expect([x, y, scan(buf, xs, xe, buf, ys, ye)]).toEqual([x, y, clean])
        if (!clean) continue
        onBytes++
        hashPairUtf8(buf, xs, xe, buf, ys, ye, key)
        expect([x, y, result.englishLength, result.foreign, [...result.key]]).toEqual([
          x, y, codePointLength(x), analyzeForeignUtf8(buf, ys, ye, ranges), [...key]
        ])
      }
      expect(onBytes).toBeGreaterThan(5000)
    }
  })

  it("normalises NFC, zero-width characters and whitespace", () => {
    expect(normalizeText("  cafe\u0301 \t au\n lait  ", true)).toBe("café au lait")
    expect(normalizeText("ខ្ញុំ\u200Bចូលចិត្ត\uFEFFបាយ\u2060។", true)).toBe("ខ្ញុំចូលចិត្តបាយ។")
    expect(normalizeText("ក\u200Cខ\u200Dគ", true)).toBe("ក\u200Cខ\u200Dគ")
    expect(normalizeText("ខ្ញុំ\u200Bចូលចិត្ត", false)).toBe("ខ្ញុំ\u200Bចូលចិត្ត")
    expect(normalizeText("a\u00A0\u3000b", true)).toBe("a b")
  })
})

describe("clean stage", () => {
  it("normalises, rejects with reasons, dedupes keeping the first, and truncates", async () => {
    const long = "ក".repeat(255) + "😀" + "ខ".repeat(10)
    const { ran, kept, rejects, quality } = await runClean(
      [
        ["  I like  coffee. ", "ខ្ញុំ\u200Bចូលចិត្ត\u200Bកាហ្វេ។"], // 0 kept, normalised
        ["I like coffee.", "ខ្ញុំចូលចិត្តកាហ្វេ។"], // 1 duplicate of 0 after normalisation
        ["I want to go home.", "Khnhom chong tov phteah."], // 2 romanised: script-share
        ["Nothing.", "\u200B \u200B"], // 3 empty-foreign after normalisation
        ["\u00A0", "ក"], // 4 empty-english
        ["A long one.", long], // 5 truncated
        ["A cafe\u0301.", "ហាងកាហ្វេ។"], // 6 NFC
        ["I like coffee.", "ខ្ញុំចូលចិត្តកាហ្វេ។"] // 7 duplicate again
      ]
    )
    expect(kept.map((r) => r.id)).toEqual([0, 5, 6])
    expect(kept[0]).toMatchObject({ english: "I like coffee.", foreign: "ខ្ញុំចូលចិត្តកាហ្វេ។", origin: "t.tsv:1" })
    expect(kept[1].foreign).toBe("ក".repeat(255) + "😀")
    expect(kept[2].english).toBe("A café.")
    expect(rejects.map((r) => [r.id, r.reason])).toEqual([
      [1, "duplicate"],
      [2, "script-share"],
      [3, "empty-foreign"],
      [4, "empty-english"],
      [7, "duplicate"]
    ])
    expect(rejects[1]).toMatchObject({ english: "I want to go home.", foreign: "Khnhom chong tov phteah." })
    expect(quality.byReason).toEqual({ "empty-english": 1, "empty-foreign": 1, "script-share": 1, duplicate: 2 })
    expect(quality.truncated).toBe(1)
    expect(quality.rowsIn).toBe(8)
    expect(quality.kept).toBe(3)
    expect(quality.normalisation.nfcChanged).toBe(1)
    expect(quality.normalisation.zeroWidthRemoved).toBe(4)
    expect(quality.lengths.english.count).toBe(3)
    expect(quality.lengths.english.histogram.counts.reduce((a, b) => a + b, 0)).toBe(3)
    expect(quality.lengths.foreign.max).toBe(266)
    expect(ran.outcome.rows).toEqual({ clean: 3, "clean.rejects": 5 })
    expect(ran.outcome.metrics).toMatchObject({ rowsIn: 8, kept: 3, rejected: 5, truncated: 1 })
  })

  it("keeps everything the options turn off (no dedupe, no script check, zero-width kept)", async () => {
    const { kept, rejects } = await runClean(
      [
        ["I like coffee.", "ខ្ញុំ\u200Bចូលចិត្តកាហ្វេ។"],
        ["I like coffee.", "ខ្ញុំ\u200Bចូលចិត្តកាហ្វេ។"],
        ["I want to go home.", "Khnhom chong tov phteah."]
      ],
      { dedupe: false, minScriptShare: 0, removeZeroWidth: false }
    )
    expect(kept.map((r) => r.foreign)).toEqual(["ខ្ញុំ\u200Bចូលចិត្តកាហ្វេ។", "ខ្ញុំ\u200Bចូលចិត្តកាហ្វេ។", "Khnhom chong tov phteah."])
    expect(rejects).toHaveLength(0)
  })

  it("truncates at the configured length on code points", async () => {
    const { kept, quality } = await runClean([["x", "ab😀cd😀"], ["y", "ក😀ខ"]], { maxForeignChars: 3, minScriptShare: 0 })
    expect(kept.map((r) => r.foreign)).toEqual(["ab😀", "ក😀ខ"])
    expect(quality.truncated).toBe(1)
  })

  it("reports suspected damaged Khmer with example ids, without removing the rows", async () => {
    const { kept, quality } = await runClean([
      ["fine", "ខ្ញុំចូលចិត្តបាយ។"],
      ["space before coeng", "ស ្តាប់"],
      ["space after coeng", "ស្ តាប់"],
      ["coeng at end", "ខ្ញុំចូលចិត្"],
      ["orphan vowel", "ខ្ញុំ ើញ"],
      ["orphan at start", "ាក់"]
    ])
    expect(kept).toHaveLength(6)
    expect(quality.khmerDamage.spaceAroundCoeng).toEqual({ rows: 2, exampleIds: [1, 2] })
    expect(quality.khmerDamage.coengAtWordEnd).toEqual({ rows: 2, exampleIds: [2, 3] })
    expect(quality.khmerDamage.orphanDependentVowel).toEqual({ rows: 2, exampleIds: [4, 5] })
  })

  it("fails when nothing survives, saying why", async () => {
    const dir = tempDir("cleanfail")
    const input = await writePairs(dir, [["a", "abc"], ["b", "def"]])
    const e = await runStageFailure(clean, cleanParams({}), { pairs: input }, dir)
    expect(e.message).toContain("no pair survived cleaning (2 in; script-share 2)")
  })
})
