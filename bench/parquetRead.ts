/**
 * `npm run bench -- parquetRead [pairs]`: llink's Parquet decoder (`src/formats/parquet/read.ts`) against hyparquet
 * (a maintained pure-JS reader; ZSTD through hyparquet-compressors) on a `pairs`-shaped table of 1,000,000 rows
 * (default; English ≈ 75 characters, Khmer ≈ 90 code points, origin `file:line`, a nullable score), written by llink
 * in row groups of its default size.
 *
 * Each reader runs in a process of its own (peak RSS is its own), three times, reading every row group of the whole
 * table:
 * - `llink raw`: `readTableRaw` (bytes and offsets, what `clean` uses), the text columns' byte lengths summed;
 * - `llink rows`: `readTable` (row objects with strings, what most stages use);
 * - `hyparquet rows`: `parquetRead` with `rowFormat: "object"`, one row group at a time (`onChunk` off), the same
 *   row objects.
 * Prints wall and CPU seconds, rows/s, peak RSS, and the ratios against `llink rows`. Measurements, not verdicts.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Stream } from "effect"
import { readTable, readTableRaw, tableInfo, writeTable } from "../src/formats/parquet/table.ts"
import { PairColumns, type PairRow } from "../src/schemas/rows.ts"

const self = fileURLToPath(import.meta.url)
const mode = process.argv[2]

const KM = "ការ និង នៅ ដែល បាន ជា មាន នេះ ក្នុង របស់ ពី ទៅ មួយ ត្រូវ ថា ដើម្បី ផ្សារ សាលារៀន ទឹក ប្រជាជន គ្រួសារ".split(" ")
const EN = "the a of to and in is that for market school water people family government province village children".split(" ")

/** A seeded xorshift generator (the bench must write the same table every time). */
const rng = (seed: number) => {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296
  }
}

const sentence = (words: ReadonlyArray<string>, chars: number, next: () => number): string => {
  let s = ""
  while (s.length < chars) s += (s === "" ? "" : " ") + words[Math.floor(next() * words.length)]
  return s
}

const makeTable = async (file: string, n: number) => {
  const next = rng(7)
  const rows = function*(): Generator<PairRow> {
    for (let i = 0; i < n; i++) {
      yield {
        id: i,
        english: sentence(EN, 40 + Math.floor(next() * 70), next),
        foreign: sentence(KM, 50 + Math.floor(next() * 80), next),
        origin: `corpus.tsv:${i + 1}`,
        score: i % 3 === 0 ? null : next()
      }
    }
  }
  await Effect.runPromise(writeTable(file, PairColumns, Stream.fromIterable(rows())))
}

const cpuSeconds = () => {
  const u = process.resourceUsage()
  return (u.userCPUTime + u.systemCPUTime) / 1e6
}

/** One reader over the whole file; prints one JSON line. */
const measure = async (which: string, file: string) => {
  const t0 = performance.now()
  const c0 = cpuSeconds()
  let rows = 0
  let chars = 0
  if (which === "llink-raw") {
    await Effect.runPromise(
      readTableRaw(file, ["id", "english", "foreign", "origin", "score"]).pipe(
        Stream.runForEach((b) =>
          Effect.sync(() => {
            const e = b.columns["english"]
            const f = b.columns["foreign"]
            for (let i = 0; i < b.rows; i++) chars += e.offsets![i + 1] - e.offsets![i] + f.offsets![i + 1] - f.offsets![i]
            rows += b.rows
          })
        )
      )
    )
  } else if (which === "llink-rows") {
    await Effect.runPromise(
      readTable(file).pipe(
        Stream.runForEach((r) =>
          Effect.sync(() => {
            chars += String(r["english"]).length + String(r["foreign"]).length
            rows++
          })
        )
      )
    )
  } else {
    const { asyncBufferFromFile, parquetMetadataAsync, parquetRead } = await import("hyparquet")
    const { compressors } = await import("hyparquet-compressors")
    const buffer = await asyncBufferFromFile(file)
    const metadata = await parquetMetadataAsync(buffer)
    let start = 0
    for (const rg of metadata.row_groups) {
      const end = start + Number(rg.num_rows)
      await parquetRead({
        file: buffer,
        metadata,
        compressors,
        rowStart: start,
        rowEnd: end,
        rowFormat: "object",
        onComplete: (data: ReadonlyArray<Record<string, unknown>>) => {
          for (const r of data) {
            chars += String(r["english"]).length + String(r["foreign"]).length
            rows++
          }
        }
      })
      start = end
    }
  }
  const wall = (performance.now() - t0) / 1000
  console.log(JSON.stringify({ which, rows, chars, wall, cpu: cpuSeconds() - c0, rss: process.resourceUsage().maxRSS / 1024 }))
}

if (mode === "--measure") {
  await measure(process.argv[3], process.argv[4])
} else {
  const n = process.argv[2] === undefined ? 1_000_000 : Number(process.argv[2])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-parquet-read-"))
  try {
    const file = path.join(dir, "pairs.parquet")
    const t0 = performance.now()
    await makeTable(file, n)
    const info = await Effect.runPromise(tableInfo(file))
    console.log(`table: ${n.toLocaleString("en")} pairs, ${info.rowGroups.length} row groups, ${(fs.statSync(file).size / 1e6).toFixed(0)} MB (written in ${((performance.now() - t0) / 1000).toFixed(1)} s)`)
    const results = new Map<string, Array<{ rows: number; chars: number; wall: number; cpu: number; rss: number }>>()
    for (let round = 0; round < 3; round++) {
      for (const which of ["llink-raw", "llink-rows", "hyparquet-rows"]) {
        const r = spawnSync(process.execPath, [self, "--measure", which, file], { encoding: "utf8" })
        if (r.status !== 0) throw new Error(`${which} exited ${r.status}: ${r.stderr}`)
        const m = JSON.parse(r.stdout.trim().split("\n").pop()!)
        results.set(which, [...(results.get(which) ?? []), m])
        console.log(`  round ${round + 1} ${which.padEnd(15)} ${m.wall.toFixed(2)} s wall, ${m.cpu.toFixed(2)} s CPU, peak RSS ${m.rss.toFixed(0)} MB (${m.rows.toLocaleString("en")} rows, ${m.chars.toLocaleString("en")} chars)`)
      }
    }
    const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    const summary = (which: string) => {
      const rs = results.get(which)!
      return { wall: median(rs.map((r) => r.wall)), cpu: median(rs.map((r) => r.cpu)), rss: median(rs.map((r) => r.rss)), rows: rs[0].rows, chars: rs[0].chars }
    }
    const base = summary("llink-rows")
    for (const which of ["llink-raw", "llink-rows", "hyparquet-rows"]) {
      const s = summary(which)
      console.log(
        `${which.padEnd(15)} median ${s.wall.toFixed(2)} s wall (${Math.round(s.rows / s.wall).toLocaleString("en")} rows/s), ${s.cpu.toFixed(2)} s CPU, peak RSS ${s.rss.toFixed(0)} MB; ` +
          `vs llink rows: ${(s.wall / base.wall).toFixed(2)}× the time, ${(s.rss / base.rss).toFixed(2)}× the memory`
      )
    }
    const same = summary("llink-raw").rows === base.rows && summary("hyparquet-rows").rows === base.rows && summary("hyparquet-rows").chars === base.chars
    console.log(`every reader saw the same rows (and both row readers the same characters): ${same ? "yes" : "NO"}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
