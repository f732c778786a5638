/**
 * Row shapes declared once (`tableShape`): the columns, the Schema and the reader come from one declaration and
 * agree; every shape of the project round-trips through a Parquet file (written with its columns, read back with
 * its reader), and the file's own column list is the shape's.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema, Stream } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { type Field, float64, int32, nullable, oneOf, tableShape, utf8 } from "../../../src/formats/parquet/shape.ts"
import { type Cell, readTableAll, type Row, tableColumns, writeTable } from "../../../src/formats/parquet/table.ts"
import { BridgeMetricsTable } from "../../../src/schemas/bridge.ts"
import { PairTable, QuarantineTable, RejectTable, TokstatsTable } from "../../../src/schemas/rows.ts"
import { GenerationTable, JudgePairTable, SftTable, SynthQuarantineTable } from "../../../src/schemas/sft.ts"
import { FinetuneMetricsTable } from "../../../src/nodes/finetune/metrics.ts"
import { StageAMetricsTable } from "../../../src/nodes/stageA/metrics.ts"
import { StageBMetricsTable } from "../../../src/nodes/stageB/metrics.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-shape-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const Toy = tableShape({ id: int32, name: utf8, kind: oneOf(["a", "b"]), score: nullable(float64) })

describe("tableShape", () => {
  it("derives the columns in field order, with nullability", () => {
    expect(Toy.columns).toEqual([
      { name: "id", type: "int32" },
      { name: "name", type: "utf8" },
      { name: "kind", type: "utf8" },
      { name: "score", type: "float64", nullable: true }
    ])
  })

  it("reads good rows as the Schema decodes them, an absent nullable cell as null", () => {
    for (const row of [{ id: 1, name: "x", kind: "a", score: 0.5 }, { id: 2, name: "", kind: "b", score: null }]) {
      expect(Toy.read(row)).toEqual(Schema.decodeUnknownSync(Toy.schema)(row))
    }
    expect(Toy.read({ id: 3, name: "y", kind: "b" })).toEqual({ id: 3, name: "y", kind: "b", score: null })
  })

  it("names the row and the first bad cell, and what it should hold", () => {
    expect(Toy.read({ id: 7, name: 5, kind: "a", score: null })).toBe(`row id 7: column "name" should be a string, got 5`)
    expect(Toy.read({ id: 7, name: "x", kind: "c", score: null })).toBe(`row id 7: column "kind" should be "a" or "b", got "c"`)
    expect(Toy.read({ id: "7", name: "x", kind: "a", score: null })).toBe(`column "id" should be a number, got "7"`)
    expect(Toy.read({ id: 1, name: "x", kind: "a", score: "high" })).toBe(`row id 1: column "score" should be a number or null, got "high"`)
    expect(Toy.read({ id: 1, kind: "a" })).toBe(`row id 1: column "name" should be a string, got nothing`)
  })

  it("applies a rule across cells (generations: a peer's output and its token count are set together)", () => {
    const row: Record<string, Cell> = Object.fromEntries(GenerationTable.columns.map((c) => [c.name, c.type === "utf8" ? "text" : 1]))
    row["bucket"] = "qa"
    expect(typeof GenerationTable.read(row)).toBe("object")
    expect(GenerationTable.read({ ...row, langbridge: null })).toBe(
      `example 1: "langbridge" and "langbridgePromptTokens" must both be set or both null`
    )
  })
})

/** A row of `shape` with a value of each column's type (nullable columns: null in odd rows). */
const sampleRow = (fields: Readonly<Record<string, Field<Schema.Top>>>, i: number): Row => {
  const out: Record<string, Cell> = {}
  for (const [name, f] of Object.entries(fields)) {
    if (f.nullable && i % 2 === 1) {
      out[name] = null
      continue
    }
    const literal = f.expected.startsWith("\"") ? JSON.parse(f.expected.split(" or ")[0]) as string : undefined
    out[name] = literal ?? (f.type === "utf8" ? `${name} ${i} ✓ ខ្មែរ` : f.type === "bool" ? i % 3 === 0 : f.type === "int32" ? i * 7 - 3 : i + 0.25)
  }
  return out
}

describe("every shape of the project round-trips through Parquet", () => {
  const shapes = {
    PairTable,
    QuarantineTable,
    RejectTable,
    TokstatsTable,
    SftTable,
    SynthQuarantineTable,
    GenerationTable,
    JudgePairTable,
    StageAMetricsTable,
    StageBMetricsTable,
    FinetuneMetricsTable,
    BridgeMetricsTable
  }
  for (const [name, shape] of Object.entries(shapes)) {
    it(name, async () => {
      const rows = [0, 1, 2, 3].map((i) => sampleRow(shape.fields, i))
      const file = path.join(dir, `${name}.parquet`)
      await Effect.runPromise(writeTable(file, shape.columns, Stream.fromIterable(rows)))
      expect(await Effect.runPromise(tableColumns(file))).toEqual(shape.columns.map((c) => ({ ...c, nullable: c.nullable === true })))
      const back = await Effect.runPromise(readTableAll(file))
      expect(back.map((r) => shape.read(r))).toEqual(rows.map((r) => Schema.decodeUnknownSync(shape.schema)(r)))
    })
  }
})
