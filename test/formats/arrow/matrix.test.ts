/**
 * Arrow IPC matrices: round-trips across several batches (with and without ids), bit-exact floats, interop with
 * apache-arrow's own reader and writer, and clear errors for bad writes and bad files.
 */
import * as arrow from "apache-arrow"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { ArtifactError } from "../../../src/pipeline/errors.ts"
import { type Matrix, matrixInfo, openMatrixWriter, readMatrix, readMatrixBatches } from "../../../src/formats/arrow/matrix.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-matrix-test-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let counter = 0
const file = (name: string) => path.join(dir, `${counter++}-${name}.arrow`)

const run = <A>(effect: Effect.Effect<A, ArtifactError>): Promise<A> => Effect.runPromise(effect)
const failure = <A>(effect: Effect.Effect<A, ArtifactError>): Promise<ArtifactError> =>
  Effect.runPromise(Effect.flip(effect))

/** Seeded values, with the awkward floats mixed in: -0, NaN, ±Infinity, denormals, extremes. */
const values = (n: number, seed: number): Float32Array => {
  const special = [-0, NaN, Infinity, -Infinity, 1e-45, -3.4028234663852886e38, 1]
  let s = seed >>> 0
  return Float32Array.from({ length: n }, (_, i) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return i % 11 === 5 ? special[Math.floor(i / 11) % special.length] : s / 2 ** 32 - 0.5
  })
}

const bitsEqual = (a: Float32Array, b: Float32Array): boolean => {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

const concat = (parts: ReadonlyArray<Float32Array>): Float32Array => {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Writes batches of the given row counts; returns the expected whole matrix and ids. */
const writeBatches = async (p: string, dim: number, sizes: ReadonlyArray<number>, withIds: boolean) => {
  const writer = await run(openMatrixWriter(p, dim))
  const parts: Array<Float32Array> = []
  const ids: Array<number> = []
  let next = 1000
  for (const [b, rows] of sizes.entries()) {
    const data = values(rows * dim, b + 1)
    const batchIds = Int32Array.from({ length: rows }, () => next++ * (next % 2 === 0 ? 1 : -1))
    parts.push(data.slice())
    ids.push(...batchIds)
    await run(writer.write({ rows, dim, data }, withIds ? batchIds : undefined))
  }
  const count = await run(writer.close)
  return { count, data: concat(parts), ids: Int32Array.from(ids) }
}

describe("matrix round-trips", () => {
  it("reads back several batches with ids as one contiguous matrix, bit for bit", async () => {
    const p = file("ids")
    const dim = 7
    const sizes = [5, 1, 0, 12, 3]
    const expected = await writeBatches(p, dim, sizes, true)
    expect(expected.count).toBe(21)
    const m = await run(readMatrix(p))
    expect(m.rows).toBe(21)
    expect(m.dim).toBe(dim)
    expect(m.data.length).toBe(21 * dim)
    expect(bitsEqual(m.data, expected.data)).toBe(true)
    // The awkward values are really in there (bitsEqual compared them bit for bit).
    expect(m.data.some((v) => Number.isNaN(v))).toBe(true)
    expect(m.data.some((v) => Object.is(v, -0))).toBe(true)
    expect(m.data.some((v) => v === -Infinity)).toBe(true)
    expect(m.ids).toEqual(expected.ids)
    expect(await run(matrixInfo(p))).toEqual({ rows: 21, dim })
  })

  it("streams the stored batches one at a time (empty batches are not stored)", async () => {
    const p = file("batches")
    const dim = 4
    const expected = await writeBatches(p, dim, [3, 0, 2, 4], true)
    const batches = await run(Stream.runCollect(readMatrixBatches(p)))
    expect(batches.map((b) => b.rows)).toEqual([3, 2, 4])
    expect(batches.every((b) => b.dim === dim && b.data.length === b.rows * dim)).toBe(true)
    expect(bitsEqual(concat(batches.map((b) => b.data)), expected.data)).toBe(true)
    expect(Int32Array.from(batches.flatMap((b) => Array.from(b.ids ?? [])))).toEqual(expected.ids)
  })

  it("has no ids when none were written", async () => {
    const p = file("no-ids")
    const expected = await writeBatches(p, 3, [2, 2], false)
    const m = await run(readMatrix(p))
    expect(m.ids).toBeUndefined()
    expect(bitsEqual(m.data, expected.data)).toBe(true)
    const [first] = await run(Stream.runCollect(readMatrixBatches(p)))
    expect(first.ids).toBeUndefined()
  })

  it("writes an empty matrix that still knows its dim", async () => {
    const p = file("empty")
    const writer = await run(openMatrixWriter(p, 16))
    expect(await run(writer.close)).toBe(0)
    expect(await run(matrixInfo(p))).toEqual({ rows: 0, dim: 16 })
    const m = await run(readMatrix(p))
    expect(m.rows).toBe(0)
    expect(m.data.length).toBe(0)
    expect(await run(Stream.runCollect(readMatrixBatches(p)))).toEqual([])
  })

  it("does not keep a reference to the caller's buffer after write returns", async () => {
    const p = file("reuse")
    const dim = 2
    const writer = await run(openMatrixWriter(p, dim))
    const buffer = new Float32Array(4)
    buffer.set([1, 2, 3, 4])
    await run(writer.write({ rows: 2, dim, data: buffer }))
    buffer.set([5, 6, 7, 8]) // reused for the next batch, as a stage would
    await run(writer.write({ rows: 2, dim, data: buffer }))
    await run(writer.close)
    expect(Array.from((await run(readMatrix(p))).data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })
})

describe("interop with apache-arrow", () => {
  it("writes a standard Arrow IPC file: vector FixedSizeList<Float32>[dim] and id Int32", async () => {
    const p = file("arrow-reads")
    const dim = 5
    const expected = await writeBatches(p, dim, [4, 6], true)
    const table = arrow.tableFromIPC(fs.readFileSync(p))
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}:${f.nullable}`)).toEqual([
      "vector:FixedSizeList[5]<Float32>:false",
      "id:Int32:false"
    ])
    expect(table.batches.map((b) => b.numRows)).toEqual([4, 6])
    expect(table.getChild("id")?.toArray()).toEqual(expected.ids)
    const row7 = table.getChild("vector")?.get(7)
    expect(row7 === null || row7 === undefined).toBe(false)
    expect(bitsEqual(Float32Array.from(row7 ?? []), expected.data.subarray(7 * dim, 8 * dim))).toBe(true)
  })

  it("reads an Arrow IPC file written by apache-arrow itself (columns in another order)", async () => {
    const p = file("arrow-writes")
    const dim = 3
    const rows = 10
    const data = values(rows * dim, 9)
    const ids = Int32Array.from({ length: rows }, (_, i) => 100 - i)
    const listType = new arrow.FixedSizeList(dim, new arrow.Field("item", new arrow.Float32(), false))
    const vector = arrow.makeVector(
      arrow.makeData({
        type: listType,
        length: rows,
        nullCount: 0,
        child: arrow.makeData({ type: new arrow.Float32(), length: rows * dim, data })
      })
    )
    const table = new arrow.Table({ id: arrow.makeVector(ids), vector })
    fs.writeFileSync(p, arrow.tableToIPC(table, "file"))
    const m = await run(readMatrix(p))
    expect(m.rows).toBe(rows)
    expect(m.dim).toBe(dim)
    expect(bitsEqual(m.data, data)).toBe(true)
    expect(m.ids).toEqual(ids)
  })
})

describe("errors when writing", () => {
  it("rejects a batch whose dim differs from the matrix's, naming the path and both dims", async () => {
    const p = file("dim-mismatch")
    const writer = await run(openMatrixWriter(p, 8))
    const e = await failure(writer.write({ rows: 2, dim: 4, data: new Float32Array(8) }))
    expect(e._tag).toBe("ArtifactError")
    expect(e.path).toBe(p)
    expect(e.message).toContain(p)
    expect(e.message).toContain("dim 4")
    expect(e.message).toContain("dim 8")
    // The writer is failed from then on.
    expect((await failure(writer.close)).message).toContain("failed")
  })

  const bad: ReadonlyArray<[string, Matrix, Int32Array | undefined, string]> = [
    ["data of the wrong length", { rows: 2, dim: 3, data: new Float32Array(5) }, undefined, "expected rows × dim"],
    ["a fractional row count", { rows: 1.5, dim: 3, data: new Float32Array(3) }, undefined, "non-negative integer"],
    ["too few ids", { rows: 2, dim: 3, data: new Float32Array(6) }, new Int32Array(1), "1 ids for 2 rows"]
  ]
  for (const [label, batch, ids, fragment] of bad) {
    it(`rejects ${label}`, async () => {
      const p = file("bad-batch")
      const writer = await run(openMatrixWriter(p, 3))
      const e = await failure(writer.write(batch, ids))
      expect(e.message).toContain(fragment)
      expect(e.message).toContain(p)
    })
  }

  it("requires ids on every batch or on none", async () => {
    const p = file("ids-mixed")
    const writer = await run(openMatrixWriter(p, 2))
    await run(writer.write({ rows: 1, dim: 2, data: new Float32Array(2) }, Int32Array.of(1)))
    const e = await failure(writer.write({ rows: 1, dim: 2, data: new Float32Array(2) }))
    expect(e.message).toContain("no ids given, but earlier batches had ids")
  })

  it("rejects a non-positive dim and writes after close", async () => {
    expect((await failure(openMatrixWriter(file("dim0"), 0))).message).toContain("dim must be a positive integer")
    const p = file("closed")
    const writer = await run(openMatrixWriter(p, 2))
    await run(writer.close)
    expect((await failure(writer.write({ rows: 1, dim: 2, data: new Float32Array(2) }))).message).toContain(
      "already closed"
    )
  })
})

describe("errors when reading", () => {
  const valid = async () => {
    const p = file("valid")
    await writeBatches(p, 6, [4, 4, 4], true)
    return p
  }

  it("names a missing file", async () => {
    const p = path.join(dir, "missing.arrow")
    for (const e of [await failure(readMatrix(p)), await failure(matrixInfo(p))]) {
      expect(e.path).toBe(p)
      expect(e.message).toBe(`no such file: ${p}`)
    }
  })

  it("says a garbage file is not an Arrow IPC file", async () => {
    const p = file("garbage")
    fs.writeFileSync(p, "definitely not arrow, though long enough to have a head and a tail")
    const e = await failure(readMatrix(p))
    expect(e.message).toContain("not an Arrow IPC file")
    expect(e.message).toContain(p)
  })

  it("says a truncated file is truncated", async () => {
    const p = await valid()
    const bytes = fs.readFileSync(p)
    for (const keep of [bytes.length - 1, Math.floor(bytes.length / 2), 30]) {
      fs.writeFileSync(p, bytes.subarray(0, keep))
      const e = await failure(readMatrix(p))
      expect(e.message).toContain("truncated")
      expect(e.message).toContain(p)
    }
  })

  it("rejects an Arrow file that is not a matrix, naming the offending column", async () => {
    const p = file("not-matrix")
    fs.writeFileSync(p, arrow.tableToIPC(arrow.tableFromArrays({ score: Float64Array.of(1, 2) }), "file"))
    const e = await failure(matrixInfo(p))
    expect(e.message).toContain("not a matrix file")
    expect(e.message).toContain(`"score"`)
  })

  it("rejects an Arrow *stream* (not file) with a clear message", async () => {
    const p = file("stream-format")
    const table = arrow.tableFromArrays({ id: Int32Array.of(1, 2) })
    fs.writeFileSync(p, arrow.tableToIPC(table, "stream"))
    expect((await failure(readMatrix(p))).message).toContain("not an Arrow IPC file")
  })

  it("turns a corrupt footer into an ArtifactError", async () => {
    const p = await valid()
    const bytes = fs.readFileSync(p)
    const footerLength = bytes.readInt32LE(bytes.length - 10)
    bytes.fill(0x7f, bytes.length - 10 - footerLength, bytes.length - 10)
    fs.writeFileSync(p, bytes)
    const e = await failure(readMatrix(p))
    expect(e._tag).toBe("ArtifactError")
    expect(e.message).toContain(p)
  })
})
