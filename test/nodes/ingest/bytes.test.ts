/**
 * The byte-level TSV path (`formats/tsvBytes.ts` → `TableWriter.writeColumns`) writes the same bytes as before it
 * existed. A generated corpus (~3 MB: more than one 1 MiB read chunk and one 16,384-row group) holds the awkward
 * cases: a BOM, CRLF, blank lines, wrong field counts, empty and Unicode-whitespace sides, invalid UTF-8, a literal
 * U+FFFD, astral characters, characters cut by chunk boundaries, a line longer than a chunk, no final newline.
 * - `GOLDEN`: sha256 of `pairs.parquet` and `quarantine.parquet` (and of clean's outputs on them) as written by
 *   the code before the byte path (commit f0bec5c, string reader and row writer); this corpus has no C0 control
 *   character, so the `control-char` quarantine does not change it.
 * - With control characters added, the byte path and the string reader (`readCorpus` + `write`) agree byte for
 *   byte.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { clean } from "../../../src/nodes/clean/stage.ts"
import { CleanConfig } from "../../../src/nodes/clean/params.ts"
import { readCorpus, readerOptions, resolveCorpus } from "../../../src/corpus/corpus.ts"
import { ingest } from "../../../src/nodes/ingest/stage.ts"
import { openTableWriter } from "../../../src/formats/parquet/table.ts"
import { PairColumns, QuarantineColumns } from "../../../src/schemas/rows.ts"
import { corpusParams, runStage, tempDir } from "../../support/dataStages.ts"

const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const EN = "the a of market school water people family Cambodia Phnom Penh rice house work students teacher".split(" ")
const KM = "ការ និង នៅ ដែល បាន ជា មាន នេះ ក្នុង ផ្សារ សាលារៀន ទឹក ប្រជាជន គ្រួសារ កម្ពុជា ភ្នំពេញ".split(" ")
const ODD = ["😀", "𝔸", "e\u0301", "\u200b", "\u00a0", "\u3000", "\ufeff", "ş", "中文"]

/** The corpus as bytes; `controls` adds lines holding C0 control characters. */
const corpus = (lines: number, controls: boolean): Buffer => {
  const rand = mulberry32(7)
  const pick = (words: ReadonlyArray<string>, n: number, sep: string) =>
    Array.from({ length: n }, () => (rand() < 0.03 ? ODD[Math.floor(rand() * ODD.length)] : words[Math.floor(rand() * words.length)])).join(sep)
  const parts: Array<Buffer> = [Buffer.from([0xef, 0xbb, 0xbf])]
  for (let i = 0; i < lines; i++) {
    const r = rand()
    const en = pick(EN, 3 + Math.floor(rand() * 12), " ")
    const km = pick(KM, 3 + Math.floor(rand() * 14), rand() < 0.5 ? "" : " ")
    let line: Buffer
    if (r < 0.004) line = Buffer.from("")
    else if (r < 0.008) line = Buffer.from(en)
    else if (r < 0.012) line = Buffer.from(`${en}\t${km}\textra`)
    else if (r < 0.016) line = Buffer.from(`  \t${km}`)
    else if (r < 0.02) line = Buffer.from(`${en}\t\u3000\u00a0 `)
    else if (r < 0.024) line = Buffer.concat([Buffer.from(`${en}\t`), Buffer.from([0xe1, 0x9e]), Buffer.from(km)])
    else if (r < 0.026) line = Buffer.from(`${en}\t${km}\ufffd`)
    else if (r < 0.028) line = Buffer.concat([Buffer.from(en), Buffer.from([0xc0, 0xaf]), Buffer.from(`\t${km}`)])
    else if (r < 0.03 && controls) line = Buffer.from(`${en}\u0000\t${km}`)
    else if (r < 0.032 && controls) line = Buffer.from(`${en}\t${km}\u001b[0m`)
    else if (r < 0.034 && controls) line = Buffer.from(`${en}\r${en}\t${km}`)
    else if (r < 0.04) line = Buffer.from(`${en}\t${km}\r`)
    else if (r < 0.05) line = Buffer.from(`Same sentence.\tប្រយោគដដែល។`) // duplicates for clean
    else line = Buffer.from(`${en}\t${km}`)
    parts.push(line, Buffer.from(i === lines - 1 ? "" : "\n"))
    if (i === 20_000) parts.push(Buffer.from(`${"long ".repeat(300_000)}\t${"វែង".repeat(1000)}\n`)) // 1.5 MB line
  }
  return Buffer.concat(parts)
}

/** sha256 of each output, computed with commit f0bec5c's ingest (string reader) and clean on `corpus(40_000, false)`. */
const GOLDEN = {
  pairs: "c2f2b195d98181ebeaa635859c1d36233408395e334096cc93842f71e89b648a",
  quarantine: "0f06fb2b7339d6884cf90c724c37fad588e8ff0ba7356ca976ac1ae1154b918f",
  clean: "8e22ef911acd43f2b009af3317d65ff5fcb699676cbb08bacfba87697f1efeca",
  rejects: "2dfeebc543935ef2d7db717b887868674518a92fe97d9f015eb4c8b131ec11ee"
}

describe("ingest: the byte-level TSV path", () => {
  it("writes the bytes the string reader and row writer wrote (golden digests), and clean's outputs on them", async () => {
    const dir = tempDir("bytes-golden")
    const file = path.join(dir, "corpus.tsv")
    fs.writeFileSync(file, corpus(40_000, false))
    const ran = await runStage(ingest, corpusParams({ path: file }), {}, dir)
    expect(ran.outcome.rows["pairs"]).toBeGreaterThan(16_384)
    const cleaned = await runStage(clean, Schema.decodeUnknownSync(CleanConfig)({}), { pairs: ran.outputs["pairs"] }, dir)
    expect({
      pairs: sha(ran.outputs["pairs"]),
      quarantine: sha(ran.outputs["ingest.quarantine"]),
      clean: sha(cleaned.outputs["clean"]),
      rejects: sha(cleaned.outputs["clean.rejects"])
    }).toEqual(GOLDEN)
  })

  it("with control characters too, equals the string reader's output byte for byte", async () => {
    const dir = tempDir("bytes-strings")
    const file = path.join(dir, "corpus.tsv")
    fs.writeFileSync(file, corpus(40_000, true))
    const params = corpusParams({ path: file })
    const ran = await runStage(ingest, params, {}, dir)
    expect(ran.outcome.metrics?.byReason).toMatchObject({ "control-char": expect.any(Number) })

    const pairsFile = path.join(dir, "strings.pairs.parquet")
    const badFile = path.join(dir, "strings.quarantine.parquet")
    await Effect.runPromise(
      Effect.gen(function*() {
        const plan = yield* resolveCorpus(params)
        const pairs = yield* openTableWriter(pairsFile, PairColumns)
        const bad = yield* openTableWriter(badFile, QuarantineColumns)
        let id = 0
        yield* readCorpus(plan, readerOptions(params)).pipe(
          Stream.runForEach((batch) =>
            Effect.gen(function*() {
              for (const p of batch.pairs) p.id = id++
              if (batch.pairs.length > 0) yield* pairs.write(batch.pairs)
              if (batch.bad.length > 0) yield* bad.write(batch.bad.map((q) => ({ file: q.file, line: q.line, reason: q.reason, raw: q.raw })))
            })
          )
        )
        yield* pairs.close
        yield* bad.close
      })
    )
    expect(sha(ran.outputs["pairs"])).toBe(sha(pairsFile))
    expect(sha(ran.outputs["ingest.quarantine"])).toBe(sha(badFile))
  })
})
