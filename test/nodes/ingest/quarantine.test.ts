/**
 * Bad input: rows that go to `ingest.quarantine` (with file, line, reason, raw ≤ 500 chars, counted by reason in
 * the metrics), and structurally broken files that fail the stage with an error naming the file and the position.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import * as arrow from "apache-arrow"
import { strToU8, zipSync } from "fflate"
import * as parquet from "parquet-wasm/node"
import { describe, expect, it } from "vitest"
import { ingest } from "../../../src/nodes/ingest/stage.ts"
import { corpusParams, rows, runStage, runStageFailure, tempDir } from "../../support/dataStages.ts"
import { skipFor, xzMissing } from "../../support/envGate.ts"

const ingestFile = async (dir: string, fields: Record<string, unknown>) => {
  const ran = await runStage(ingest, corpusParams(fields), {}, dir)
  return { ran, pairs: await rows(ran.outputs["pairs"]), quarantine: await rows(ran.outputs["ingest.quarantine"]) }
}
const failure = (dir: string, fields: Record<string, unknown>) => runStageFailure(ingest, corpusParams(fields), {}, dir)
const q3 = (qs: ReadonlyArray<Record<string, unknown>>) => qs.map((q) => [q.file, q.line, q.reason])

describe("quarantine: line formats", () => {
  it("TSV: invalid UTF-8, a literal U+FFFD, wrong column counts, empty sides, a blank line; raw capped at 500", async () => {
    const dir = tempDir("qtsv")
    const file = path.join(dir, "bad.tsv")
    const long = "x".repeat(2000)
    fs.writeFileSync(
      file,
      Buffer.concat([
        Buffer.from("Good one.\tល្អ។\n"), // 1
        Buffer.from("Bad bytes\t"), Buffer.from([0xe1, 0x9e]), Buffer.from("ក\n"), // 2: truncated 3-byte sequence
        Buffer.from("Replaced\t\uFFFD\n"), // 3
        Buffer.from("no tab at all\n"), // 4
        Buffer.from("a\tb\tc\n"), // 5
        Buffer.from("\tគ្មានអង់គ្លេស\n"), // 6
        Buffer.from("No Khmer\t   \n"), // 7
        Buffer.from("\n"), // 8
        Buffer.from(`${long}\n`), // 9
        Buffer.from("Last one.\tចុងក្រោយ។") // 10, no final newline
      ])
    )
    const { ran, pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(pairs.map((p) => [p.english, p.origin])).toEqual([
      ["Good one.", "bad.tsv:1"],
      ["Last one.", "bad.tsv:10"]
    ])
    expect(q3(quarantine)).toEqual([
      ["bad.tsv", 2, "invalid-utf8"],
      ["bad.tsv", 3, "replacement-char"],
      ["bad.tsv", 4, "wrong-column-count"],
      ["bad.tsv", 5, "wrong-column-count"],
      ["bad.tsv", 6, "empty-english"],
      ["bad.tsv", 7, "empty-foreign"],
      ["bad.tsv", 8, "blank-line"],
      ["bad.tsv", 9, "wrong-column-count"]
    ])
    expect(quarantine[2].raw).toBe("no tab at all")
    expect([...String(quarantine[7].raw)].length).toBe(500)
    expect(ran.outcome.metrics?.byReason).toEqual({
      "invalid-utf8": 1,
      "replacement-char": 1,
      "wrong-column-count": 3,
      "empty-english": 1,
      "empty-foreign": 1,
      "blank-line": 1
    })
    expect(ran.outcome.rows).toEqual({ pairs: 2, "ingest.quarantine": 8 })
  })

  it("C0 control characters other than TAB (NUL, ESC, form feed, a CR inside a line) quarantine the row as control-char", async () => {
    const dir = tempDir("qctl")
    const lines = [
      "Good one.\tល្អ។", // 1
      "Nul\u0000byte\tក", // 2
      "Escape\tខ\u001b[0m", // 3
      "Form\u000cfeed\tគ", // 4
      "Inner\rreturn\tឃ", // 5
      "Windows line end.\tង\r", // 6: CRLF, kept
      "\u0000\tច", // 7: NUL is not whitespace: not empty, control-char
      "Bell\u0007\tឆ" // 8
    ]
    const tsv = path.join(dir, "ctl.tsv")
    fs.writeFileSync(tsv, lines.join("\n") + "\n")
    const gz = path.join(dir, "ctl.tsv.gz")
    fs.writeFileSync(gz, zlib.gzipSync(lines.join("\n")))
    const expected = [2, 3, 4, 5, 7, 8].map((line) => [line, "control-char"])
    for (const file of [tsv, gz]) {
      const { ran, pairs, quarantine } = await ingestFile(dir, { path: file })
      expect(pairs.map((p) => [p.english, p.foreign, p.origin])).toEqual([
        ["Good one.", "ល្អ។", `${path.basename(file)}:1`],
        ["Windows line end.", "ង", `${path.basename(file)}:6`]
      ])
      expect(quarantine.map((q) => [q.line, q.reason])).toEqual(expected)
      expect(quarantine[0].raw).toBe("Nul\u0000byte\tក")
      expect(ran.outcome.metrics?.byReason).toEqual({ "control-char": 6 })
    }
    // the string readers: TSV with a score file, Moses (the row names the side that holds it), JSONL
    fs.writeFileSync(path.join(dir, "scores.txt"), lines.map(() => "0.5").join("\n") + "\n")
    const scored = await ingestFile(dir, { path: tsv, format: "wmt20", scorePath: path.join(dir, "scores.txt") })
    expect(scored.quarantine.map((q) => [q.line, q.reason])).toEqual(expected)
    fs.writeFileSync(path.join(dir, "m.en"), "One.\nT\u0000wo.\nThree.\n")
    fs.writeFileSync(path.join(dir, "m.km"), "មួយ។\nពីរ។\nបី\u001b។\n")
    const moses = await ingestFile(dir, { path: path.join(dir, "m.en") })
    expect(q3(moses.quarantine)).toEqual([["m.en", 2, "control-char"], ["m.km", 3, "control-char"]])
    fs.writeFileSync(path.join(dir, "j.jsonl"), [{ english: "Fine.", foreign: "ល្អ។" }, { english: "Bad\u0000", foreign: "ក" }].map((o) => JSON.stringify(o)).join("\n"))
    const jsonl = await ingestFile(dir, { path: path.join(dir, "j.jsonl") })
    expect(q3(jsonl.quarantine)).toEqual([["j.jsonl", 2, "control-char"]])
  })

  it("TSV: invalid UTF-8 is found on the right line even deep inside a large gzip file", async () => {
    const dir = tempDir("qtsvbig")
    const file = path.join(dir, "big.tsv.gz")
    const lines: Array<Buffer> = []
    for (let i = 1; i <= 30_000; i++) {
      lines.push(i === 17_345 ? Buffer.concat([Buffer.from("broken\t"), Buffer.from([0xc3, 0x28]), Buffer.from("\n")]) : Buffer.from(`Sentence ${i}.\tប្រយោគ ${i}។\n`))
    }
    fs.writeFileSync(file, zlib.gzipSync(Buffer.concat(lines)))
    const { pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(pairs).toHaveLength(29_999)
    expect(q3(quarantine)).toEqual([["big.tsv.gz", 17_345, "invalid-utf8"]])
    expect(pairs[17_344]).toMatchObject({ english: "Sentence 17346.", origin: "big.tsv.gz:17346" })
  })

  it("Moses: files of different line counts stop the stage, naming both files and both counts", async () => {
    const dir = tempDir("qmosesfail")
    fs.writeFileSync(path.join(dir, "c.en"), "One.\nTwo.\nThree.\nFour.\nFive.\nSix.\n")
    fs.writeFileSync(path.join(dir, "c.km"), "មួយ។\nពីរ។\nបី។\nបួន។\n")
    const e = await failure(dir, { path: path.join(dir, "c.en") })
    expect(e.message).toContain("not aligned")
    expect(e.message).toContain(`c.en (${path.join(dir, "c.en")}) has 6 lines`)
    expect(e.message).toContain(`c.km (${path.join(dir, "c.km")}) has 4 lines`)
    expect(e.message).toContain("corpus.allowLineCountMismatch")
    // the foreign side longer, one line apart, inside a zip
    const zip = path.join(dir, "c.zip")
    fs.writeFileSync(zip, zipSync({ "x.en": strToU8("One.\n"), "x.km": strToU8("មួយ។\nពីរ។") }))
    const z = await failure(dir, { path: zip, format: "moses" })
    expect(z.message).toContain("c.zip!x.en")
    expect(z.message).toContain("has 1 line,")
    expect(z.message).toMatch(/c\.zip!x\.km \(.*\) has 2 lines/)
  })

  it("Moses with allowLineCountMismatch: extra lines of the longer side are quarantined, the summary says so; faults name the side's file", async () => {
    const dir = tempDir("qmoses")
    fs.writeFileSync(path.join(dir, "c.en"), "One.\nTwo.\nThree.\nFour.\nFive.\nSix.\n")
    fs.writeFileSync(path.join(dir, "c.km"), Buffer.concat([Buffer.from("មួយ។\n"), Buffer.from([0xff, 0x0a]), Buffer.from("\nបួន។\n")]))
    const { pairs, quarantine, ran } = await ingestFile(dir, { path: path.join(dir, "c.en"), allowLineCountMismatch: true })
    expect(pairs.map((p) => [p.english, p.foreign])).toEqual([
      ["One.", "មួយ។"],
      ["Four.", "បួន។"]
    ])
    expect(q3(quarantine)).toEqual([
      ["c.km", 2, "invalid-utf8"],
      ["c.km", 3, "empty-foreign"],
      ["c.en", 5, "extra-line-english"],
      ["c.en", 6, "extra-line-english"]
    ])
    expect(quarantine.map((q) => q.raw).slice(2)).toEqual(["Five.", "Six."])
    expect(ran.outcome.metrics?.byReason).toMatchObject({ "extra-line-english": 2 })
    const counts = { english: { file: "c.en", lines: 6 }, foreign: { file: "c.km", lines: 4 } }
    expect(ran.outcome.metrics?.lineCountMismatch).toEqual(counts)
    const summary = JSON.parse(fs.readFileSync(ran.outputs["ingest.summary"], "utf8")) as Record<string, unknown>
    expect(summary).toMatchObject({ format: "moses", pairs: 2, quarantined: 4, lineCountMismatch: counts })

    const dir2 = tempDir("qmoses2")
    fs.writeFileSync(path.join(dir2, "c.en"), "One.\n")
    fs.writeFileSync(path.join(dir2, "c.km"), "មួយ។\nពីរ។\n")
    const other = await ingestFile(dir2, { path: path.join(dir2, "c.km"), allowLineCountMismatch: true })
    expect(q3(other.quarantine)).toEqual([["c.km", 2, "extra-line-foreign"]])
  })

  it("TMX: units missing a side, unparsable units and empty segments are quarantined with their line", async () => {
    const dir = tempDir("qtmx")
    const file = path.join(dir, "bad.tmx")
    fs.writeFileSync(
      file,
      [
        `<?xml version="1.0" encoding="UTF-8"?>`, // 1
        `<tmx version="1.4"><header/><body>`, // 2
        `<tu><tuv xml:lang="en"><seg>Only English.</seg></tuv></tu>`, // 3
        `<tu><tuv xml:lang="en"><seg>No seg below.</seg></tuv><tuv xml:lang="km"><p>oops</p></tuv></tu>`, // 4
        `<tu><tuv xml:lang="en"><seg>Unclosed unit.</seg></tuv>`, // 5
        `<tu><tuv xml:lang="en"><seg>Good.</seg></tuv><tuv xml:lang="km"><seg>ល្អ។</seg></tuv></tu>`, // 6
        `<tu><tuv xml:lang="en"><seg>Empty Khmer.</seg></tuv><tuv xml:lang="km"><seg>  </seg></tuv></tu>`, // 7
        `<tu><tuv xml:lang="en"><seg>Stray <markup</seg></tuv><tuv xml:lang="km"><seg>ក</seg></tuv></tu>`, // 8
        `<tu><tuv><seg>No lang.</seg></tuv><tuv xml:lang="km"><seg>ក</seg></tuv></tu>`, // 9
        `<tu><tuv xml:lang="fr"><seg>Bonjour.</seg></tuv><tuv xml:lang="km"><seg>សួស្ដី។</seg></tuv></tu>`, // 10
        `</body></tmx>`
      ].join("\n")
    )
    const { pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(pairs.map((p) => [p.english, p.foreign, p.origin])).toEqual([["Good.", "ល្អ។", "bad.tmx:6"]])
    expect(q3(quarantine)).toEqual([
      ["bad.tmx", 3, "tmx-missing-side"],
      ["bad.tmx", 4, "tmx-unparsable"],
      ["bad.tmx", 5, "tmx-unparsable"],
      ["bad.tmx", 7, "empty-foreign"],
      ["bad.tmx", 8, "tmx-unparsable"],
      ["bad.tmx", 9, "tmx-unparsable"],
      ["bad.tmx", 10, "tmx-missing-side"]
    ])
  })

  it("JSONL: invalid JSON, missing or non-string fields, blank lines", async () => {
    const dir = tempDir("qjsonl")
    const file = path.join(dir, "p.jsonl")
    fs.writeFileSync(
      file,
      [
        `{"english": "Yes.", "foreign": "បាទ។"}`,
        `{"english": "Broken", `,
        `{"english": "No foreign."}`,
        `{"english": 3, "foreign": "៣"}`,
        `[1, 2]`,
        ``,
        `{"english": "Last.", "foreign": "ចុងក្រោយ។"}`
      ].join("\n") + "\n"
    )
    const { pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(pairs.map((p) => p.english)).toEqual(["Yes.", "Last."])
    expect(q3(quarantine)).toEqual([
      ["p.jsonl", 2, "invalid-json"],
      ["p.jsonl", 3, "missing-field"],
      ["p.jsonl", 4, "missing-field"],
      ["p.jsonl", 5, "invalid-json"],
      ["p.jsonl", 6, "blank-line"]
    ])
  })

  it("Parquet: a null side is quarantined with its row number", async () => {
    const dir = tempDir("qpq")
    const file = path.join(dir, "n.parquet")
    const table = new arrow.Table({
      english: arrow.vectorFromArray(["A.", null, "C."], new arrow.Utf8()),
      foreign: arrow.vectorFromArray(["ក។", "ខ។", ""], new arrow.Utf8())
    })
    fs.writeFileSync(file, parquet.writeParquet(parquet.Table.fromIPCStream(arrow.tableToIPC(table, "stream"))))
    const { pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(pairs.map((p) => p.english)).toEqual(["A."])
    expect(q3(quarantine)).toEqual([
      ["n.parquet", 2, "missing-field"],
      ["n.parquet", 3, "empty-foreign"]
    ])
  })
})

describe("broken files fail the stage, naming the file and where", () => {
  it("a truncated gzip", async () => {
    const dir = tempDir("egz")
    const file = path.join(dir, "en-km.txt.gz")
    const text = Array.from({ length: 20_000 }, (_, i) => `Line ${i}.\tបន្ទាត់ ${i * 7919}។`).join("\n")
    const gz = zlib.gzipSync(text)
    fs.writeFileSync(file, gz.subarray(0, Math.floor(gz.length / 2)))
    const e = await failure(dir, { path: file })
    expect(e.stage).toBe("ingest")
    expect(e.file).toBe(file)
    expect(e.message).toMatch(/en-km\.txt\.gz: truncated or corrupt gzip stream after \d+ compressed bytes/)
    expect(e.message).toMatch(/\(byte \d+\)$/)
  })

  it.skipIf(!hasXzCli())("a truncated xz", async () => {
    const dir = tempDir("exz")
    const file = path.join(dir, "wmt20-sent.en-km.xz")
    const text = Array.from({ length: 20_000 }, (_, i) => `Line ${i}.\tបន្ទាត់ ${i * 7919}។`).join("\n")
    const xz = execFileSync("xz", ["-c"], { input: text })
    fs.writeFileSync(file, xz.subarray(0, Math.floor(xz.length / 2)))
    const e = await failure(dir, { path: file })
    expect(e.file).toBe(file)
    expect(e.message).toMatch(/wmt20-sent\.en-km\.xz: truncated or corrupt xz stream/)
  })

  it("an unreadable zip (cut short) and a zip whose entry is corrupt", async () => {
    const dir = tempDir("ezip")
    const file = path.join(dir, "en-km.txt.zip")
    const en = Array.from({ length: 2000 }, (_, i) => `Line ${(i * 7919) % 10007}.`).join("\n")
    const km = Array.from({ length: 2000 }, (_, i) => `បន្ទាត់ ${(i * 104729) % 10007}។`).join("\n")
    const zip = zipSync({ "c.en": strToU8(en), "c.km": strToU8(km) })
    fs.writeFileSync(file, zip.subarray(0, zip.length - 30))
    const e = await failure(dir, { path: file })
    expect(e.file).toBe(file)
    expect(e.message).toContain("unreadable zip archive en-km.txt.zip: no end-of-central-directory record")

    const dir2 = tempDir("ezip2")
    const file2 = path.join(dir2, "c.zip")
    const bad = Buffer.from(zip)
    bad[200] ^= 0xff // inside the first entry's compressed data (it starts at byte 34)
    bad[201] ^= 0xff
    fs.writeFileSync(file2, bad)
    const e2 = await failure(dir2, { path: file2 })
    expect(e2.file).toBe(file2)
    expect(e2.message).toMatch(/c\.zip!c\.(en|km): corrupt zip entry/)
  })

  it("a file that is not TMX, and a TMX cut off before </tmx>", async () => {
    const dir = tempDir("etmx")
    const file = path.join(dir, "notes.tmx")
    fs.writeFileSync(file, "These are just notes.\nNothing to see.\n")
    const e = await failure(dir, { path: file, format: "tmx" })
    expect(e.file).toBe(file)
    expect(e.message).toContain("notes.tmx is not a TMX file")

    const dir2 = tempDir("etmx2")
    const html = path.join(dir2, "page.tmx")
    fs.writeFileSync(html, "<!DOCTYPE html>\n<html><body><tu>hi</tu></body></html>\n")
    const e2 = await failure(dir2, { path: html })
    expect(e2.message).toContain("page.tmx is not a TMX file: no <tmx> root element before the first unit")

    const dir3 = tempDir("etmx3")
    const cut = path.join(dir3, "cut.tmx")
    fs.writeFileSync(cut, `<tmx version="1.4"><body>\n<tu><tuv xml:lang="en"><seg>A.</seg></tuv><tuv xml:lang="km"><seg>ក។</seg></tuv></tu>\n<tu><tuv xml:lang="en"><seg>B`)
    const e3 = await failure(dir3, { path: cut })
    expect(e3.line).toBe(3)
    expect(e3.message).toContain("cut.tmx: truncated TMX: the unit opened at line 3 is never closed")
  })

  it("a missing file, an unrecognisable format and a corpus with no usable pair", async () => {
    const dir = tempDir("emissing")
    const missing = await failure(dir, { path: path.join(dir, "nope.tsv") })
    expect(missing.message).toContain("corpus file not found")
    const plain = path.join(dir, "plain.txt")
    fs.writeFileSync(plain, "just one column\nof text\n")
    const unknown = await failure(dir, { path: plain })
    expect(unknown.message).toContain("cannot tell the format of plain.txt")
    const empty = path.join(dir, "empty.tsv")
    fs.writeFileSync(empty, "only\tthree\tcolumns\n")
    const none = await failure(tempDir("enone"), { path: empty })
    expect(none.message).toContain("no usable pair in empty.tsv")
    expect(none.message).toContain("wrong-column-count 1")
  })

  it("a Parquet file that is not Parquet inside, and one with no usable columns", async () => {
    const dir = tempDir("epq")
    const file = path.join(dir, "x.parquet")
    fs.writeFileSync(file, Buffer.concat([Buffer.from("PAR1"), Buffer.from("garbage garbage garbage")]))
    const e = await failure(dir, { path: file })
    expect(e.message).toContain("unreadable Parquet file x.parquet")
    const file2 = path.join(dir, "nums.parquet")
    const table = new arrow.Table({ a: arrow.vectorFromArray([1, 2], new arrow.Int32()) })
    fs.writeFileSync(file2, parquet.writeParquet(parquet.Table.fromIPCStream(arrow.tableToIPC(table, "stream"))))
    const e2 = await failure(tempDir("epq2"), { path: file2 })
    expect(e2.message).toContain("nums.parquet: no \"translation\" struct and no two string columns")
  })
})

function hasXzCli(): boolean {
  return !skipFor("xz", xzMissing())
}
