/**
 * The Thrift-compact footer surgery under table.ts: offsets survive shifting (also past 4 GiB), a one-row-group
 * file cut out of a larger one decodes with parquet-wasm, and mutated footers fail only with ParquetFooterError.
 */
import * as arrow from "apache-arrow"
import * as pq from "parquet-wasm"
import { describe, expect, it } from "vitest"
import {
  composeFooter,
  parseFooter,
  ParquetFooterError,
  rowGroupFile,
  schemaOnlyFile,
  shiftRowGroup,
  splitFile
} from "../../../src/formats/parquet/footer.ts"

/** A 3-row-group file written by parquet-wasm in one piece (ZSTD, dictionary pages, page indexes). */
const sample = (() => {
  const n = 300
  const t = new arrow.Table({
    id: arrow.makeVector(Int32Array.from({ length: n }, (_, i) => i)),
    text: arrow.vectorFromArray(
      Array.from({ length: n }, (_, i) => `ជួរ ${i % 17} row ${i}`),
      new arrow.Utf8()
    )
  })
  const props = new pq.WriterPropertiesBuilder().setCompression(pq.Compression.ZSTD).setMaxRowGroupSize(100).build()
  return pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(t, "stream")), props)
})()

const decode = (file: Uint8Array) => arrow.tableFromIPC(pq.readParquet(file).intoIPCStream())

describe("parquet footer", () => {
  it("parses row counts, codecs and byte ranges", () => {
    const { footer, dataEnd } = splitFile(sample)
    expect(footer.rows).toBe(300)
    expect(footer.rowGroups.map((g) => g.rows)).toEqual([100, 100, 100])
    for (const g of footer.rowGroups) expect(g.columns.map((c) => c.codec)).toEqual([6, 6]) // ZSTD
    // Row groups are contiguous, in order, inside the data section.
    expect(footer.rowGroups[0].start).toBe(4)
    expect(footer.rowGroups[1].start).toBe(footer.rowGroups[0].end)
    expect(footer.rowGroups[2].end).toBeLessThanOrEqual(dataEnd)
  })

  it("cuts out one row group as a complete file that parquet-wasm decodes", () => {
    const { footer } = splitFile(sample)
    const rg = footer.rowGroups[1]
    const { file, dataAt } = rowGroupFile(footer, 1)
    file.set(sample.subarray(rg.start, rg.end), dataAt)
    const t = decode(file)
    expect(t.numRows).toBe(100)
    expect(t.getChild("id")?.get(0)).toBe(100)
    expect(t.getChild("text")?.get(99)).toBe(`ជួរ ${199 % 17} row 199`)
  })

  it("makes a schema-only file", () => {
    const { footer } = splitFile(sample)
    const schema = decode(schemaOnlyFile(footer)).schema
    expect(schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual(["id:Int32", "text:Utf8"])
  })

  it("shifts every offset by the same amount, also beyond 32 bits", () => {
    const { footer } = splitFile(sample)
    const shift = 5_000_000_000
    const moved = footer.rowGroups.map((g) => shiftRowGroup(g.raw, shift))
    const again = parseFooter(composeFooter(footer, footer.rows, moved))
    expect(again.rows).toBe(300)
    for (let i = 0; i < 3; i++) {
      expect(again.rowGroups[i].start).toBe(footer.rowGroups[i].start + shift)
      expect(again.rowGroups[i].end).toBe(footer.rowGroups[i].end + shift)
      expect(again.rowGroups[i].columns.map((c) => c.compressedBytes)).toEqual(
        footer.rowGroups[i].columns.map((c) => c.compressedBytes)
      )
    }
    // Shifting back restores the original ranges.
    const back = parseFooter(composeFooter(footer, footer.rows, again.rowGroups.map((g) => shiftRowGroup(g.raw, -shift))))
    expect(back.rowGroups.map((g) => [g.start, g.end])).toEqual(footer.rowGroups.map((g) => [g.start, g.end]))
  })

  it("fails only with ParquetFooterError on truncated or mutated footers", () => {
    const { footer } = splitFile(sample)
    const raw = footer.raw
    let seed = 12345
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed / 2 ** 32
    }
    let failures = 0
    for (let trial = 0; trial < 400; trial++) {
      const mutated = trial < 100 ? raw.slice(0, Math.floor(rand() * raw.length)) : raw.slice()
      if (trial >= 100) for (let k = 0; k < 1 + (trial % 4); k++) mutated[Math.floor(rand() * raw.length)] = rand() * 256
      try {
        parseFooter(mutated)
      } catch (e) {
        if (!(e instanceof ParquetFooterError)) throw e
        failures++
      }
    }
    expect(failures).toBeGreaterThan(100) // every truncation fails; many mutations do
  })
})
