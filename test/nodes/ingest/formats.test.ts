/**
 * The ingest stage on every corpus format, from fixtures written here: ParaCrawl TSV (plain, gz), WMT20 (xz +
 * LASER scores), OPUS Moses (plain, zip), TMX (plain, zip), Parquet (translation struct, two columns), JSONL —
 * each read with `format: "auto"` (detection) and checked pair by pair.
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
import { corpusParams, rows, runStage, tempDir } from "../../support/dataStages.ts"
import { skipFor, xzMissing } from "../../support/envGate.ts"

const PAIRS: ReadonlyArray<readonly [string, string]> = [
  ["Hello.", "សួស្ដី។"],
  ["I like rice with fish.", "ខ្ញុំចូលចិត្តបាយជាមួយត្រី។"],
  ["Where is the market?", "តើផ្សារនៅឯណា?"],
  ["The bus leaves at 7 o'clock.", "ឡានក្រុងចេញនៅម៉ោង ៧។"]
]
const tsvText = (pairs = PAIRS) => pairs.map(([en, km]) => `${en}\t${km}`).join("\n") + "\n"

const ingestFile = async (dir: string, fields: Record<string, unknown>) => {
  const ran = await runStage(ingest, corpusParams(fields), {}, dir)
  return {
    ran,
    pairs: await rows(ran.outputs["pairs"]),
    quarantine: await rows(ran.outputs["ingest.quarantine"])
  }
}

const expectPairs = (pairs: ReadonlyArray<Record<string, unknown>>, expected = PAIRS) => {
  expect(pairs.map((p) => [p.english, p.foreign])).toEqual(expected.map(([en, km]) => [en, km]))
  expect(pairs.map((p) => p.id)).toEqual(expected.map((_, i) => i))
}

const hasXz = !skipFor("xz", xzMissing())

describe("ingest: ParaCrawl bonus TSV", () => {
  it("reads a plain TSV with origins file:line and null scores", async () => {
    const dir = tempDir("tsv")
    const file = path.join(dir, "en-km.txt")
    fs.writeFileSync(file, tsvText())
    const { ran, pairs, quarantine } = await ingestFile(dir, { path: file })
    expectPairs(pairs)
    expect(pairs.map((p) => p.origin)).toEqual(["en-km.txt:1", "en-km.txt:2", "en-km.txt:3", "en-km.txt:4"])
    expect(pairs.every((p) => p.score === null)).toBe(true)
    expect(quarantine).toHaveLength(0)
    expect(ran.outcome.metrics?.format).toBe("tsv")
    expect(ran.outcome.rows).toEqual({ pairs: 4, "ingest.quarantine": 0 })
  })

  it("reads a gzipped TSV (en-km.txt.gz), detected by magic bytes", async () => {
    const dir = tempDir("tsvgz")
    const file = path.join(dir, "en-km.txt.gz")
    fs.writeFileSync(file, zlib.gzipSync(tsvText()))
    const { ran, pairs } = await ingestFile(dir, { path: file })
    expectPairs(pairs)
    expect(ran.outcome.metrics?.format).toBe("tsv")
  })

  it("takes the English side from englishColumn (km first), and strips a BOM and CRLF", async () => {
    const dir = tempDir("tsvcol")
    const file = path.join(dir, "km-en.tsv")
    fs.writeFileSync(file, "\uFEFF" + PAIRS.map(([en, km]) => `${km}\t${en}\r\n`).join(""))
    const { pairs } = await ingestFile(dir, { path: file, englishColumn: 1 })
    expectPairs(pairs)
  })

  it("reads a wider TSV with a header via columns/foreignColumn/header", async () => {
    const dir = tempDir("tsvwide")
    const file = path.join(dir, "tm.tsv")
    fs.writeFileSync(file, "tuid\ten\tkm\tnote\n" + PAIRS.map(([en, km], i) => `${i}\t${en}\t${km}\tx`).join("\n") + "\n")
    const { pairs } = await ingestFile(dir, { path: file, columns: 4, englishColumn: 1, foreignColumn: 2, header: true })
    expectPairs(pairs)
    expect(pairs[0].origin).toBe("tm.tsv:2")
  })
})

describe.skipIf(!hasXz)("ingest: WMT20 release (.xz TSV + LASER scores)", () => {
  it("keeps the score column and finds NAME.laser-score.xz beside the corpus", async () => {
    const dir = tempDir("wmt20")
    const file = path.join(dir, "wmt20-sent.en-km.xz")
    fs.writeFileSync(file, execFileSync("xz", ["-c", "-T1"], { input: tsvText() }))
    fs.writeFileSync(path.join(dir, "wmt20-sent.en-km.laser-score.xz"), execFileSync("xz", ["-c"], { input: "1.25\n0.5\n-0.75\n1e-3\n" }))
    const { ran, pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(ran.outcome.metrics?.format).toBe("wmt20")
    expectPairs(pairs)
    expect(pairs.map((p) => p.score)).toEqual([1.25, 0.5, -0.75, 0.001])
    expect(quarantine).toHaveLength(0)
  })

  it("quarantines pairs without a score, unparsable scores and extra score lines", async () => {
    const dir = tempDir("wmt20bad")
    const file = path.join(dir, "c.en-km.xz")
    const scores = path.join(dir, "scores.txt")
    fs.writeFileSync(file, execFileSync("xz", ["-c"], { input: tsvText() }))
    fs.writeFileSync(scores, "0.9\nabc\n0.7\n")
    const short = await ingestFile(dir, { path: file, format: "wmt20", scorePath: scores })
    expect(short.pairs.map((p) => p.english)).toEqual([PAIRS[0][0], PAIRS[2][0]])
    expect(short.quarantine.map((q) => [q.file, q.line, q.reason])).toEqual([
      ["scores.txt", 2, "score-invalid"],
      ["c.en-km.xz", 4, "score-missing"]
    ])
    const dir2 = tempDir("wmt20extra")
    const scores2 = path.join(dir2, "scores.txt")
    fs.writeFileSync(scores2, "1\n2\n3\n4\n5\n6\n")
    const long = await ingestFile(dir2, { path: file, format: "wmt20", scorePath: scores2 })
    expect(long.pairs).toHaveLength(4)
    expect(long.quarantine.map((q) => [q.line, q.reason])).toEqual([
      [5, "score-extra"],
      [6, "score-extra"]
    ])
  })
})

describe("ingest: OPUS Moses", () => {
  const write = (dir: string, stem: string) => {
    fs.writeFileSync(path.join(dir, `${stem}.en`), PAIRS.map((p) => p[0]).join("\n") + "\n")
    fs.writeFileSync(path.join(dir, `${stem}.km`), PAIRS.map((p) => p[1]).join("\n") + "\n")
  }

  it("reads X.en / X.km, deriving the pair from either side's name", async () => {
    const dir = tempDir("moses")
    write(dir, "ParaCrawl.en-km")
    const fromEn = await ingestFile(dir, { path: path.join(dir, "ParaCrawl.en-km.en") })
    expect(fromEn.ran.outcome.metrics?.format).toBe("moses")
    expectPairs(fromEn.pairs)
    expect(fromEn.pairs[1].origin).toBe("ParaCrawl.en-km.en:2")
    const dir2 = tempDir("moses2")
    write(dir2, "ParaCrawl.en-km")
    const fromKm = await ingestFile(dir2, { path: path.join(dir2, "ParaCrawl.en-km.km") })
    expectPairs(fromKm.pairs)
  })

  it("reads an explicit pairPath with other extensions (NTREX-style .eng.txt / .khm.txt)", async () => {
    const dir = tempDir("mosespair")
    fs.writeFileSync(path.join(dir, "x.eng.txt"), PAIRS.map((p) => p[0]).join("\n") + "\n")
    fs.writeFileSync(path.join(dir, "x.khm.txt"), PAIRS.map((p) => p[1]).join("\n") + "\n")
    const { ran, pairs } = await ingestFile(dir, { path: path.join(dir, "x.eng.txt"), pairPath: path.join(dir, "x.khm.txt") })
    expect(ran.outcome.metrics?.format).toBe("moses")
    expectPairs(pairs)
  })

  it("reads a Moses zip (en-km.txt.zip holding ParaCrawl.en-km.en / .km and a README)", async () => {
    const dir = tempDir("moseszip")
    const file = path.join(dir, "en-km.txt.zip")
    fs.writeFileSync(
      file,
      zipSync({
        "README": strToU8("ParaCrawl v9 sample\n"),
        "LICENSE": strToU8("CC0\n"),
        "ParaCrawl.en-km.en": strToU8(PAIRS.map((p) => p[0]).join("\n") + "\n"),
        "ParaCrawl.en-km.km": strToU8(PAIRS.map((p) => p[1]).join("\n") + "\n"),
        "ParaCrawl.en-km.xml": strToU8("<xml/>\n")
      })
    )
    const { ran, pairs } = await ingestFile(dir, { path: file })
    expect(ran.outcome.metrics?.format).toBe("moses")
    expectPairs(pairs)
    expect(pairs[0].origin).toBe("en-km.txt.zip!ParaCrawl.en-km.en:1")
  })

  it("reads stored (uncompressed) zip entries too", async () => {
    const dir = tempDir("moseszip0")
    const file = path.join(dir, "c.zip")
    fs.writeFileSync(
      file,
      zipSync(
        { "c.en": strToU8(PAIRS.map((p) => p[0]).join("\n")), "c.km": strToU8(PAIRS.map((p) => p[1]).join("\n")) },
        { level: 0 }
      )
    )
    const { pairs } = await ingestFile(dir, { path: file })
    expectPairs(pairs)
  })
})

const TMX = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<tmx version="1.4">
  <header creationtool="test" srclang="en" datatype="plaintext" segtype="sentence" adminlang="en" o-tmf="none"/>
  <body>
    <tu tuid="1">
      <tuv xml:lang="en"><seg>Hello.</seg></tuv>
      <tuv xml:lang="km"><seg>សួស្ដី។</seg></tuv>
    </tu>
    <!-- a comment with <tu> inside it must be ignored -->
    <tu tuid="2"><prop type="x">note</prop>
      <tuv xml:lang="EN-US"><seg>I like <bpt i="1">&lt;b&gt;</bpt>rice<ept i="1">&lt;/b&gt;</ept> &amp; fish &#x2014; really.</seg></tuv>
      <tuv xml:lang="km-KH"><seg><![CDATA[ខ្ញុំចូលចិត្ត<បាយ> & ត្រី]]>។</seg></tuv>
    </tu>
    <tu tuid="3">
      <tuv lang="km"><seg>តើ<hi type="b">ផ្សារ</hi>នៅឯណា&#63;</seg></tuv>
      <tuv lang="en"><seg>Where is the <ph x="1">{1}</ph>market?</seg></tuv>
    </tu>
  </body>
</tmx>
`
const TMX_PAIRS: ReadonlyArray<readonly [string, string]> = [
  ["Hello.", "សួស្ដី។"],
  ["I like rice & fish \u2014 really.", "ខ្ញុំចូលចិត្ត<បាយ> & ត្រី។"],
  ["Where is the market?", "តើផ្សារនៅឯណា?"]
]

describe("ingest: TMX", () => {
  it("reads units with entities, CDATA, inline tags, comments and lang codes en/EN-US/km-KH/lang=", async () => {
    const dir = tempDir("tmx")
    const file = path.join(dir, "all.en-km.tmx")
    fs.writeFileSync(file, TMX)
    const { ran, pairs, quarantine } = await ingestFile(dir, { path: file })
    expect(ran.outcome.metrics?.format).toBe("tmx")
    expectPairs(pairs, TMX_PAIRS)
    expect(pairs.map((p) => p.origin)).toEqual(["all.en-km.tmx:6", "all.en-km.tmx:11", "all.en-km.tmx:15"])
    expect(quarantine).toHaveLength(0)
  })

  it("reads a TMX inside a zip, and a UTF-16LE TMX with a BOM", async () => {
    const dir = tempDir("tmxzip")
    const file = path.join(dir, "all.en-km.tmx.zip")
    fs.writeFileSync(file, zipSync({ "all.en-km.tmx": strToU8(TMX) }))
    const zipped = await ingestFile(dir, { path: file })
    expect(zipped.ran.outcome.metrics?.format).toBe("tmx")
    expectPairs(zipped.pairs, TMX_PAIRS)
    expect(zipped.pairs[0].origin).toBe("all.en-km.tmx.zip!all.en-km.tmx:6")
    const dir2 = tempDir("tmx16")
    const file16 = path.join(dir2, "u16.tmx")
    fs.writeFileSync(file16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(TMX.replace("UTF-8", "UTF-16"), "utf16le")]))
    const u16 = await ingestFile(dir2, { path: file16 })
    expectPairs(u16.pairs, TMX_PAIRS)
  })

  it("reads a TMX fed in tiny pieces across chunk boundaries (a 200 KiB file with many units)", async () => {
    const dir = tempDir("tmxbig")
    const file = path.join(dir, "big.tmx")
    const units = Array.from({ length: 1500 }, (_, i) =>
      `<tu><tuv xml:lang="en"><seg>Sentence number ${i}.</seg></tuv><tuv xml:lang="km"><seg>ប្រយោគលេខ ${i}។</seg></tuv></tu>`)
    fs.writeFileSync(file, `<?xml version="1.0"?>\n<tmx version="1.4"><header/><body>\n${units.join("\n")}\n</body></tmx>\n`)
    const { pairs } = await ingestFile(dir, { path: file })
    expect(pairs).toHaveLength(1500)
    expect(pairs[1499]).toMatchObject({ english: "Sentence number 1499.", foreign: "ប្រយោគលេខ 1499។", origin: "big.tmx:1502" })
  })
})

const writeParquet = (file: string, table: arrow.Table, rowGroupSize = 2) => {
  const wasm = parquet.Table.fromIPCStream(arrow.tableToIPC(table, "stream"))
  const props = new parquet.WriterPropertiesBuilder().setMaxRowGroupSize(rowGroupSize).build()
  fs.writeFileSync(file, parquet.writeParquet(wasm, props))
}

describe("ingest: Parquet", () => {
  it("reads an OPUS-style file with id and a translation{en,km} struct, across row groups", async () => {
    const dir = tempDir("pq")
    const file = path.join(dir, "opus.parquet")
    const struct = new arrow.Struct([new arrow.Field("en", new arrow.Utf8(), true), new arrow.Field("km", new arrow.Utf8(), true)])
    writeParquet(
      file,
      new arrow.Table({
        id: arrow.vectorFromArray(PAIRS.map((_, i) => String(i))),
        translation: arrow.vectorFromArray(PAIRS.map(([en, km]) => ({ en, km })), struct)
      })
    )
    const { ran, pairs } = await ingestFile(dir, { path: file })
    expect(ran.outcome.metrics?.format).toBe("parquet")
    expectPairs(pairs)
    expect(pairs.map((p) => p.origin)).toEqual(["opus.parquet:1", "opus.parquet:2", "opus.parquet:3", "opus.parquet:4"])
  })

  it("reads two string columns named by the language codes, and by position", async () => {
    const dir = tempDir("pq2")
    const named = path.join(dir, "named.parquet")
    writeParquet(named, new arrow.Table({ km: arrow.vectorFromArray(PAIRS.map((p) => p[1])), en: arrow.vectorFromArray(PAIRS.map((p) => p[0])) }))
    expectPairs((await ingestFile(dir, { path: named })).pairs)
    const dir2 = tempDir("pq3")
    const positional = path.join(dir2, "positional.parquet")
    writeParquet(
      positional,
      new arrow.Table({
        n: arrow.vectorFromArray(PAIRS.map((_, i) => i), new arrow.Int32()),
        src: arrow.vectorFromArray(PAIRS.map((p) => p[0])),
        tgt: arrow.vectorFromArray(PAIRS.map((p) => p[1])),
        score: arrow.vectorFromArray([0.1, 0.2, 0.3, 0.4], new arrow.Float64())
      })
    )
    const { pairs } = await ingestFile(dir2, { path: positional })
    expectPairs(pairs)
    expect(pairs.map((p) => p.score)).toEqual([0.1, 0.2, 0.3, 0.4])
  })
})

describe("ingest: JSONL", () => {
  it("reads english/foreign objects, lang-code keys and translation objects", async () => {
    const dir = tempDir("jsonl")
    const file = path.join(dir, "pairs.jsonl")
    fs.writeFileSync(
      file,
      [
        JSON.stringify({ english: PAIRS[0][0], foreign: PAIRS[0][1] }),
        JSON.stringify({ en: PAIRS[1][0], km: PAIRS[1][1], score: 0.5 }),
        JSON.stringify({ translation: { "en-US": PAIRS[2][0], km: PAIRS[2][1] } }),
        JSON.stringify({ foreign: PAIRS[3][1], english: PAIRS[3][0] })
      ].join("\n") + "\n"
    )
    const { ran, pairs } = await ingestFile(dir, { path: file })
    expect(ran.outcome.metrics?.format).toBe("jsonl")
    expectPairs(pairs)
    expect(pairs.map((p) => p.score)).toEqual([null, 0.5, null, null])
  })

  it("detects JSONL from content when the name says nothing", async () => {
    const dir = tempDir("jsonl2")
    const file = path.join(dir, "data.txt.gz")
    fs.writeFileSync(file, zlib.gzipSync(PAIRS.map(([english, foreign]) => JSON.stringify({ english, foreign })).join("\n")))
    const { ran, pairs } = await ingestFile(dir, { path: file })
    expect(ran.outcome.metrics?.format).toBe("jsonl")
    expectPairs(pairs)
  })
})
