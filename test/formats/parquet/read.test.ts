/**
 * The JavaScript row group decoder (`src/formats/parquet/read.ts`, behind `readTableRaw`) against parquet-wasm's
 * reader (`readTableAll`): the same cells for every column shape the writer makes (int32, float64, utf8, required or
 * nullable, with nulls or only nulls, PLAIN and dictionary pages, the fallback from a full dictionary to PLAIN,
 * pages cut at 1 MiB and 20,000 rows), files with a type it does not read (decoded by parquet-wasm instead), and a
 * corrupt page failing as an `ArtifactError` that names the row group.
 */
import { Effect, Stream } from "effect"
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
  const reference = await Effect.runPromise(readTableAll(p, { columns: names }))
  expect(raw.length).toBe(reference.length)
  for (let i = 0; i < raw.length; i++) if (JSON.stringify(raw[i]) !== JSON.stringify(reference[i])) expect(raw[i]).toEqual(reference[i])
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

  it("reads a table with a type it does not decode through parquet-wasm", async () => {
    const columns: ReadonlyArray<Column> = [{ name: "a", type: "utf8" }, { name: "ok", type: "bool" }, { name: "f", type: "float32" }]
    const rows: Array<Row> = Array.from({ length: 300 }, (_, i) => ({ a: `r${i}`, ok: i % 2 === 0, f: i / 4 }))
    const p = await write(columns, rows, 100)
    const raw: Array<Row> = []
    await Effect.runPromise(
      readTableRaw(p, ["a", "f"]).pipe(Stream.runForEach((b) => Effect.sync(() => raw.push(...rawRows([b], [columns[0], columns[2]])))))
    )
    expect(raw).toEqual(rows.map((r) => ({ a: r.a, f: r.f })))
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
