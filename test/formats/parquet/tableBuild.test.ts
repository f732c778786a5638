/**
 * The writer's direct Arrow building: utf8 bytes go into per-column buffers reused (and grown) across row groups,
 * and mostly-distinct columns skip dictionary encoding. Many rows of mixed Khmer/emoji text with nulls, several
 * row groups, a string far longer than the rest mid-table (forcing a buffer to grow while a group is built) must
 * all read back identical, row for row.
 */
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import {
  type Column,
  openTableWriter,
  readTableAll,
  type Row,
  tableInfo,
  writeTable
} from "../../../src/formats/parquet/table.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-table-build-test-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const PIECES = [
  "សួស្តី​ពិភពលោក",
  "ព្រះរាជាណាចក្រកម្ពុជា",
  "១២៣៤៥ ៛",
  "ខ្ញុំ​ស្រឡាញ់​ភាសា​ខ្មែរ",
  "😀👍🏽",
  "👨‍👩‍👧‍👦",
  "🇰🇭",
  "\u{10FFFF}",
  "𝕂𝕙𝕞𝕖𝕣",
  "é",
  "the market",
  "a\u0000b",
  "\t\n\"\\",
  ""
]

const COLUMNS: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "text", type: "utf8" },
  { name: "maybeText", type: "utf8", nullable: true },
  { name: "label", type: "utf8", nullable: true },
  { name: "score", type: "float64", nullable: true },
  { name: "f32", type: "float32" },
  { name: "flag", type: "bool", nullable: true },
  { name: "maybeInt", type: "int32", nullable: true }
]

const makeRows = (n: number): Array<Row> => {
  const rand = mulberry32(7)
  const text = (k: number) => {
    let s = ""
    for (let j = 0; j < k; j++) s += PIECES[Math.floor(rand() * PIECES.length)]
    return s
  }
  return Array.from({ length: n }, (_, i): Row => ({
    id: i,
    // row 2500 is ~100× longer than the rest: its buffer must grow mid-group, after earlier groups reused it
    text: i === 2500 ? text(4000) : `${i} ${text(1 + Math.floor(rand() * 8))}`,
    maybeText: rand() < 0.3 ? null : text(Math.floor(rand() * 6)),
    label: rand() < 0.1 ? null : ["ក", "b", "😀", ""][i % 4], // repetitive: keeps its dictionary
    score: rand() < 0.5 ? null : rand() * 100 - 50,
    f32: Math.fround(rand()),
    flag: rand() < 0.2 ? null : rand() < 0.5,
    maybeInt: rand() < 0.4 ? null : Math.floor(rand() * 2 ** 32) - 2 ** 31
  }))
}

describe("direct Arrow building", () => {
  it("round-trips many rows of Khmer/emoji text with nulls across reused, grown buffers", async () => {
    const rows = makeRows(6000)
    const p = path.join(dir, "many.parquet")
    const n = await Effect.runPromise(writeTable(p, COLUMNS, Stream.fromIterable(rows), { rowGroupSize: 700 }))
    expect(n).toBe(6000)
    const back = await Effect.runPromise(readTableAll(p))
    expect(back.length).toBe(rows.length)
    for (let i = 0; i < rows.length; i++) expect(back[i], `row ${i}`).toEqual(rows[i])
    const info = await Effect.runPromise(tableInfo(p))
    expect(info.rowGroups.map((g) => g.rows)).toEqual([...Array(8).fill(700), 400])
    for (const g of info.rowGroups) expect(new Set(g.codecs)).toEqual(new Set(["ZSTD"]))
  })

  it("gives the same rows whatever the write chunking and row group size", async () => {
    const rows = makeRows(3000)
    const p1 = path.join(dir, "chunked.parquet")
    const p2 = path.join(dir, "whole.parquet")
    await Effect.runPromise(
      Effect.gen(function*() {
        const w = yield* openTableWriter(p1, COLUMNS, { rowGroupSize: 257 })
        let i = 0
        for (const size of [1, 2, 3, 500, 999, 7]) {
          yield* w.write(rows.slice(i, i + size))
          i += size
        }
        yield* w.write(rows.slice(i))
        expect(yield* w.close).toBe(3000)
      })
    )
    await Effect.runPromise(writeTable(p2, COLUMNS, Stream.fromIterable(rows)))
    const a = await Effect.runPromise(readTableAll(p1))
    const b = await Effect.runPromise(readTableAll(p2))
    expect(a).toEqual(rows)
    expect(b).toEqual(rows)
  })

  it("still rejects a lone surrogate after earlier groups filled the reused buffers", async () => {
    const rows = makeRows(1000)
    const bad = [...rows.slice(0, 900), { ...rows[900], text: "ok \uD800 broken" }, ...rows.slice(901)]
    const p = path.join(dir, "surrogate.parquet")
    const err = await Effect.runPromise(
      Effect.flip(writeTable(p, COLUMNS, Stream.fromIterable(bad), { rowGroupSize: 300 }))
    )
    expect(err.message).toContain("row 900")
    expect(err.message).toContain("lone surrogate")
  })
})
