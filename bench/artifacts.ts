/**
 * Artifact IO throughput: `node bench/artifacts.ts [rows=1000000] [matrixRows=20000]`.
 *
 * Table: a 4-column pairs table (id int32, english utf8 ~80 chars, foreign utf8 ~120 Khmer chars, origin utf8)
 * written with `openTableWriter` (rows generated batch by batch, never all in memory; generation is timed apart)
 * and read back with `readTableBatches`, all columns (every string touched) and an (id, english) subset.
 * Matrix: rows × 2048 float32 written in 1024-row batches with ids, read whole (`readMatrix`) and batch by batch
 * (`readMatrixBatches`).
 *
 * Each phase runs in its own process, so the peak RSS printed (`process.resourceUsage().maxRSS`) is that phase's
 * alone; wasm memory is parquet-wasm's linear memory at the end of the phase (it grows, never shrinks). MB/s counts
 * the in-memory payload: UTF-8 text + 4-byte ids for tables, raw float and id bytes for matrices. Fixed seeds.
 */
import { Effect, Stream } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as pq from "parquet-wasm"
import { openMatrixWriter, readMatrix, readMatrixBatches } from "../src/formats/arrow/matrix.ts"
import { type Column, openTableWriter, readTableBatches, type Row, tableInfo } from "../src/formats/parquet/table.ts"

const DIM = 2048
const GEN_BATCH = 8192
const MATRIX_BATCH = 1024

const PHASES = [
  "table write",
  "table read (all columns)",
  "table read (id, english)",
  "matrix write",
  "matrix read (readMatrix)",
  "matrix read (readMatrixBatches)"
] as const
type Phase = (typeof PHASES)[number]

/** xorshift32: small, fast, seeded. Returns a float in [0, 1). */
const rng = (seed: number) => {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 4294967296
  }
}

const ENGLISH = (
  "the of and to in is was for on that with as by at from his her an were are which this be or has had not " +
  "but they one their new first also after two who been its more other when year time people school city " +
  "river book water village house family world government language country market children history"
).split(" ")
const ORIGINS = ["opus-ccaligned", "opus-wikimatrix", "flores", "tatoeba", "gnome"]
/** 4096 Khmer "words": 1–3 syllables of consonant (+ coeng subscript) + dependent vowel. */
const KHMER_WORDS = (() => {
  const next = rng(99)
  const pick = <T>(xs: ReadonlyArray<T>) => xs[Math.floor(next() * xs.length)]
  const consonants = Array.from({ length: 35 }, (_, i) => String.fromCodePoint(0x1780 + i))
  const vowels = ["", "\u17b6", "\u17b7", "\u17b8", "\u17bb", "\u17bc", "\u17c1", "\u17c2", "\u17c4", "\u17c6"]
  return Array.from({ length: 4096 }, () => {
    let w = ""
    for (let k = 1 + Math.floor(next() * 3); k > 0; k--) {
      w += pick(consonants) + (next() < 0.2 ? "\u17d2" + pick(consonants) : "") + pick(vowels)
    }
    return w
  })
})()

const sentence = (next: () => number, words: ReadonlyArray<string>, target: number, sep: string): string => {
  const parts: Array<string> = []
  let length = 0
  while (length < target) {
    const w = words[Math.floor(next() * words.length)]
    parts.push(w)
    length += w.length + 1
  }
  return parts.join(sep)
}

const makeRows = (next: () => number, start: number, n: number): Array<Row> => {
  const rows: Array<Row> = []
  for (let i = 0; i < n; i++) {
    rows.push({
      id: start + i,
      english: sentence(next, ENGLISH, 70 + Math.floor(next() * 20), " "),
      foreign: sentence(next, KHMER_WORDS, 110 + Math.floor(next() * 20), "\u200b"),
      origin: ORIGINS[Math.floor(next() * ORIGINS.length)]
    })
  }
  return rows
}

const payloadBytes = (rows: ReadonlyArray<Row>): number => {
  let n = 0
  for (const r of rows) {
    n += 4
    for (const v of [r.english, r.foreign, r.origin]) if (typeof v === "string") n += Buffer.byteLength(v, "utf8")
  }
  return n
}

const report = (label: string, rows: number, bytes: number, seconds: number, extra = "") =>
  console.log(
    `${label.padEnd(32)} ${(rows / seconds / 1000).toFixed(0).padStart(6)} k rows/s ` +
      `${(bytes / seconds / 1e6).toFixed(0).padStart(6)} MB/s ${seconds.toFixed(2).padStart(6)} s   ` +
      `peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0).padStart(4)} MB, ` +
      `wasm ${(pq.wasmMemory().buffer.byteLength / 1048576).toFixed(0).padStart(3)} MB${extra}`
  )

const columns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "english", type: "utf8" },
  { name: "foreign", type: "utf8" },
  { name: "origin", type: "utf8" }
]

const runPhase = (phase: Phase, dir: string, rows: number, matrixRows: number) =>
  Effect.gen(function*() {
    const tablePath = path.join(dir, "pairs.parquet")
    const matrixPath = path.join(dir, "vectors.arrow")
    const bytesFile = path.join(dir, "payload-bytes")
    const matrixBytes = matrixRows * (DIM + 1) * 4
    const t0 = performance.now()
    const seconds = () => (performance.now() - t0) / 1000
    switch (phase) {
      case "table write": {
        const next = rng(42)
        let genSeconds = 0
        let bytes = 0
        const writer = yield* openTableWriter(tablePath, columns)
        for (let start = 0; start < rows; start += GEN_BATCH) {
          const g = performance.now()
          const batch = makeRows(next, start, Math.min(GEN_BATCH, rows - start))
          bytes += payloadBytes(batch)
          genSeconds += (performance.now() - g) / 1000
          yield* writer.write(batch)
        }
        const written = yield* writer.close
        const elapsed = seconds() - genSeconds
        fs.writeFileSync(bytesFile, String(bytes))
        const info = yield* tableInfo(tablePath)
        report(
          phase,
          written,
          bytes,
          elapsed,
          `\n${"".padEnd(33)}${(bytes / 1e6).toFixed(0)} MB payload → ${(info.bytes / 1e6).toFixed(1)} MB file ` +
            `(${info.rowGroups.length} row groups, ${info.rowGroups[0]?.codecs.join("/")}); generating rows: ` +
            `${genSeconds.toFixed(1)} s, not counted`
        )
        return
      }
      case "table read (all columns)":
      case "table read (id, english)": {
        const bytes = Number(fs.readFileSync(bytesFile, "utf8"))
        const subset = phase === "table read (id, english)" ? { columns: ["id", "english"] } : undefined
        let n = 0
        let chars = 0
        yield* Stream.runForEach(readTableBatches(tablePath, subset), (batch) =>
          Effect.sync(() => {
            n += batch.length
            for (const r of batch) {
              const e = r.english
              const f = r.foreign
              chars += (typeof e === "string" ? e.length : 0) + (typeof f === "string" ? f.length : 0)
            }
          })
        )
        if (n !== rows || chars === 0) throw new Error(`read back ${n} rows`)
        report(phase, n, bytes, seconds())
        return
      }
      case "matrix write": {
        const next = rng(7)
        const data = Float32Array.from({ length: MATRIX_BATCH * DIM }, () => next() - 0.5)
        const writer = yield* openMatrixWriter(matrixPath, DIM)
        for (let start = 0; start < matrixRows; start += MATRIX_BATCH) {
          const n = Math.min(MATRIX_BATCH, matrixRows - start)
          data[0] = start
          const ids = Int32Array.from({ length: n }, (_, i) => start + i)
          yield* writer.write({ rows: n, dim: DIM, data: data.subarray(0, n * DIM) }, ids)
        }
        report(phase, yield* writer.close, matrixBytes, seconds())
        return
      }
      case "matrix read (readMatrix)": {
        const m = yield* readMatrix(matrixPath)
        if (m.rows !== matrixRows || m.data[0] !== 0 || m.ids?.[matrixRows - 1] !== matrixRows - 1) {
          throw new Error("matrix read back wrong")
        }
        report(phase, m.rows, matrixBytes, seconds())
        return
      }
      case "matrix read (readMatrixBatches)": {
        let n = 0
        yield* Stream.runForEach(readMatrixBatches(matrixPath), (b) =>
          Effect.sync(() => {
            n += b.rows
          })
        )
        report(phase, n, matrixBytes, seconds())
        return
      }
    }
  })

const [flag, phaseArg, dirArg, rowsArg, matrixRowsArg] = process.argv.slice(2)
if (flag === "--phase") {
  const phase = PHASES.find((p) => p === phaseArg)
  if (phase === undefined) throw new Error(`unknown phase ${phaseArg}`)
  Effect.runPromise(runPhase(phase, dirArg, Number(rowsArg), Number(matrixRowsArg))).catch((e: unknown) => {
    console.error(e)
    process.exitCode = 1
  })
} else {
  const rows = Number(flag ?? 1_000_000)
  const matrixRows = Number(phaseArg ?? 20_000)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-artifacts-"))
  console.log(`pairs table ${rows} rows; matrix ${matrixRows} × ${DIM} float32; one process per phase`)
  try {
    for (const phase of PHASES) {
      const r = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), "--phase", phase, dir, String(rows), String(matrixRows)],
        { stdio: "inherit" }
      )
      if (r.status !== 0) {
        process.exitCode = 1
        break
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
