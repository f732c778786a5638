/**
 * Parquet row tables: round-trips of every column type (with nulls and Khmer/emoji text), row groups, column
 * subsets, footer facts (row count, codec), interop with parquet-wasm's own whole-file reader, and clear errors
 * for bad rows and bad files.
 */
import * as arrow from "apache-arrow"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as pq from "parquet-wasm"
import { afterAll, describe, expect, it } from "vitest"
import type { ArtifactError } from "../../../src/pipeline/errors.ts"
import {
  type Column,
  openTableWriter,
  readTable,
  readTableAll,
  readTableBatches,
  type Row,
  tableColumns,
  tableInfo,
  tableRowCount,
  writeTable
} from "../../../src/formats/parquet/table.ts"
import { skipFor } from "../../support/envGate.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-table-test-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let counter = 0
const file = (name: string) => path.join(dir, `${counter++}-${name}.parquet`)

const run = <A>(effect: Effect.Effect<A, ArtifactError>): Promise<A> => Effect.runPromise(effect)
const failure = <A>(effect: Effect.Effect<A, ArtifactError>): Promise<ArtifactError> =>
  Effect.runPromise(Effect.flip(effect))

const write = (p: string, columns: ReadonlyArray<Column>, rows: ReadonlyArray<Row>, rowGroupSize?: number) =>
  run(writeTable(p, columns, Stream.fromIterable(rows), rowGroupSize === undefined ? undefined : { rowGroupSize }))

/** Open file descriptors of this process (Linux), to check that handles are closed. */
const openFds = (): number => fs.readdirSync("/proc/self/fd").length
const hasProcFd = fs.existsSync("/proc/self/fd")

const KHMER = [
  "សួស្តី​ពិភពលោក", // with U+200B ZERO WIDTH SPACE, as in FLORES
  "ព្រះរាជាណាចក្រកម្ពុជា",
  "ក្រុមហ៊ុន ១២៣៤៥៦៧៨៩០ ៛",
  "ខ្ញុំ​ស្រឡាញ់​ភាសា​ខ្មែរ 😀👍🏽 𝕂𝕙𝕞𝕖𝕣",
  "", // empty string is a value, not a null
  "a\u0000b\ttab\nnewline \"quotes\" \\ back",
  "👨‍👩‍👧‍👦 family (ZWJ sequence), 🇰🇭 flag, \u{10FFFF} max code point, é vs é"
]

const ALL_TYPES: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "text", type: "utf8" },
  { name: "f32", type: "float32" },
  { name: "f64", type: "float64" },
  { name: "flag", type: "bool" },
  { name: "maybeInt", type: "int32", nullable: true },
  { name: "maybeText", type: "utf8", nullable: true },
  { name: "maybeF32", type: "float32", nullable: true },
  { name: "maybeF64", type: "float64", nullable: true },
  { name: "maybeFlag", type: "bool", nullable: true }
]

const INT_EDGES = [0, 1, -1, 2147483647, -2147483648, 42]
const F32_EDGES = [0, -0, 0.5, -1.25, Math.fround(3.4e38), Math.fround(1e-40), Infinity, -Infinity, NaN]
const F64_EDGES = [0, -0, Math.PI, -Number.MAX_VALUE, Number.MIN_VALUE, 1e308, Infinity, NaN, 0.1 + 0.2]

/** Deterministic rows covering every type, edge values, and nulls in varied positions. */
const allTypeRows = (n: number): Array<Row> =>
  Array.from({ length: n }, (_, i) => ({
    id: i,
    text: KHMER[i % KHMER.length] + ` #${i}`,
    f32: F32_EDGES[i % F32_EDGES.length],
    f64: F64_EDGES[i % F64_EDGES.length],
    flag: i % 3 === 0,
    maybeInt: i % 4 === 1 ? null : INT_EDGES[i % INT_EDGES.length],
    maybeText: i % 5 === 2 ? null : KHMER[(i * 3) % KHMER.length],
    maybeF32: i % 3 === 2 ? null : F32_EDGES[(i * 5) % F32_EDGES.length],
    maybeF64: i % 7 === 0 ? null : F64_EDGES[(i * 2) % F64_EDGES.length],
    maybeFlag: i % 2 === 0 ? null : i % 4 === 1
  }))

/** Object.is per cell: tells -0 from 0 and NaN equals NaN. */
const expectSameRows = (actual: ReadonlyArray<Row>, expected: ReadonlyArray<Row>) => {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) {
    expect(Object.keys(actual[i])).toEqual(Object.keys(expected[i]))
    for (const k of Object.keys(expected[i])) {
      if (!Object.is(actual[i][k], expected[i][k])) {
        throw new Error(`row ${i} column ${k}: got ${String(actual[i][k])}, expected ${String(expected[i][k])}`)
      }
    }
  }
}

describe("table round-trips", () => {
  it("keeps every column type, nulls, edge values and Unicode exactly", async () => {
    const p = file("all-types")
    const rows = allTypeRows(53)
    expect(await write(p, ALL_TYPES, rows)).toBe(53)
    expectSameRows(await run(readTableAll(p)), rows)
    // The nullable columns really hold nulls and the text really holds astral characters.
    const back = await run(readTableAll(p))
    expect(back.filter((r) => r.maybeText === null).length).toBe(rows.filter((r) => r.maybeText === null).length)
    expect(back.some((r) => typeof r.text === "string" && r.text.includes("😀"))).toBe(true)
  })

  it("keeps Khmer text byte-exact, including zero-width spaces and coeng sequences", async () => {
    const p = file("khmer")
    const rows = KHMER.map((s, i) => ({ id: i, km: s }))
    await write(p, [{ name: "id", type: "int32" }, { name: "km", type: "utf8" }], rows)
    const back = await run(readTableAll(p))
    for (let i = 0; i < rows.length; i++) {
      expect(Buffer.from(String(back[i].km), "utf8").equals(Buffer.from(KHMER[i], "utf8"))).toBe(true)
      expect(back[i].km).toBe(KHMER[i])
    }
  })

  it("declares the schema it was given: types and nullability come back from tableColumns", async () => {
    const p = file("schema")
    await write(p, ALL_TYPES, allTypeRows(3))
    const columns = await run(tableColumns(p))
    expect(columns).toEqual(ALL_TYPES.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable === true })))
  })

  it("treats a missing cell in a nullable column as null and ignores extra keys", async () => {
    const p = file("missing")
    const columns: ReadonlyArray<Column> = [{ name: "a", type: "int32" }, { name: "b", type: "utf8", nullable: true }]
    await write(p, columns, [{ a: 1 }, { a: 2, b: "x", extra: "ignored" }])
    expect(await run(readTableAll(p))).toEqual([{ a: 1, b: null }, { a: 2, b: "x" }])
  })

  it("writes an empty table that still has its schema", async () => {
    const p = file("empty")
    expect(await write(p, ALL_TYPES, [])).toBe(0)
    expect(await run(tableRowCount(p))).toBe(0)
    expect(await run(readTableAll(p))).toEqual([])
    expect((await run(tableColumns(p))).map((c) => c.name)).toEqual(ALL_TYPES.map((c) => c.name))
    expect((await run(tableInfo(p))).rowGroups).toEqual([])
  })
})

describe("row groups", () => {
  it("writes one row group per rowGroupSize rows and reads them back one at a time", async () => {
    const p = file("groups")
    const rows = allTypeRows(25)
    const writer = await run(openTableWriter(p, ALL_TYPES, { rowGroupSize: 10 }))
    // Writes that straddle row group boundaries in odd ways.
    await run(writer.write(rows.slice(0, 7)))
    await run(writer.write(rows.slice(7, 8)))
    await run(writer.write([]))
    await run(writer.write(rows.slice(8, 25)))
    expect(await run(writer.close)).toBe(25)

    const info = await run(tableInfo(p))
    expect(info.rows).toBe(25)
    expect(info.rowGroups.map((g) => g.rows)).toEqual([10, 10, 5])
    const batches = await run(Stream.runCollect(readTableBatches(p)))
    expect(batches.map((b) => b.length)).toEqual([10, 10, 5])
    expectSameRows(batches.flat(), rows)
    // The row stream yields the same rows in order.
    expectSameRows(await run(Stream.runCollect(readTable(p))), rows)
  })

  it("streams lazily: taking the first rows decodes only the first row group", async () => {
    const p = file("lazy")
    const rows = allTypeRows(30)
    await write(p, ALL_TYPES, rows, 10)
    // Corrupt row group 2's bytes: a lazy reader that stops after group 0 never sees them.
    const info = await run(tableInfo(p))
    expect(info.rowGroups.length).toBe(3)
    const last = info.rowGroups[2]
    const bytes = fs.readFileSync(p)
    bytes.fill(0xab, last.start, last.end)
    fs.writeFileSync(p, bytes)
    const firstFive = await run(Stream.runCollect(readTable(p).pipe(Stream.take(5))))
    expectSameRows(firstFive, rows.slice(0, 5))
    // ...while reading everything reaches the corrupt group and says which one it is.
    expect((await failure(readTableAll(p))).message).toContain("row group 2 of 3")
  })
})

describe("column subsets and footer facts", () => {
  it("returns only the selected columns, in the order asked", async () => {
    const p = file("subset")
    const rows = allTypeRows(12)
    await write(p, ALL_TYPES, rows, 5)
    const back = await run(readTableAll(p, { columns: ["maybeText", "id"] }))
    expectSameRows(
      back,
      rows.map((r) => ({ maybeText: r.maybeText, id: r.id }))
    )
  })

  it("fails on an unknown column, naming it and the columns that exist", async () => {
    const p = file("subset-bad")
    await write(p, ALL_TYPES, allTypeRows(2))
    const e = await failure(readTableAll(p, { columns: ["id", "nope"] }))
    expect(e._tag).toBe("ArtifactError")
    expect(e.path).toBe(p)
    expect(e.message).toContain(`"nope"`)
    expect(e.message).toContain("maybeFlag")
  })

  it("counts rows from the footer", async () => {
    const p = file("count")
    await write(p, ALL_TYPES, allTypeRows(1234), 500)
    expect(await run(tableRowCount(p))).toBe(1234)
    expect((await run(tableInfo(p))).rowGroups.map((g) => g.rows)).toEqual([500, 500, 234])
  })

  it("compresses every column chunk with ZSTD, shrinking repetitive text many times", async () => {
    const p = file("zstd")
    const sentence = "ខ្ញុំ​ស្រឡាញ់​ភាសា​ខ្មែរ and the same English words again and again "
    // Distinct strings (so dictionary encoding alone cannot shrink them) made of repeated phrases.
    const rows = Array.from({ length: 4000 }, (_, i) => ({ id: i, text: sentence.repeat(1 + (i % 3)) + i }))
    await write(p, [{ name: "id", type: "int32" }, { name: "text", type: "utf8" }], rows, 2000)
    const info = await run(tableInfo(p))
    for (const g of info.rowGroups) expect(g.codecs).toEqual(["ZSTD", "ZSTD"])
    const compressed = info.rowGroups.reduce((n, g) => n + g.compressedBytes, 0)
    const uncompressed = info.rowGroups.reduce((n, g) => n + g.uncompressedBytes, 0)
    const textBytes = rows.reduce((n, r) => n + Buffer.byteLength(r.text), 0)
    expect(uncompressed).toBeGreaterThan(compressed * 5)
    expect(info.bytes).toBeLessThan(textBytes / 5)
  })
})

describe("interop", () => {
  it("is a standard Parquet file: parquet-wasm's whole-file reader sees the same rows and row groups", async () => {
    const p = file("interop")
    const rows = allTypeRows(40)
    await write(p, ALL_TYPES, rows, 16)
    const bytes = fs.readFileSync(p)
    const table = arrow.tableFromIPC(pq.readParquet(bytes).intoIPCStream())
    expect(table.numRows).toBe(40)
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}:${f.nullable}`)).toEqual([
      "id:Int32:false",
      "text:Utf8:false",
      "f32:Float32:false",
      "f64:Float64:false",
      "flag:Bool:false",
      "maybeInt:Int32:true",
      "maybeText:Utf8:true",
      "maybeF32:Float32:true",
      "maybeF64:Float64:true",
      "maybeFlag:Bool:true"
    ])
    const fromWasm: Array<Row> = []
    for (let i = 0; i < table.numRows; i++) {
      const row: Record<string, string | number | boolean | null> = {}
      for (const f of table.schema.fields) {
        const v: unknown = table.getChild(f.name)?.get(i)
        row[f.name] = typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? v : null
      }
      fromWasm.push(row)
    }
    expectSameRows(fromWasm, rows)
  })

  it("reads a Parquet file written by parquet-wasm in one piece (several row groups, dictionary pages)", async () => {
    const p = file("foreign")
    const n = 3000
    const ids = Int32Array.from({ length: n }, (_, i) => i * 7)
    const texts = Array.from({ length: n }, (_, i) => KHMER[i % KHMER.length])
    const t = new arrow.Table({ id: arrow.makeVector(ids), text: arrow.vectorFromArray(texts, new arrow.Utf8()) })
    const props = new pq.WriterPropertiesBuilder().setCompression(pq.Compression.SNAPPY).setMaxRowGroupSize(1000).build()
    fs.writeFileSync(p, pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(t, "stream")), props))
    expect((await run(tableInfo(p))).rowGroups.map((g) => [g.rows, g.codecs[0]])).toEqual([
      [1000, "SNAPPY"],
      [1000, "SNAPPY"],
      [1000, "SNAPPY"]
    ])
    const back = await run(readTableAll(p))
    expect(back.length).toBe(n)
    expect(back.map((r) => r.id)).toEqual(Array.from(ids))
    expect(back.map((r) => r.text)).toEqual(texts)
  })
})

describe("unsupported column types", () => {
  it("reads the other columns of a file with a struct column (like OPUS's id + translation{en,km})", async () => {
    const p = file("struct")
    const en = arrow.vectorFromArray(["hello", "book"], new arrow.Utf8())
    const km = arrow.vectorFromArray(["សួស្តី", "សៀវភៅ"], new arrow.Utf8())
    const fields = [new arrow.Field("en", new arrow.Utf8(), true), new arrow.Field("km", new arrow.Utf8(), true)]
    const translation = arrow.makeVector(
      arrow.makeData({ type: new arrow.Struct(fields), length: 2, nullCount: 0, children: [en.data[0], km.data[0]] })
    )
    const t = new arrow.Table({ id: arrow.makeVector(Int32Array.of(7, 8)), translation })
    fs.writeFileSync(p, pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(t, "stream"))))
    expect(await run(readTableAll(p, { columns: ["id"] }))).toEqual([{ id: 7 }, { id: 8 }])
    expect(await run(tableRowCount(p))).toBe(2)
    const e = await failure(tableColumns(p))
    expect(e.message).toContain(`column "translation" has unsupported type`)
    expect((await failure(readTableAll(p))).message).toContain(`"translation"`)
  })
})

describe("errors when writing", () => {
  const columns: ReadonlyArray<Column> = [
    { name: "id", type: "int32" },
    { name: "text", type: "utf8" },
    { name: "maybe", type: "float32", nullable: true }
  ]
  const cases: ReadonlyArray<[string, Row, ReadonlyArray<string>]> = [
    ["null in a non-nullable column", { id: 1, text: null }, [`column "text"`, "not nullable", "row 3"]],
    ["a missing non-nullable cell", { id: 1 }, [`column "text"`, "no value"]],
    ["a string in an int32 column", { id: "7", text: "x" }, [`column "id"`, "integer", `"7"`]],
    ["a fraction in an int32 column", { id: 1.5, text: "x" }, [`column "id"`, "1.5"]],
    ["an int32 overflow", { id: 2147483648, text: "x" }, [`column "id"`, "int32 range"]],
    ["a number in a utf8 column", { id: 1, text: 5 }, [`column "text"`, "a string"]],
    ["a boolean in a float column", { id: 1, text: "x", maybe: true }, [`column "maybe"`, "a number"]],
    ["a lone surrogate", { id: 1, text: "ok \ud83d broken" }, [`column "text"`, "lone surrogate"]]
  ]
  for (const [label, bad, fragments] of cases) {
    it(`rejects ${label}, naming the path, column and row`, async () => {
      const p = file("bad-row")
      const good: Row = { id: 0, text: "fine", maybe: null }
      const e = await failure(writeTable(p, columns, Stream.fromIterable([good, good, good, bad, good])))
      expect(e._tag).toBe("ArtifactError")
      expect(e.path).toBe(p)
      expect(e.message).toContain(p)
      for (const f of fragments) expect(e.message).toContain(f)
    })
  }

  it("refuses further writes after a failure, and writes after close", async () => {
    const p = file("after-failure")
    const writer = await run(openTableWriter(p, columns, { rowGroupSize: 2 }))
    await failure(writer.write([{ id: 1, text: null }, { id: 2, text: "x" }]))
    expect((await failure(writer.write([{ id: 3, text: "y" }]))).message).toContain("failed")
    expect((await failure(writer.close)).message).toContain("failed")

    const q = file("after-close")
    const w2 = await run(openTableWriter(q, columns))
    await run(w2.write([{ id: 1, text: "x" }]))
    expect(await run(w2.close)).toBe(1)
    expect((await failure(w2.write([{ id: 2, text: "y" }]))).message).toContain("already closed")
  })

  it("rejects bad schemas and options before creating the file", async () => {
    const p = file("bad-schema")
    const dup = await failure(openTableWriter(p, [{ name: "a", type: "int32" }, { name: "a", type: "utf8" }]))
    expect(dup.message).toContain(`"a" appears twice`)
    expect((await failure(openTableWriter(p, []))).message).toContain("at least one column")
    expect((await failure(openTableWriter(p, columns, { rowGroupSize: 0 }))).message).toContain("rowGroupSize")
    expect(fs.existsSync(p)).toBe(false)
  })

  it("passes a failure of the row stream through and closes the file handle", async () => {
    const p = file("stream-fails")
    const before = hasProcFd ? openFds() : 0
    const rows = Stream.fromIterable([{ id: 1, text: "a" }]).pipe(Stream.concat(Stream.fail("upstream broke" as const)))
    const e = await Effect.runPromise(Effect.flip(writeTable(p, columns, rows)))
    expect(e).toBe("upstream broke")
    if (hasProcFd) expect(openFds()).toBe(before)
  })

  it("fails clearly when the directory does not exist", async () => {
    const p = path.join(dir, "no-such-dir", "t.parquet")
    const e = await failure(openTableWriter(p, columns))
    expect(e.message).toContain(p)
    expect(e.message).toContain("cannot create")
  })
})

describe("errors when reading", () => {
  const validFile = async (): Promise<string> => {
    const p = file("valid")
    await write(p, ALL_TYPES, allTypeRows(200), 50)
    return p
  }

  it("names a missing file", async () => {
    const p = path.join(dir, "does-not-exist.parquet")
    for (const e of [await failure(readTableAll(p)), await failure(tableRowCount(p)), await failure(tableColumns(p))]) {
      expect(e._tag).toBe("ArtifactError")
      expect(e.path).toBe(p)
      expect(e.message).toBe(`no such file: ${p}`)
    }
  })

  it("says a garbage file is not Parquet", async () => {
    const p = file("garbage")
    fs.writeFileSync(p, "this is plainly not a parquet file, just some text that is long enough")
    const e = await failure(readTableAll(p))
    expect(e.message).toContain("not a Parquet file")
    expect(e.message).toContain(p)
    fs.writeFileSync(p, "PAR")
    expect((await failure(tableRowCount(p))).message).toContain("only 3 bytes")
  })

  it("says a truncated file is truncated", async () => {
    const p = await validFile()
    const bytes = fs.readFileSync(p)
    for (const keep of [bytes.length - 1, bytes.length - 100, Math.floor(bytes.length / 2), 20]) {
      fs.writeFileSync(p, bytes.subarray(0, keep))
      const e = await failure(readTableAll(p))
      expect(e.message).toContain("truncated")
      expect(e.message).toContain(p)
    }
  })

  it("turns a corrupt data page into an ArtifactError naming the row group (no crash, no hang)", async () => {
    const p = await validFile()
    const info = await run(tableInfo(p))
    expect(info.rowGroups.length).toBe(4)
    const bytes = fs.readFileSync(p)
    // Overwrite the second half of row group 1 (its pages, not the footer) with garbage.
    const g = info.rowGroups[1]
    bytes.fill(0x5a, Math.floor((g.start + g.end) / 2), g.end)
    fs.writeFileSync(p, bytes)
    const e = await failure(readTableAll(p))
    expect(e._tag).toBe("ArtifactError")
    expect(e.message).toContain("row group 1 of 4")
    expect(e.message).toContain(p)
    // The module still works after the error.
    const q = await validFile()
    expect((await run(readTableAll(q))).length).toBe(200)
  })

  it("turns a corrupt footer into an ArtifactError", async () => {
    const p = await validFile()
    const bytes = fs.readFileSync(p)
    const footerLength = bytes.readUInt32LE(bytes.length - 8)
    const footerStart = bytes.length - 8 - footerLength
    bytes.fill(0xff, footerStart, footerStart + Math.min(64, footerLength))
    fs.writeFileSync(p, bytes)
    const e = await failure(tableRowCount(p))
    expect(e.message).toContain("corrupt Parquet footer")
    expect(e.message).toContain(p)
  })

  it.skipIf(!hasProcFd)("closes its file handles after reading, after failing and after an early stop", async () => {
    const p = await validFile()
    const before = openFds()
    await run(readTableAll(p))
    await run(tableRowCount(p))
    await run(Stream.runCollect(readTable(p).pipe(Stream.take(3))))
    await failure(readTableAll(p, { columns: ["nope"] }))
    expect(openFds()).toBe(before)
  })
})

const dataDir = path.resolve(import.meta.dirname, "../../../../shared/data/km-en")
const pairsFile = path.join(dataDir, "mixed_real_pairs.en-km.tsv")
const hasData = !skipFor("shared-data", fs.existsSync(pairsFile) ? undefined : `${pairsFile} not found (shared data is not in a fresh clone)`)

describe.skipIf(!hasData)("real Khmer–English pairs", () => {
  it("round-trips all 8,684 real pairs exactly", async () => {
    const lines = fs.readFileSync(pairsFile, "utf8").split("\n").filter((l) => l.length > 0)
    const rows = lines.map((line, i) => {
      const [en, km] = line.split("\t")
      return { id: i, english: en, foreign: km ?? null }
    })
    const p = file("real")
    const columns: ReadonlyArray<Column> = [
      { name: "id", type: "int32" },
      { name: "english", type: "utf8" },
      { name: "foreign", type: "utf8", nullable: true }
    ]
    expect(await write(p, columns, rows, 1000)).toBe(rows.length)
    const back = await run(readTableAll(p))
    expect(back.length).toBe(rows.length)
    expectSameRows(back, rows)
    expect(back.some((r) => typeof r.foreign === "string" && r.foreign.includes("\u200b"))).toBe(true)
    const info = await run(tableInfo(p))
    expect(info.rowGroups.length).toBe(Math.ceil(rows.length / 1000))
    expect(info.bytes).toBeLessThan(fs.statSync(pairsFile).size)
  })
})
