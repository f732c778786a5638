/**
 * The JavaScript Parquet encoder (`src/formats/parquet/write.ts`) against parquet-wasm: the same rows written by
 * both engines must give byte-identical files, for every column type llink writes (int32, float32, float64, bool,
 * utf8, nullable or not), every page-cutting rule (1 MiB pages, 20,000-row pages, byte-budget sub-batches of large
 * values, dictionary pages and their fallback to PLAIN at 1 MiB), and the statistics edge cases (NaN, ±0, UTF-8
 * truncation of long min/max values with the max incremented).
 */
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type Column, readTableAll, type Row, type TableEngine, writeTable } from "../../../src/formats/parquet/table.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-parquet-write-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let counter = 0

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const writeWith = async (engine: TableEngine, columns: ReadonlyArray<Column>, rows: ReadonlyArray<Row>, rowGroupSize?: number) => {
  const p = path.join(dir, `${counter++}-${engine}.parquet`)
  // rows arrive in uneven chunks, as from a stage
  const chunks: Array<ReadonlyArray<Row>> = []
  for (let i = 0; i < rows.length; ) {
    const n = 1 + ((i * 7919) % 3001)
    chunks.push(rows.slice(i, i + n))
    i += n
  }
  await Effect.runPromise(
    writeTable(p, columns, Stream.fromIterable(chunks).pipe(Stream.flatMap((c) => Stream.fromIterable(c))), {
      engine,
      ...(rowGroupSize === undefined ? {} : { rowGroupSize })
    })
  )
  return p
}

/** Writes `rows` with both engines and expects the same bytes (and the same rows back). */
const same = async (columns: ReadonlyArray<Column>, rows: ReadonlyArray<Row>, rowGroupSize?: number) => {
  const a = await writeWith("wasm", columns, rows, rowGroupSize)
  const b = await writeWith("js", columns, rows, rowGroupSize)
  const ba = fs.readFileSync(a)
  const bb = fs.readFileSync(b)
  if (!ba.equals(bb)) {
    let d = 0
    while (ba[d] === bb[d]) d++
    expect.fail(`files differ at byte ${d} of ${ba.length} / ${bb.length}`)
  }
  expect(await Effect.runPromise(readTableAll(b))).toHaveLength(rows.length)
}

const KHMER = ["សួស្តី​ពិភពលោក", "ព្រះរាជាណាចក្រកម្ពុជា", "ក្រុមហ៊ុន ១២៣៤៥៦៧៨៩០ ៛", "ខ្ញុំ​ស្រឡាញ់​ភាសា​ខ្មែរ 😀👍🏽"]

const text = (rand: () => number, maxLen: number): string => {
  const parts: Array<string> = []
  const n = 1 + Math.floor(rand() * maxLen)
  let len = 0
  while (len < n) {
    const r = rand()
    const piece = r < 0.4 ? KHMER[Math.floor(rand() * KHMER.length)] : r < 0.8 ? "word " : r < 0.9 ? "😀" : String.fromCodePoint(0x20 + Math.floor(rand() * 0x2000))
    parts.push(piece)
    len += piece.length
  }
  return parts.join("")
}

const COLUMNS: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "english", type: "utf8" },
  { name: "foreign", type: "utf8" },
  { name: "origin", type: "utf8" },
  { name: "score", type: "float64", nullable: true }
]

describe("the JavaScript encoder writes parquet-wasm's bytes", () => {
  it("pairs-shaped tables of many sizes (plain and dictionary columns, nulls or none)", async () => {
    const rand = mulberry32(7)
    for (const n of [0, 1, 5, 63, 64, 700, 5000]) {
      const rows: Array<Row> = []
      for (let i = 0; i < n; i++) {
        rows.push({
          id: i,
          english: text(rand, 80),
          foreign: text(rand, 120),
          origin: `corpus.tsv:${i + 1}`,
          score: n === 700 ? (i % 3 === 0 ? null : rand()) : n === 5000 ? rand() * 2 - 1 : null
        })
      }
      await same(COLUMNS, rows, n === 5000 ? 2048 : undefined)
    }
  })

  it("repetitive columns (dictionary pages), nullable int32/utf8 with few, many or all nulls", async () => {
    const rand = mulberry32(11)
    const columns: ReadonlyArray<Column> = [
      { name: "file", type: "utf8" },
      { name: "line", type: "int32" },
      { name: "reason", type: "utf8" },
      { name: "n", type: "int32", nullable: true },
      { name: "t", type: "utf8", nullable: true },
      { name: "x", type: "float64" }
    ]
    for (const [n, nullRate] of [[10, 0], [300, 0.1], [3000, 0.7], [3000, 1], [2500, 0]] as const) {
      const rows: Array<Row> = []
      for (let i = 0; i < n; i++) {
        rows.push({
          file: ["a.tsv", "b.tsv"][i % 2],
          line: i * 3,
          reason: ["wrong-column-count", "empty-foreign", "invalid-utf8"][Math.floor(rand() * 3)],
          n: rand() < nullRate ? null : Math.floor(rand() * 5) - 2,
          t: rand() < nullRate ? null : ["x", "yy", text(rand, 10)][Math.floor(rand() * 3)],
          x: [0, -0, NaN, 1.5, -Infinity, Infinity][i % 6]
        })
      }
      await same(columns, rows)
    }
  })

  it("float statistics: NaN skipped, ±0, all NaN", async () => {
    const columns: ReadonlyArray<Column> = [{ name: "f", type: "float64" }, { name: "g", type: "float64", nullable: true }]
    await same(columns, [{ f: -0, g: 0 }, { f: 0, g: -0 }, { f: NaN, g: null }])
    await same(columns, [{ f: NaN, g: NaN }, { f: NaN, g: null }])
    await same(columns, Array.from({ length: 100 }, (_, i) => ({ f: i === 50 ? -0 : i + 0.5, g: i % 2 === 0 ? null : -i })))
  })

  it("booleans (bit-packed PLAIN, no dictionary) and float32 (dictionary or PLAIN, NaN, ±0), with and without nulls", async () => {
    const rand = mulberry32(21)
    const columns: ReadonlyArray<Column> = [
      { name: "b", type: "bool" },
      { name: "mb", type: "bool", nullable: true },
      { name: "f", type: "float32" },
      { name: "mf", type: "float32", nullable: true }
    ]
    const row = (i: number, k: number): Row => ({
      b: rand() < 0.5,
      mb: i % k === 0 ? null : rand() < 0.3,
      // repetitive at first (dictionary), then mostly distinct
      f: i < 300 ? [0.5, -0, 0, 1e-3][i % 4] : Math.fround(rand() * 1000 - 500),
      mf: i % (k + 1) === 0 ? null : i % 97 === 0 ? NaN : Math.fround(rand())
    })
    for (const [n, k] of [[1, 1], [7, 2], [9, 3], [1000, 5], [3000, 1000]] as const) {
      await same(columns, Array.from({ length: n }, (_, i) => row(i, k)))
    }
    // all true, all false, all null; one row group of 25,000 rows: bool pages cut at 20,000 rows
    await same(columns, Array.from({ length: 50 }, () => ({ b: true, mb: false, f: 1, mf: null })))
    await same(columns, Array.from({ length: 25_000 }, (_, i) => row(i, 7)), 25_000)
  })

  it("long min/max values: truncated to 64 bytes on a UTF-8 boundary, the max incremented (or kept whole)", async () => {
    const columns: ReadonlyArray<Column> = [{ name: "s", type: "utf8" }]
    const long = (prefix: string, fill: string) => prefix + fill.repeat(40)
    const cases: ReadonlyArray<ReadonlyArray<string>> = [
      [long("a", "b"), long("z", "y")],
      [long("", "ក"), long("", "😀")],
      [long("", "\u{10FFFF}"), "0"], // max cannot be incremented: kept whole
      [long("x".repeat(62), "\u{10FFFF}"), long("x".repeat(61), "\uFFFF")],
      [long("", "\u07FF"), long("", "\u007F")],
      [long("\uD7FF".repeat(21), "a"), "!"]
    ]
    for (const values of cases) await same(columns, values.map((s) => ({ s })))
  })

  it("page cuts: 1 MiB pages, byte-budget sub-batches of large values, the 20,000-row page limit", async () => {
    const rand = mulberry32(3)
    const columns: ReadonlyArray<Column> = [{ name: "id", type: "int32" }, { name: "s", type: "utf8" }, { name: "m", type: "utf8", nullable: true }]
    // values of ~2 KB: 1,024 of them overflow one page
    const big: Array<Row> = Array.from({ length: 1500 }, (_, i) => ({ id: i, s: text(rand, 700) + i, m: i % 5 === 0 ? null : text(rand, 900) }))
    // one value larger than a page in the middle
    big[700] = { id: 700, s: "L".repeat(3 << 20), m: "M".repeat(1 << 20) }
    await same(columns, big)
    // one row group of 25,000 short rows: pages cut at 20,000 rows
    const many: Array<Row> = Array.from({ length: 25_000 }, (_, i) => ({ id: i, s: `v${i}`, m: i % 2 === 0 ? `w${i}` : null }))
    await same(columns, many, 25_000)
  })

  it("LLINK_ZSTD_WORKER=1 (pages compressed on the worker thread) writes the bytes of the default (this thread)", async () => {
    const rand = mulberry32(11)
    const rows: Array<Row> = Array.from({ length: 30_000 }, (_, i) => ({ id: i, english: text(rand, 80), foreign: text(rand, 120), origin: `o${i % 7}`, score: i % 9 === 0 ? null : rand() }))
    const here = fs.readFileSync(await writeWith("js", COLUMNS, rows, 8192))
    const saved = process.env["LLINK_ZSTD_WORKER"]
    process.env["LLINK_ZSTD_WORKER"] = "1"
    try {
      const onWorker = fs.readFileSync(await writeWith("js", COLUMNS, rows, 8192))
      expect(onWorker.equals(here)).toBe(true)
    } finally {
      if (saved === undefined) delete process.env["LLINK_ZSTD_WORKER"]
      else process.env["LLINK_ZSTD_WORKER"] = saved
    }
  })

  it("dictionary fallback: a column repetitive at first, then past 1 MiB of distinct values", async () => {
    const columns: ReadonlyArray<Column> = [{ name: "s", type: "utf8" }, { name: "k", type: "int32" }]
    const rows: Array<Row> = Array.from({ length: 16_000 }, (_, i) => ({
      s: i < 1024 ? ["a", "b", "c"][i % 3] : `distinct value number ${i} `.repeat(4),
      k: i < 1024 ? i % 4 : i
    }))
    await same(columns, rows)
  })
})
