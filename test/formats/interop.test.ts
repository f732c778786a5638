/**
 * Artifacts that other tools read as they are. Every Parquet column list a stage declares (the outputs of all
 * stages in `src/nodes/index.ts`) is written by llink's writer — several row groups, repeated strings (dictionary
 * pages), Khmer text, nulls — and read back by DuckDB (`@duckdb/node-api`, its own Parquet reader): the column
 * names, DuckDB's types and every value must be llink's. An Arrow IPC matrix (`encode`/`teacher` outputs) is read
 * back with apache-arrow's reader, a second implementation beside llink's own.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import * as arrow from "apache-arrow"
import { Effect, Stream } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { openMatrixWriter } from "../../src/formats/arrow/matrix.ts"
import { type Cell, type Column, type Row, writeTable } from "../../src/formats/parquet/table.ts"
import { stages } from "../../src/nodes/index.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-interop-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const DUCK_TYPE = { int32: "INTEGER", float32: "FLOAT", float64: "DOUBLE", utf8: "VARCHAR", bool: "BOOLEAN" } as const
const KHMER = ["ខ្ញុំចូលចិត្តបាយ។", "សួស្ដី", "តើអ្នកកំពុងទៅណា?", ""]

const cellOf = (c: Column, i: number): Cell => {
  if (c.nullable === true && i % 3 === 1) return null
  switch (c.type) {
    case "int32":
      return i % 5 === 0 ? -(i + 1) : i * 7919
    case "float32":
      return Math.fround(i / 7 - 3)
    case "float64":
      return i / 7 - 3 + 1e-9 * i
    case "bool":
      return i % 4 === 0
    case "utf8":
      return i % 2 === 0 ? `${c.name}-${i % 10}` : `${KHMER[i % KHMER.length]} ${i} “q” \t tab`
  }
}

/** Every distinct column list the stages write as Parquet, with the artifacts that use it. */
const declared = new Map<string, { readonly columns: ReadonlyArray<Column>; readonly names: Array<string> }>()
for (const stage of stages) {
  for (const out of stage.outputs) {
    if (out.kind !== "parquet") continue
    const key = JSON.stringify(out.columns)
    const seen = declared.get(key)
    if (seen === undefined) declared.set(key, { columns: out.columns, names: [out.name] })
    else seen.names.push(out.name)
  }
}

describe("DuckDB reads every Parquet artifact kind as llink wrote it", async () => {
  const duck = await (await DuckDBInstance.create(":memory:")).connect()

  it("finds the declared kinds", () => {
    expect(declared.size).toBeGreaterThanOrEqual(10)
  })

  for (const { columns, names } of declared.values()) {
    it(names.join(", "), async () => {
      const rows: Array<Row> = Array.from({ length: 9_000 }, (_, i) => Object.fromEntries(columns.map((c) => [c.name, cellOf(c, i)])))
      const file = path.join(dir, `${names[0]}.parquet`)
      await Effect.runPromise(writeTable(file, columns, Stream.fromIterable(rows), { rowGroupSize: 4_096 }))

      const described = await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
      const schema = described.getRowObjectsJS().map((r) => [r["column_name"], r["column_type"]])
      expect(schema).toEqual(columns.map((c) => [c.name, DUCK_TYPE[c.type]]))

      const groups = await duck.runAndReadAll(`SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata('${file}')`)
      expect(Number(groups.getRowObjectsJS()[0]!["n"])).toBe(3)

      const read = await duck.runAndReadAll(`SELECT * FROM read_parquet('${file}')`)
      const back = read.getRowObjectsJS()
      expect(back.length).toBe(rows.length)
      expect(back).toEqual(rows)
    })
  }
})

describe("apache-arrow reads an llink matrix", () => {
  it("vectors as FixedSizeList<Float32>, ids as Int32, every value, over three record batches", async () => {
    const file = path.join(dir, "zF.arrow")
    const dim = 5
    const batches = [4, 7, 2]
    const all: Array<number> = []
    const ids: Array<number> = []
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const writer = yield* openMatrixWriter(file, dim)
      let next = 0
      for (const n of batches) {
        const data = Float32Array.from({ length: n * dim }, (_, k) => Math.fround(Math.sin(next * dim + k) * 3))
        const batchIds = Int32Array.from({ length: n }, (_, k) => (next + k) * 11 - 5)
        all.push(...data)
        ids.push(...batchIds)
        yield* writer.write({ rows: n, dim, data }, batchIds)
        next += n
      }
      yield* writer.close
    })))
    const table = arrow.tableFromIPC(fs.readFileSync(file))
    expect(table.numRows).toBe(13)
    expect(table.batches.length).toBe(3)
    const vector = table.schema.fields.find((f) => f.name === "vector")!
    expect(String(vector.type)).toBe("FixedSizeList[5]<Float32>")
    expect(String(table.schema.fields.find((f) => f.name === "id")!.type)).toBe("Int32")
    const values: Array<number> = []
    for (let i = 0; i < table.numRows; i++) values.push(...(table.getChild("vector")!.get(i) as arrow.Vector<arrow.Float32>).toArray())
    expect(values).toEqual(all)
    expect(Array.from(table.getChild("id")!.toArray() as Int32Array)).toEqual(ids)
  })
})
