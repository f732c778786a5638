/**
 * The JavaScript row group decoder (`src/formats/parquet/read.ts`, behind `readTableRaw` and `readTable`) against
 * parquet-wasm's reader (`readTableAll` with `engine: "wasm"`): the same cells for every column type the writer
 * makes (int32, float32, float64, bool, utf8, required or nullable, with nulls or only nulls, PLAIN and dictionary
 * pages, the fallback from a full dictionary to PLAIN, pages cut at 1 MiB and 20,000 rows), a file llink did not
 * write (Snappy pages: decoded by parquet-wasm instead), and a corrupt page failing as an `ArtifactError` that names
 * the row group.
 */
import * as arrow from "apache-arrow"
import { Effect, Stream } from "effect"
import * as pq from "parquet-wasm"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { makeRng } from "../../../src/models/rng.ts"
import { type Cell, type Column, type RawBatch, readTableAll, readTableRaw, type Row, tableInfo, writeTable } from "../../../src/formats/parquet/table.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-parquet-read-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let counter = 0

/** A seeded uniform [0, 1) generator (the project's own). */
const seeded = (seed: number) => {
  const rng = makeRng(seed)
  return () => rng.uniform()
}

const write = async (columns: ReadonlyArray<Column>, rows: ReadonlyArray<Row>, rowGroupSize?: number, engine?: "js" | "wasm") => {
  const p = path.join(dir, `${counter++}.parquet`)
  await Effect.runPromise(
    writeTable(p, columns, Stream.fromIterable(rows), {
      ...(rowGroupSize === undefined ? {} : { rowGroupSize }),
      ...(engine === undefined ? {} : { engine })
    })
  )
  return p
}

/** The cells of raw batches as rows (what `readTableAll` returns). */
const rawRows = (batches: ReadonlyArray<RawBatch>, columns: ReadonlyArray<Column>): Array<Row> => {
  const out: Array<Row> = []
  for (const b of batches) {
    for (let i = 0; i < b.rows; i++) {
      const row: Record<string, Cell> = {}
      for (const c of columns) {
        const col = b.columns[c.name]
        row[c.name] = !col.valid(i)
          ? null
          : col.bytes !== undefined
          ? col.bytes.toString("utf8", col.offsets![i], col.offsets![i + 1])
          : c.type === "bool"
          ? col.numbers![i] === 1
          : col.numbers![i]
      }
      out.push(row)
    }
  }
  return out
}

const expectSameCells = async (p: string, columns: ReadonlyArray<Column>) => {
  const names = columns.map((c) => c.name)
  // copies of each batch's cells as it arrives: a batch's buffers are valid until the next one is pulled
  const raw: Array<Row> = []
  await Effect.runPromise(
    readTableRaw(p, names).pipe(Stream.runForEach((b) => Effect.sync(() => raw.push(...rawRows([b], columns)))))
  )
  const rows = await Effect.runPromise(readTableAll(p, { columns: names }))
  const reference = await Effect.runPromise(readTableAll(p, { columns: names, engine: "wasm" }))
  expect(raw.length).toBe(reference.length)
  expect(rows.length).toBe(reference.length)
  for (let i = 0; i < raw.length; i++) {
    if (JSON.stringify(raw[i]) !== JSON.stringify(reference[i])) expect(raw[i]).toEqual(reference[i])
    if (JSON.stringify(rows[i]) !== JSON.stringify(reference[i])) expect(rows[i]).toEqual(reference[i])
  }
  // NaN is not JSON: compare the floats themselves too
  for (const c of columns.filter((x) => x.type === "float32" || x.type === "float64")) {
    for (let i = 0; i < rows.length; i++) expect(Object.is(rows[i][c.name], reference[i][c.name]) || rows[i][c.name] === reference[i][c.name]).toBe(true)
  }
}

const KHMER = ["សួស្តី​ពិភពលោក", "ព្រះរាជាណាចក្រកម្ពុជា", "ខ្ញុំ​ស្រឡាញ់​ភាសា​ខ្មែរ 😀👍🏽", ""]

describe("the JavaScript row group decoder reads what parquet-wasm reads", () => {
  it("pairs-shaped tables: plain and dictionary columns, nulls, only nulls, several row groups", async () => {
    const columns: ReadonlyArray<Column> = [
      { name: "id", type: "int32" },
      { name: "english", type: "utf8" },
      { name: "foreign", type: "utf8", nullable: true },
      { name: "origin", type: "utf8" },
      { name: "score", type: "float64", nullable: true },
      { name: "rank", type: "int32", nullable: true }
    ]
    const rand = seeded(3)
    for (const [n, groupSize] of [[0, undefined], [1, undefined], [70, undefined], [3000, 1000], [25_000, undefined]] as const) {
      const rows: Array<Row> = []
      for (let i = 0; i < n; i++) {
        rows.push({
          id: n === 70 ? i % 5 : i, // 70 rows: a repetitive id column gets a dictionary
          english: `sentence ${Math.floor(rand() * 1e6)} ${"x".repeat(Math.floor(rand() * 40))}`,
          foreign: rand() < 0.2 ? null : KHMER[Math.floor(rand() * KHMER.length)] + String(i),
          origin: `corpus.tsv:${i % 7}`, // repetitive: dictionary pages
          score: n === 3000 ? null : rand() < 0.3 ? null : rand() * 2 - 1,
          rank: rand() < 0.5 ? null : Math.floor(rand() * 100) - 50
        })
      }
      await expectSameCells(await write(columns, rows, groupSize), columns)
      await expectSameCells(await write(columns, rows, groupSize, "wasm"), columns)
    }
  })

  it("large values: pages cut at 1 MiB, a dictionary that falls back to PLAIN", async () => {
    const columns: ReadonlyArray<Column> = [{ name: "text", type: "utf8" }, { name: "n", type: "float64" }]
    const rand = seeded(5)
    const rows: Array<Row> = Array.from({ length: 4000 }, (_, i) => ({
      text: i % 1000 === 0 ? "ក".repeat(200_000) : `${i % 3000}:${"y".repeat(Math.floor(rand() * 900))}`,
      n: i % 4 === 0 ? 0 : i % 4 === 1 ? -0 : rand()
    }))
    await expectSameCells(await write(columns, rows), columns)
  })

  it("bool and float32 columns: bit-packed booleans, float32 dictionary and PLAIN pages, NaN, ±0, nulls", async () => {
    const columns: ReadonlyArray<Column> = [
      { name: "a", type: "utf8" },
      { name: "ok", type: "bool" },
      { name: "maybe", type: "bool", nullable: true },
      { name: "f", type: "float32" },
      { name: "mf", type: "float32", nullable: true }
    ]
    const rand = seeded(8)
    for (const [n, groupSize] of [[1, undefined], [13, undefined], [300, 100], [25_000, undefined]] as const) {
      const rows: Array<Row> = Array.from({ length: n }, (_, i) => ({
        a: `r${i}`,
        ok: rand() < 0.5,
        maybe: i % 3 === 0 ? null : rand() < 0.5,
        f: n === 300 ? [0.25, -0, 0, 7][i % 4] : Math.fround(rand() * 100 - 50),
        mf: i % 5 === 0 ? null : i % 11 === 0 ? NaN : Math.fround(rand())
      }))
      await expectSameCells(await write(columns, rows, groupSize), columns)
    }
  })

  it("reads a row group it does not decode (a file llink did not write: Snappy pages) through parquet-wasm", async () => {
    const table = new arrow.Table({
      a: arrow.vectorFromArray(["x", "ក", "😀", ""], new arrow.Utf8()),
      n: arrow.vectorFromArray([1, -2, 3, 4], new arrow.Int32()),
      f: arrow.vectorFromArray([0.5, NaN, -0, 1e300], new arrow.Float64())
    })
    const props = new pq.WriterPropertiesBuilder().setCompression(pq.Compression.SNAPPY).build()
    const p = path.join(dir, `${counter++}-snappy.parquet`)
    fs.writeFileSync(p, pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(table, "stream")), props))
    const rows = await Effect.runPromise(readTableAll(p))
    expect(rows.map((r) => r["a"])).toEqual(["x", "ក", "😀", ""])
    expect(rows.map((r) => r["n"])).toEqual([1, -2, 3, 4])
    expect(Object.is(rows[2]["f"], -0) && Number.isNaN(rows[1]["f"])).toBe(true)
    const raw: Array<Row> = []
    const columns: ReadonlyArray<Column> = [{ name: "a", type: "utf8" }, { name: "n", type: "int32" }]
    await Effect.runPromise(readTableRaw(p, ["a", "n"]).pipe(Stream.runForEach((b) => Effect.sync(() => raw.push(...rawRows([b], columns))))))
    expect(raw).toEqual(rows.map((r) => ({ a: r["a"], n: r["n"] })))
  })

  it("turns a corrupt page into an ArtifactError naming the row group", async () => {
    const columns: ReadonlyArray<Column> = [{ name: "id", type: "int32" }, { name: "t", type: "utf8" }]
    const p = await write(columns, Array.from({ length: 200 }, (_, i) => ({ id: i, t: `text ${i} `.repeat(20) })), 50)
    const info = await Effect.runPromise(tableInfo(p))
    const bytes = fs.readFileSync(p)
    const g = info.rowGroups[1]
    bytes.fill(0x5a, Math.floor((g.start + g.end) / 2), g.end)
    fs.writeFileSync(p, bytes)
    const exit = await Effect.runPromise(Effect.exit(Stream.runDrain(readTableRaw(p, ["id", "t"]))))
    expect(exit._tag).toBe("Failure")
    const message = JSON.stringify(exit)
    expect(message).toContain("ArtifactError")
    expect(message).toContain("row group 1 of 4")
  })
})
