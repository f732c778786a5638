/**
 * Row tables as Parquet files (ZSTD), written and read one row group at a time so memory stays bounded by a row
 * group, whatever the table's size.
 *
 * Columns are typed (`utf8`, `int32`, `float32`, `float64`, `bool`), each nullable or not; rows are plain records
 * of cells. Strings round-trip exactly: any well-formed UTF-16 string (Khmer, emoji, surrogate pairs) is stored as
 * UTF-8 and read back identical; a string holding a lone surrogate cannot be stored as UTF-8 and is rejected with
 * the column and row named, never silently replaced.
 *
 * How the bytes are made: each row group is encoded in JavaScript (`write.ts`: pages laid out here, compressed by
 * Node's native zstd) into exactly the bytes parquet-wasm would write, appended to the output file, and its row group
 * metadata kept; `close` writes the footer for all row groups (its template, the schema and `ARROW:schema`, comes
 * from parquet-wasm writing an empty table; see `footer.ts`), then fsyncs. `LLINK_PARQUET_ENGINE=wasm` encodes each
 * row group with parquet-wasm instead (the test oracle). Reading parses the footer here, and for each row group
 * reads just its bytes and decodes them in JavaScript (`read.ts`); a row group it cannot decode (a file llink did
 * not write: another codec, encoding or page version) goes through parquet-wasm's synchronous `readParquet`. A
 * corrupt page is an `ArtifactError`, never a wasm panic. Files are standard Parquet: DuckDB, pandas, Polars and
 * parquet-wasm read them back identically (`test/formats/interop.test.ts`).
 *
 * Gotchas:
 * - `readTable`'s `columns` selects which cells the rows carry, and only those columns are decompressed and decoded
 *   (in a row group that goes through parquet-wasm, the whole row group is).
 * - Write to one `TableWriter` from one fiber: concurrent `write`s are serialised by a lock, but their rows would
 *   interleave in whatever order the fibers arrive. A write is uninterruptible once it has started flushing.
 * - If a stage fails before `close`, the partial file is left for the runner to discard; the writer refuses
 *   further calls. `writeTable` also closes the file handle on failure or interruption; with `openTableWriter`
 *   a writer abandoned without `close` keeps its handle until the process exits.
 * - Cells absent from a row are `null` for nullable columns and an error otherwise; keys not in the schema are
 *   ignored.
 */
import * as arrow from "apache-arrow"
import { Effect, Exit, Semaphore, Stream } from "effect"
import { isUtf8 } from "node:buffer"
import * as fs from "node:fs"
import type { FileHandle } from "node:fs/promises"
import * as pq from "parquet-wasm"
import { artifactError, openRegularFile, readFully, writeFully } from "../file.ts"
import { ArtifactError } from "../errors.ts"
import * as Footer from "./footer.ts"
import * as Fast from "./write.ts"
import { type DecodedColumn, decodeRowGroupJs } from "./read.ts"
import { describeError } from "../../errors/describe.ts"

export type ColumnType = "utf8" | "int32" | "float32" | "float64" | "bool"
export interface Column {
  readonly name: string
  readonly type: ColumnType
  readonly nullable?: boolean
}
export type Cell = string | number | boolean | null
export type Row = Readonly<Record<string, Cell>>
export interface TableWriter {
  /** Buffers rows and flushes a row group (record batch) every `rowGroupSize` rows. */
  readonly write: (rows: ReadonlyArray<Row>) => Effect.Effect<void, ArtifactError>
  /** The same as `write`, with the cells given column by column (see `ColumnBatch`). */
  readonly writeColumns: (batch: ColumnBatch) => Effect.Effect<void, ArtifactError>
  /** Flushes, writes the footer, fsyncs; returns the row count. */
  readonly close: Effect.Effect<number, ArtifactError>
  /** Closes the file handle without a footer (after a failure elsewhere, e.g. the reader's): the partial file stays
   *  for the runner to discard; later calls fail. A no-op once closed or failed. */
  readonly abort: Effect.Effect<void>
}

/**
 * Rows per row group when the caller does not say: ~6 MB of text per group for typical sentence pairs. Each
 * group is held several times over while it is encoded (JS rows, Arrow buffers, the IPC copy, parquet-wasm's
 * memory, which never shrinks), so this bounds peak memory; at 65,536 ingest peaked ~200 MB higher, no faster.
 */
export const DEFAULT_ROW_GROUP_SIZE = 16_384

const COLUMN_TYPES: ReadonlyArray<ColumnType> = ["utf8", "int32", "float32", "float64", "bool"]

// ---- small helpers -----------------------------------------------------------------------------------------


/** Thrown by the pure row ↔ Arrow conversions; turned into an `ArtifactError` at the Effect boundary. */
class CellError extends Error {
  override readonly name = "CellError"
}

/** Writes `parts` back to back from `position` (one vectored write when it goes through whole). */
const writeParts = async (fh: FileHandle, parts: ReadonlyArray<Uint8Array>, position: number) => {
  const total = parts.reduce((n, p) => n + p.length, 0)
  const { bytesWritten } = await fh.writev(parts as Array<Uint8Array>, position)
  if (bytesWritten === total) return
  // a short vectored write: finish part by part from where it stopped
  let offset = 0
  for (const part of parts) {
    const end = offset + part.length
    if (end > bytesWritten) {
      const from = Math.max(0, bytesWritten - offset)
      await writeFully(fh, [part.subarray(from)], position + offset + from)
    }
    offset = end
  }
}

// ---- rows → Arrow ------------------------------------------------------------------------------------------

/** A lone surrogate: with the `u` flag a well-formed pair is one code point, so only unpaired halves match. */

const arrowType = (type: ColumnType): arrow.DataType => {
  switch (type) {
    case "utf8":
      return new arrow.Utf8()
    case "int32":
      return new arrow.Int32()
    case "float32":
      return new arrow.Float32()
    case "float64":
      return new arrow.Float64()
    case "bool":
      return new arrow.Bool()
  }
}

const arrowSchema = (columns: ReadonlyArray<Column>): arrow.Schema =>
  new arrow.Schema(columns.map((c) => new arrow.Field(c.name, arrowType(c.type), c.nullable === true)))

/**
 * Reusable text buffers of one writer, by column name: a batch's utf8 data is a view into them, valid until the
 * next batch is built (each batch is encoded synchronously right after it is built, so this is safe).
 */
type Scratch = Map<string, Buffer>

/**
 * Builds one column's Arrow data from `rows`; `firstRow` is the table row number of `rows[0]` (for messages).
 * With `scratch`, utf8 bytes are written into (and the buffers kept in) it instead of fresh buffers.
 */
const buildColumn = (column: Column, rows: ReadonlyArray<Row>, firstRow: number, scratch?: Scratch): arrow.Data => {
  const n = rows.length
  const nullable = column.nullable === true
  const validity = new Uint8Array((n + 7) >> 3)
  let nullCount = 0
  const bad = (i: number, value: unknown, expected: string): CellError =>
    new CellError(
      `row ${firstRow + i}, column "${column.name}" (${column.type}${nullable ? ", nullable" : ""}): ` +
        `expected ${expected}, got ${value === undefined ? "no value" : JSON.stringify(value)}`
    )
  /** Marks row i valid, or counts it null (failing if the column is not nullable); returns whether it is valid. */
  const present = (i: number, value: Cell | undefined): boolean => {
    if (value === null || value === undefined) {
      if (!nullable) throw bad(i, value, "a value (column is not nullable)")
      nullCount++
      return false
    }
    validity[i >> 3] |= 1 << (i & 7)
    return true
  }
  const nulls = (): { nullCount: number; nullBitmap?: Uint8Array } =>
    nullCount === 0 ? { nullCount: 0 } : { nullCount, nullBitmap: validity }

  switch (column.type) {
    case "utf8": {
      // One pass: each string is written straight after the previous one into a buffer kept between row groups
      // (`scratch`), grown whenever the next string might not fit (a UTF-16 unit is at most 3 UTF-8 bytes).
      let data = scratch?.get(column.name) ?? Buffer.allocUnsafeSlow(1 << 16)
      const valueOffsets = new Int32Array(n + 1)
      let pos = 0
      for (let i = 0; i < n; i++) {
        const v = rows[i][column.name]
        if (present(i, v)) {
          if (typeof v !== "string") throw bad(i, v, "a string")
          if (!v.isWellFormed()) throw bad(i, v, "well-formed UTF-16 (found a lone surrogate)")
          const need = pos + 3 * v.length
          if (need > data.length) {
            const bigger = Buffer.allocUnsafeSlow(Math.max(2 * data.length, need))
            data.copy(bigger, 0, 0, pos)
            data = bigger
          }
          pos += data.write(v, pos, "utf8")
          if (pos > 0x7fffffff) {
            throw new CellError(
              `column "${column.name}": rows ${firstRow}.. hold over 2 GiB of text; use a smaller rowGroupSize`
            )
          }
        }
        valueOffsets[i + 1] = pos
      }
      // keep the buffer for the next group unless one outsized string left it far larger than a group needs
      if (data.length <= 4 * pos + (1 << 20)) scratch?.set(column.name, data)
      else scratch?.delete(column.name)
      const values = data.subarray(0, pos)
      return arrow.makeData({ type: new arrow.Utf8(), length: n, valueOffsets, data: values, ...nulls() })
    }
    case "int32": {
      const data = new Int32Array(n)
      for (let i = 0; i < n; i++) {
        const v = rows[i][column.name]
        if (present(i, v)) {
          if (typeof v !== "number" || !Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
            throw bad(i, v, "an integer in the int32 range")
          }
          data[i] = v
        }
      }
      return arrow.makeData({ type: new arrow.Int32(), length: n, data, ...nulls() })
    }
    case "float32":
    case "float64": {
      const data = column.type === "float32" ? new Float32Array(n) : new Float64Array(n)
      for (let i = 0; i < n; i++) {
        const v = rows[i][column.name]
        if (present(i, v)) {
          if (typeof v !== "number") throw bad(i, v, "a number")
          data[i] = v
        }
      }
      return column.type === "float32"
        ? arrow.makeData({ type: new arrow.Float32(), length: n, data, ...nulls() })
        : arrow.makeData({ type: new arrow.Float64(), length: n, data, ...nulls() })
    }
    case "bool": {
      const data = new Uint8Array((n + 7) >> 3)
      for (let i = 0; i < n; i++) {
        const v = rows[i][column.name]
        if (present(i, v)) {
          if (typeof v !== "boolean") throw bad(i, v, "a boolean")
          if (v) data[i >> 3] |= 1 << (i & 7)
        }
      }
      return arrow.makeData({ type: new arrow.Bool(), length: n, data, ...nulls() })
    }
  }
}

const buildBatch = (
  schema: arrow.Schema,
  columns: ReadonlyArray<Column>,
  rows: ReadonlyArray<Row>,
  firstRow: number,
  scratch?: Scratch
): arrow.RecordBatch => {
  const children = columns.map((c) => buildColumn(c, rows, firstRow, scratch))
  const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: rows.length, nullCount: 0, children })
  return new arrow.RecordBatch(schema, struct)
}

/**
 * Rows given column by column, for the JavaScript engine's fast path (ingest's TSV reader: no row objects, no
 * decoded strings). Every column of the table is given, each with `rows` cells.
 */
export interface ColumnBatch {
  readonly rows: number
  readonly columns: Readonly<Record<string, ColumnPart>>
}

export type ColumnPart =
  /** utf8: cell i is `bytes[starts[i], ends[i])`, which must be valid UTF-8 (checked). */
  | { readonly kind: "utf8"; readonly bytes: Uint8Array; readonly starts: Int32Array; readonly ends: Int32Array }
  /** int32 / float64: cell i is `values[i]` (null in a nullable column). */
  | { readonly kind: "number"; readonly values: ArrayLike<number | null> }
  /** every cell null (a nullable column). */
  | { readonly kind: "null" }

/**
 * One column of the row group being filled, laid out for the JavaScript encoder (`write.ts`) as cells
 * arrive: utf8 values go straight into a PLAIN stream (`u32le(length) ‖ bytes` per value), numbers into a typed
 * array. Also samples the first `DICTIONARY_SAMPLE` cells (as `mostlyDistinctColumns` does for the other engine).
 * The buffers are reused from one row group to the next: the compressor copies the page bodies when it is handed
 * them, and the row group in flight keeps only their lengths.
 */
class ColumnBuilder {
  readonly column: Column
  private readonly nullable: boolean
  rows = 0
  nullCount = 0
  validity = new Uint8Array(128)
  // utf8
  stream = Buffer.allocUnsafeSlow(1 << 16)
  pos = 0
  ends = new Int32Array(1024)
  values = 0
  // numbers (a bool as 0 or 1)
  numbers: Int32Array | Float32Array | Float64Array | Uint8Array
  readonly sample = new Set<unknown>()
  constructor(column: Column) {
    this.column = column
    this.nullable = column.nullable === true
    this.numbers = this.numberArray(column.type === "utf8" ? 0 : 1024)
  }
  private numberArray(n: number): Int32Array | Float32Array | Float64Array | Uint8Array {
    switch (this.column.type) {
      case "int32":
        return new Int32Array(n)
      case "float32":
        return new Float32Array(n)
      case "bool":
        return new Uint8Array(n)
      default:
        return new Float64Array(n)
    }
  }
  reset(): void {
    this.rows = 0
    this.nullCount = 0
    this.validity.fill(0)
    this.pos = 0
    this.values = 0
    this.sample.clear()
  }
  private bad(row: number, value: unknown, expected: string): CellError {
    const c = this.column
    return new CellError(
      `row ${row}, column "${c.name}" (${c.type}${this.nullable ? ", nullable" : ""}): ` +
        `expected ${expected}, got ${value === undefined ? "no value" : JSON.stringify(value)}`
    )
  }
  /** Room for one more row. */
  private grow(): void {
    if (this.rows >> 3 >= this.validity.length) {
      const v = new Uint8Array(this.validity.length * 2)
      v.set(this.validity)
      this.validity = v
    }
    if (this.column.type === "utf8") {
      if (this.values >= this.ends.length) {
        const e = new Int32Array(this.ends.length * 2)
        e.set(this.ends)
        this.ends = e
      }
    } else if (this.rows >= this.numbers.length) {
      const n = this.numberArray(this.numbers.length * 2)
      n.set(this.numbers)
      this.numbers = n
    }
  }
  private room(bytes: number): void {
    const need = this.pos + bytes
    if (need <= this.stream.length) return
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.stream.length, need))
    this.stream.copy(bigger, 0, 0, this.pos)
    this.stream = bigger
  }
  private afterValue(row: number): void {
    if (this.pos > 0x7fffffff) {
      throw new CellError(`column "${this.column.name}": rows ${row - this.rows}.. hold over 2 GiB of text; use a smaller rowGroupSize`)
    }
    this.ends[this.values++] = this.pos
    this.validity[this.rows >> 3] |= 1 << (this.rows & 7)
    this.rows++
  }
  /** A cell from a row object; `row` is its table row number (for messages). */
  push(value: Cell | undefined, row: number): void {
    this.grow()
    if (this.rows < DICTIONARY_SAMPLE) this.sample.add(value)
    if (value === null || value === undefined) return this.pushNull(value, row)
    switch (this.column.type) {
      case "utf8": {
        if (typeof value !== "string") throw this.bad(row, value, "a string")
        if (!value.isWellFormed()) throw this.bad(row, value, "well-formed UTF-16 (found a lone surrogate)")
        this.room(4 + 3 * value.length)
        const written = this.stream.write(value, this.pos + 4, "utf8")
        this.stream.writeUInt32LE(written, this.pos)
        this.pos += 4 + written
        return this.afterValue(row)
      }
      case "int32":
        if (typeof value !== "number" || !Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
          throw this.bad(row, value, "an integer in the int32 range")
        }
        return this.pushNumber(value)
      case "float32":
      case "float64":
        if (typeof value !== "number") throw this.bad(row, value, "a number")
        return this.pushNumber(value)
      case "bool":
        if (typeof value !== "boolean") throw this.bad(row, value, "a boolean")
        return this.pushNumber(value ? 1 : 0)
    }
  }
  private pushNumber(v: number): void {
    this.numbers[this.rows] = v
    this.validity[this.rows >> 3] |= 1 << (this.rows & 7)
    this.rows++
  }
  pushNull(value: null | undefined, row: number): void {
    if (!this.nullable) throw this.bad(row, value, "a value (column is not nullable)")
    if (this.column.type !== "utf8") this.numbers[this.rows] = 0
    this.nullCount++
    this.rows++
  }
  /** `count` cells of `part` starting at its cell `from`; `row` is the table row number of the first. */
  pushPart(part: ColumnPart, from: number, count: number, row: number): void {
    const c = this.column
    if (part.kind === "null") {
      for (let i = 0; i < count; i++) {
        this.grow()
        if (this.rows < DICTIONARY_SAMPLE) this.sample.add(null)
        this.pushNull(null, row + i)
      }
      return
    }
    if (part.kind === "number") {
      for (let i = 0; i < count; i++) this.push(part.values[from + i], row + i)
      return
    }
    if (c.type !== "utf8") throw new CellError(`column "${c.name}" (${c.type}): given utf8 bytes`)
    const { starts, ends } = part
    const bytes = Buffer.isBuffer(part.bytes) ? part.bytes : Buffer.from(part.bytes.buffer, part.bytes.byteOffset, part.bytes.byteLength)
    for (let i = 0; i < count; i++) {
      this.grow()
      const s = starts[from + i]
      const e = ends[from + i]
      if (this.rows < DICTIONARY_SAMPLE) this.sample.add(bytes.toString("utf8", s, e))
      this.room(4 + e - s)
      this.stream.writeUInt32LE(e - s, this.pos)
      bytes.copy(this.stream, this.pos + 4, s, e)
      this.pos += 4 + e - s
      this.afterValue(row + i)
    }
  }
  /** The row group's cells for the encoder (views into this builder's buffers). */
  cells(): Fast.ColumnValues {
    const validity = this.nullCount > 0 ? this.validity.subarray(0, (this.rows + 7) >> 3) : undefined
    if (this.column.type === "utf8") {
      return { type: "utf8", stream: this.stream.subarray(0, this.pos), ends: this.ends.subarray(0, this.values), validity, nullCount: this.nullCount }
    }
    return { type: this.column.type, values: this.numbers.subarray(0, this.rows), validity, nullCount: this.nullCount }
  }
  /** `mostlyDistinctColumns`'s verdict for this column over the sampled cells. */
  mostlyDistinct(): boolean {
    const n = Math.min(this.rows, DICTIONARY_SAMPLE)
    return n >= 64 && this.column.type !== "bool" && this.sample.size * 2 > n
  }
}

/**
 * Fresh writer properties (parquet-wasm consumes them on every `writeParquet`). `plainColumns` are written
 * without dictionary encoding (still ZSTD-compressed).
 */
const writerProperties = (rowGroupSize: number, plainColumns: ReadonlyArray<string> = []): pq.WriterProperties => {
  let builder = new pq.WriterPropertiesBuilder()
    .setCompression(pq.Compression.ZSTD)
    .setMaxRowGroupSize(rowGroupSize)
    // chunk-level statistics only: page-level ones feed a column index that lives outside the row group bytes
    .setStatisticsEnabled(pq.EnabledStatistics.Chunk)
  for (const name of plainColumns) builder = builder.setColumnDictionaryEnabled(name, false)
  return builder.build()
}

/** Rows sampled per batch to decide whether a column is worth dictionary encoding. */
const DICTIONARY_SAMPLE = 1024

/**
 * The columns of a batch whose sampled values are mostly distinct (ids, sentences): dictionary encoding cannot
 * shrink them, and building the dictionary before falling back to plain pages costs a sizeable share of the
 * encoding time. Repetitive columns (labels, file names) keep their dictionary.
 */
const mostlyDistinctColumns = (columns: ReadonlyArray<Column>, rows: ReadonlyArray<Row>): Array<string> => {
  const out: Array<string> = []
  const n = Math.min(rows.length, DICTIONARY_SAMPLE)
  if (n < 64) return out
  for (const c of columns) {
    if (c.type === "bool") continue
    const seen = new Set<Cell | undefined>()
    for (let i = 0; i < n; i++) seen.add(rows[i][c.name])
    if (seen.size * 2 > n) out.push(c.name)
  }
  return out
}

/** Encodes Arrow batches as a complete in-memory Parquet file with parquet-wasm. */
const encodeParquet = (table: arrow.Table, rowGroupSize: number, plainColumns?: ReadonlyArray<string>): Uint8Array => {
  const wasmTable = pq.Table.fromIPCStream(arrow.tableToIPC(table, "stream"))
  return pq.writeParquet(wasmTable, writerProperties(rowGroupSize, plainColumns)) // consumes wasmTable
}

// ---- writing -----------------------------------------------------------------------------------------------

const validateColumns = (path: string, columns: ReadonlyArray<Column>): ArtifactError | undefined => {
  if (columns.length === 0) return artifactError(path, `cannot write ${path}: a table needs at least one column`)
  const seen = new Set<string>()
  for (const c of columns) {
    if (c.name.length === 0) return artifactError(path, `cannot write ${path}: empty column name`)
    if (seen.has(c.name)) return artifactError(path, `cannot write ${path}: column "${c.name}" appears twice`)
    if (!COLUMN_TYPES.includes(c.type)) {
      return artifactError(path, `cannot write ${path}: column "${c.name}" has unknown type "${String(c.type)}"`)
    }
    seen.add(c.name)
  }
  return undefined
}

/** `abort` marks the writer failed and closes the file handle without a footer; the partial file stays. */
type WriterHandle = TableWriter

/** One batch encoded by parquet-wasm: its bytes, and the row groups found in them with their byte range. */
interface EncodedBatch {
  readonly bytes: Uint8Array
  readonly groups: ReadonlyArray<Footer.RowGroupInfo>
  readonly start: number
  readonly end: number
}

/**
 * Which encoder writes the row groups: `js` (`write.ts`, the default for int32/float64/utf8 tables) or
 * `wasm` (parquet-wasm, for the other types, or everywhere with `LLINK_PARQUET_ENGINE=wasm`). Both write the same
 * bytes.
 */
export type TableEngine = "js" | "wasm"

export interface TableWriterOptions {
  /** Rows per row group (default `DEFAULT_ROW_GROUP_SIZE`). */
  readonly rowGroupSize?: number
  /** Force an encoder (tests compare the two); by default the JavaScript one when it supports the columns. */
  readonly engine?: TableEngine
}

const chooseEngine = (columns: ReadonlyArray<Column>, wanted: TableEngine | undefined): TableEngine => {
  const requested = wanted ?? (process.env["LLINK_PARQUET_ENGINE"] === "wasm" ? "wasm" : "js")
  return requested === "js" && Fast.supportsColumns(columns) ? "js" : "wasm"
}

/** A column batch as row objects (for the parquet-wasm engine). */
const columnBatchRows = (columns: ReadonlyArray<Column>, batch: ColumnBatch): Array<Row> => {
  const out: Array<Record<string, Cell>> = Array.from({ length: batch.rows }, () => ({}))
  for (const c of columns) {
    const part = batch.columns[c.name]
    for (let i = 0; i < batch.rows; i++) {
      out[i][c.name] =
        part.kind === "null"
          ? null
          : part.kind === "number"
          ? part.values[i]
          : Buffer.from(part.bytes.buffer, part.bytes.byteOffset + part.starts[i], part.ends[i] - part.starts[i]).toString("utf8")
    }
  }
  return out
}

/** A row group handed to the compressor, waiting to be written once the one before it is on disk. */
interface InFlight {
  readonly prepared: Fast.PreparedRowGroup
  readonly compressed: Promise<{ readonly ok: Array<Uint8Array> } | { readonly error: unknown }>
  readonly firstRow: number
}

const openWriter = Effect.fn("table.openWriter")(function*(
  path: string,
  columns: ReadonlyArray<Column>,
  options?: TableWriterOptions
) {
  const invalid = validateColumns(path, columns)
  if (invalid !== undefined) return yield* invalid
  const rowGroupSize = options?.rowGroupSize ?? DEFAULT_ROW_GROUP_SIZE
  if (!Number.isSafeInteger(rowGroupSize) || rowGroupSize < 1) {
    return yield* artifactError(path, `cannot write ${path}: rowGroupSize must be a positive integer, got ${rowGroupSize}`)
  }
  const schema = arrowSchema(columns)
  // The footer template (schema, ARROW:schema metadata, created_by, column orders) comes from an empty table.
  const template = yield* Effect.try({
    try: () => Footer.splitFile(encodeParquet(new arrow.Table(schema), rowGroupSize)).footer,
    catch: (e) => artifactError(path, `cannot write ${path}: parquet-wasm rejected the schema: ${describeError(e)}`, e)
  })
  const io = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, ArtifactError> =>
    Effect.tryPromise({ try: f, catch: (e) => artifactError(path, `cannot ${what} ${path}: ${describeError(e)}`, e) })
  const fh = yield* io("create", () => fs.promises.open(path, "w"))
  const lock = yield* Semaphore.make(1)

  let state: "open" | "closed" | "failed" = "open"
  let position = 0
  let rows = 0
  let pending: Array<Row> = []
  const rowGroups: Array<Uint8Array> = []
  const scratch: Scratch = new Map()
  const engine = chooseEngine(columns, options?.engine)
  const builders = engine === "js" ? columns.map((c) => new ColumnBuilder(c)) : []
  const compressOnWorker = process.env["LLINK_ZSTD_WORKER"] === "1"
  let inFlight: InFlight | undefined

  const closeHandle = io("close", () => fh.close()).pipe(
    Effect.catch((e) => Effect.logWarning(`table writer: ${e.message} (after an earlier failure)`))
  )
  const abort: Effect.Effect<void> = Effect.suspend(() => {
    if (state !== "open") return Effect.void
    state = "failed"
    scratch.clear()
    inFlight = undefined
    return closeHandle
  })
  /** Runs `body` under the lock while the writer is open; any failure aborts the writer. */
  const guarded = <A>(what: string, body: () => Effect.Effect<A, ArtifactError>): Effect.Effect<A, ArtifactError> =>
    lock.withPermits(1)(
      Effect.suspend(() =>
        state === "open"
          ? // uninterruptible: an interrupted flush would lose its rows while the writer stays open
            Effect.uninterruptible(body()).pipe(Effect.tapError(() => abort))
          : Effect.fail(
              artifactError(
                path,
                `cannot ${what} ${path}: the writer is ` +
                  (state === "closed" ? "already closed" : "failed (an earlier write failed)")
              )
            )
      )
    )

  const encode = (batchRows: ReadonlyArray<Row>): Effect.Effect<EncodedBatch, ArtifactError> =>
    Effect.try({
      try: (): EncodedBatch => {
        const batch = buildBatch(schema, columns, batchRows, rows, scratch)
        const bytes = encodeParquet(new arrow.Table([batch]), rowGroupSize, mostlyDistinctColumns(columns, batchRows))
        const groups = Footer.splitFile(bytes).footer.rowGroups.filter((rg) => rg.columns.length > 0)
        const encodedRows = groups.reduce((n, rg) => n + rg.rows, 0)
        if (encodedRows !== batchRows.length) {
          throw new Footer.ParquetFooterError(`parquet-wasm encoded ${encodedRows} of ${batchRows.length} rows`)
        }
        const start = groups.length === 0 ? 0 : Math.min(...groups.map((rg) => rg.start))
        const end = groups.length === 0 ? 0 : Math.max(...groups.map((rg) => rg.end))
        return { bytes, groups, start, end }
      },
      catch: (e) =>
        artifactError(
          path,
          e instanceof CellError
            ? `cannot write ${path}: ${e.message}`
            : `cannot write ${path}: encoding rows ${rows}..${rows + batchRows.length - 1} failed: ${describeError(e)}`,
          e
        )
    })

  /** Writes the row group in flight (waiting for its compression) at the current position. */
  const drain: Effect.Effect<void, ArtifactError> = Effect.suspend(() => {
    const group = inFlight
    if (group === undefined) return Effect.void
    inFlight = undefined
    return Effect.gen(function*() {
      const result = yield* Effect.promise(() => group.compressed)
      if ("error" in result) {
        return yield* artifactError(
          path,
          `cannot write ${path}: compressing rows ${group.firstRow}..${group.firstRow + group.prepared.rows - 1} ` +
            `failed: ${describeError(result.error)}`,
          result.error
        )
      }
      const assembled = yield* Effect.try({
        try: () => Fast.assembleRowGroup(group.prepared, result.ok, position),
        catch: (e) => artifactError(path, `cannot write ${path}: assembling a row group failed: ${describeError(e)}`, e)
      })
      yield* io("write", () => writeParts(fh, assembled.parts, position))
      position += assembled.byteLength
      rowGroups.push(assembled.rowGroup)
    })
  })

  /**
   * The JavaScript path: lay out the row group held by the builders, hand its pages to the compression worker,
   * and write the previous row group meanwhile (so the caller reads and cleans the next rows while this one
   * compresses).
   */
  const flushFast: Effect.Effect<void, ArtifactError> = Effect.gen(function*() {
    const firstRow = rows
    const n = builders[0].rows
    if (n === 0) return
    const started = yield* Effect.try({
      try: () => {
        const fast = builders.map((b): Fast.FastColumn => ({
          name: b.column.name,
          type: b.column.type as Fast.FastColumnType,
          nullable: b.column.nullable === true,
          dictionary: !b.mostlyDistinct()
        }))
        const prepared = Fast.prepareRowGroup(fast, builders.map((b) => b.cells()), n)
        // the worker copies the bodies now: the builders may be refilled right after
        // compressed on this thread by default: the worker's second isolate, and the dead zstd output buffers its
        // garbage collector kept, cost ~80 MB of peak RSS on ingest and clean for ~0.7 s of overlap per million
        // pairs; `LLINK_ZSTD_WORKER=1` brings the worker back
        const compressed = (compressOnWorker
          ? Fast.compressPages(Fast.pageBodies(prepared))
          : Promise.resolve(Fast.compressPagesSync(Fast.pageBodies(prepared)))).then(
          (ok) => ({ ok }),
          (error: unknown) => ({ error })
        )
        for (const b of builders) b.reset()
        return { prepared, compressed }
      },
      catch: (e) =>
        artifactError(path, `cannot write ${path}: encoding rows ${firstRow}..${firstRow + n - 1} failed: ${describeError(e)}`, e)
    })
    yield* drain
    inFlight = { prepared: started.prepared, compressed: started.compressed, firstRow }
    rows += n
  })

  /** Puts cells into the builders; `fill` adds `count` rows starting at table row `row`. */
  const fillFast = (count: number, fill: (from: number, take: number) => void): Effect.Effect<void, ArtifactError> =>
    Effect.gen(function*() {
      let i = 0
      while (i < count) {
        const take = Math.min(rowGroupSize - builders[0].rows, count - i)
        yield* Effect.try({
          try: () => fill(i, take),
          catch: (e) =>
            e instanceof CellError
              ? artifactError(path, `cannot write ${path}: ${e.message}`, e)
              : artifactError(path, `cannot write ${path}: ${describeError(e)}`, e)
        })
        i += take
        if (builders[0].rows === rowGroupSize) yield* flushFast
      }
    })

  const writeRowsFast = (input: ReadonlyArray<Row>): Effect.Effect<void, ArtifactError> =>
    fillFast(input.length, (from, take) => {
      for (let k = from; k < from + take; k++) {
        const r = input[k]
        const row = rows + builders[0].rows
        for (const b of builders) b.push(r[b.column.name], row)
      }
    })

  const flushWasm = (batchRows: ReadonlyArray<Row>): Effect.Effect<void, ArtifactError> =>
    Effect.gen(function*() {
      const encoded = yield* encode(batchRows)
      if (encoded.groups.length > 0) {
        const shift = position - encoded.start
        const moved = encoded.groups.map((rg) => Footer.shiftRowGroup(rg.raw, shift))
        yield* io("write", () => writeFully(fh, [encoded.bytes.subarray(encoded.start, encoded.end)], position))
        position += encoded.end - encoded.start
        rowGroups.push(...moved)
      }
      rows += batchRows.length
    })

  yield* io("write", () => writeFully(fh, [Footer.MAGIC], 0)).pipe(Effect.tapError(() => abort))
  position = Footer.MAGIC.length

  const writeRowsWasm = (input: ReadonlyArray<Row>): Effect.Effect<void, ArtifactError> =>
      Effect.gen(function*() {
        let i = 0
        while (i < input.length) {
          const take = Math.min(rowGroupSize - pending.length, input.length - i)
          for (let k = 0; k < take; k++) pending.push(input[i + k])
          i += take
          if (pending.length === rowGroupSize) {
            const full = pending
            pending = []
            yield* flushWasm(full)
          }
        }
      })

  const write = (input: ReadonlyArray<Row>): Effect.Effect<void, ArtifactError> =>
    guarded("write", () => (engine === "js" ? writeRowsFast(input) : writeRowsWasm(input)))

  const writeColumns = (batch: ColumnBatch): Effect.Effect<void, ArtifactError> =>
    guarded("write", () => {
      const parts = columns.map((c) => batch.columns[c.name])
      const missing = columns.filter((_, i) => parts[i] === undefined).map((c) => c.name)
      if (missing.length > 0) {
        return Effect.fail(artifactError(path, `cannot write ${path}: the column batch lacks ${missing.join(", ")}`))
      }
      const checked = new Set<Uint8Array>()
      for (const part of parts) {
        if (part.kind !== "utf8" || checked.has(part.bytes)) continue
        checked.add(part.bytes)
        if (!isUtf8(part.bytes)) {
          // the source holds invalid bytes somewhere (e.g. a quarantined line): check the cells themselves
          for (let i = 0; i < batch.rows; i++) {
            if (!isUtf8(part.bytes.subarray(part.starts[i], part.ends[i]))) {
              return Effect.fail(artifactError(path, `cannot write ${path}: row ${rows + i}: cell bytes are not valid UTF-8`))
            }
          }
        }
      }
      if (engine === "wasm") return writeRowsWasm(columnBatchRows(columns, batch))
      return fillFast(batch.rows, (from, take) => {
        const row = rows + builders[0].rows
        builders.forEach((b, i) => b.pushPart(parts[i], from, take, row))
      })
    })

  const close: Effect.Effect<number, ArtifactError> = guarded("close", () =>
    Effect.gen(function*() {
      if (pending.length > 0) {
        const rest = pending
        pending = []
        yield* flushWasm(rest)
      }
      if (engine === "js") yield* flushFast
      yield* drain
      const tail = Footer.footerTail(Footer.composeFooter(template, rows, rowGroups))
      yield* io("write", () => writeFully(fh, [tail], position))
      yield* io("fsync", () => fh.sync())
      state = "closed"
      scratch.clear()
      yield* io("close", () => fh.close())
      return rows
    })
  )

  const handle: WriterHandle = { write, writeColumns, close, abort }
  return handle
})

/**
 * Opens `path` for writing a table with `columns`. Rows are buffered and written as one row group per
 * `rowGroupSize` rows (default `DEFAULT_ROW_GROUP_SIZE`, 16,384); `close` writes the rest and the footer, fsyncs,
 * and returns the row count.
 * After any failure the writer refuses further calls (the partial file is left for the runner to discard).
 */
export const openTableWriter: (
  path: string,
  columns: ReadonlyArray<Column>,
  options?: TableWriterOptions
) => Effect.Effect<TableWriter, ArtifactError> = Effect.fn("table.openTableWriter")(function*(path, columns, options) {
  const { write, writeColumns, close, abort } = yield* openWriter(path, columns, options)
  const writer: TableWriter = { write, writeColumns, close, abort }
  return writer
})

/** Writes a whole stream of rows to `path`; returns the row count. On failure the file handle is closed. */
export const writeTable = <E, R>(
  path: string,
  columns: ReadonlyArray<Column>,
  rows: Stream.Stream<Row, E, R>,
  options?: TableWriterOptions
): Effect.Effect<number, E | ArtifactError, R> =>
  Effect.gen(function*() {
    const writer = yield* openWriter(path, columns, options)
    yield* Stream.runForEachArray(rows, (chunk) => writer.write(chunk)).pipe(
      Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : writer.abort))
    )
    return yield* writer.close
  }).pipe(Effect.withSpan("table.writeTable", { attributes: { path } }))

// ---- reading -----------------------------------------------------------------------------------------------

/** An open Parquet file whose footer has been parsed and checked against the file size. */
interface ParquetSource {
  readonly path: string
  readonly fh: FileHandle
  readonly size: number
  readonly footer: Footer.FooterInfo
}


/** Opens and validates `path`; the handle is closed when the surrounding scope ends. */
const openParquet = Effect.fn("table.openParquet")(function*(path: string) {
  const { fh, io, size } = yield* openRegularFile(path)
  if (size < 12) return yield* artifactError(path, `not a Parquet file: ${path} has only ${size} bytes`)
  const head = new Uint8Array(4)
  const tail = new Uint8Array(8)
  yield* io(() => readFully(fh, head, 0, 0, 4))
  yield* io(() => readFully(fh, tail, size - 8, 0, 8))
  const isMagic = (b: Uint8Array) => b.every((x, i) => x === Footer.MAGIC[i])
  if (!isMagic(head)) return yield* artifactError(path, `not a Parquet file: ${path} does not start with the PAR1 magic`)
  if (!isMagic(tail.subarray(4))) {
    return yield* artifactError(
      path,
      `truncated or not a Parquet file: ${path} (${size} bytes) does not end with the PAR1 magic`
    )
  }
  const footerLength = new DataView(tail.buffer).getUint32(0, true)
  if (footerLength > size - 12) {
    return yield* artifactError(path, `corrupt Parquet file: ${path} claims a ${footerLength}-byte footer in ${size} bytes`)
  }
  const raw = new Uint8Array(footerLength)
  yield* io(() => readFully(fh, raw, size - 8 - footerLength, 0, footerLength))
  const footer = yield* Effect.try({
    try: () => {
      const parsed = Footer.parseFooter(raw)
      Footer.checkRanges(parsed, size - 8 - footerLength)
      return parsed
    },
    catch: (e) => artifactError(path, `corrupt Parquet footer in ${path}: ${describeError(e)}`, e)
  })
  const source: ParquetSource = { path, fh, size, footer }
  return source
})

/** Maps an Arrow type read back from a file to a column type (strings also as large or dictionary-encoded). */
const columnTypeOf = (t: arrow.DataType): ColumnType | undefined => {
  if (arrow.DataType.isUtf8(t) || arrow.DataType.isLargeUtf8(t)) return "utf8"
  if (arrow.DataType.isDictionary(t)) return arrow.DataType.isUtf8(t.dictionary) ? "utf8" : undefined
  if (arrow.DataType.isInt(t)) return t.bitWidth === 32 && t.isSigned ? "int32" : undefined
  if (arrow.DataType.isFloat(t)) {
    return t.precision === arrow.Precision.SINGLE ? "float32" : t.precision === arrow.Precision.DOUBLE ? "float64" : undefined
  }
  if (arrow.DataType.isBool(t)) return "bool"
  return undefined
}

/** A column as stored: `type` is undefined when the file's type has no `ColumnType` (e.g. a struct). */
interface StoredColumn {
  readonly name: string
  readonly type: ColumnType | undefined
  readonly arrowType: string
  readonly nullable: boolean
}

const storedColumns = (source: ParquetSource): Effect.Effect<ReadonlyArray<StoredColumn>, ArtifactError> =>
  Effect.try({
    try: () =>
      arrow
        .tableFromIPC(pq.readSchema(Footer.schemaOnlyFile(source.footer)).intoIPCStream())
        .schema.fields.map((f) => ({ name: f.name, type: columnTypeOf(f.type), arrowType: String(f.type), nullable: f.nullable })),
    catch: (e) => artifactError(source.path, `cannot read the schema of ${source.path}: ${describeError(e)}`, e)
  })

/** The stored columns as `Column`s, failing on the first of `names` whose type is not supported. */
const supportedColumns = (
  source: ParquetSource,
  stored: ReadonlyArray<StoredColumn>,
  names: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Column>, ArtifactError> => {
  const out: Array<Column> = []
  for (const name of names) {
    const c = stored.find((s) => s.name === name)
    if (c === undefined) continue
    if (c.type === undefined) {
      return Effect.fail(
        artifactError(source.path, `${source.path}: column "${c.name}" has unsupported type ${c.arrowType}`)
      )
    }
    out.push({ name: c.name, type: c.type, nullable: c.nullable })
  }
  return Effect.succeed(out)
}

/**
 * Decodes row group `index` on its own with parquet-wasm (for a row group `read.ts` cannot decode): its bytes plus
 * a footer for it alone, through the synchronous reader.
 */
const decodeRowGroup = (source: ParquetSource, index: number): Effect.Effect<arrow.Table, ArtifactError> =>
  Effect.gen(function*() {
    const { path, footer } = source
    const rg = footer.rowGroups[index]
    const where = `row group ${index} of ${footer.rowGroups.length} in ${path}`
    const mini = yield* Effect.try({
      try: () => Footer.rowGroupFile(footer, index),
      catch: (e) => artifactError(path, `corrupt Parquet footer for ${where}: ${describeError(e)}`, e)
    })
    yield* Effect.tryPromise({
      try: () => readFully(source.fh, mini.file, rg.start, mini.dataAt, rg.end - rg.start),
      catch: (e) => artifactError(path, `cannot read ${where}: ${describeError(e)}`, e)
    })
    const batchSize = Math.max(1, rg.rows)
    return yield* Effect.try({
      try: () => arrow.tableFromIPC(pq.readParquet(mini.file, { batchSize }).intoIPCStream()),
      catch: (e) => artifactError(path, `corrupt data in ${where}: ${describeError(e)}`, e)
    })
  })

/**
 * Row group `index` decoded in JavaScript (`read.ts`) for the columns `names`: the row group's bytes are read into
 * `scratch.bytes` (grown as needed; the caller is done with the previous row group), utf8 text into the buffers of
 * `scratch.text` by column. Undefined when the row group uses anything `read.ts` does not decode (another codec,
 * encoding or page version): the caller then decodes it with parquet-wasm.
 */
const decodeRowGroupInJs = (
  source: ParquetSource,
  index: number,
  stored: ReadonlyArray<StoredColumn>,
  names: ReadonlyArray<string>,
  scratch: { bytes: Buffer; readonly text: Map<string, Buffer> }
): Effect.Effect<Record<string, DecodedColumn> | undefined, ArtifactError> =>
  Effect.gen(function*() {
    const { path, footer } = source
    const rg = footer.rowGroups[index]
    const where = `row group ${index} of ${footer.rowGroups.length} in ${path}`
    if (scratch.bytes.length < rg.end - rg.start) scratch.bytes = Buffer.allocUnsafeSlow(rg.end - rg.start)
    const data = scratch.bytes.subarray(0, rg.end - rg.start)
    yield* Effect.tryPromise({
      try: () => readFully(source.fh, data, rg.start),
      catch: (e) => artifactError(path, `cannot read ${where}: ${describeError(e)}`, e)
    })
    const decoded = yield* Effect.try({
      try: () => decodeRowGroupJs(data, rg, stored, names, scratch.text),
      catch: (e) => artifactError(path, `corrupt data in ${where}: ${describeError(e)}`, e)
    })
    if (decoded !== undefined) {
      for (const name of names) {
        const kept = decoded[name].buffer
        if (kept !== undefined) scratch.text.set(name, kept)
      }
    }
    return decoded
  })

/** The rows of a row group decoded by `decodeRowGroupInJs` (utf8 cells as strings, bools as booleans, nulls null). */
const decodedRows = (decoded: Record<string, DecodedColumn>, stored: ReadonlyArray<StoredColumn>, names: ReadonlyArray<string>, rows: number): Array<Row> => {
  const readers = names.map((name): ((i: number) => Cell) => {
    const d = decoded[name]
    const validity = d.validity
    const isNull = validity === undefined ? () => false : (i: number) => (validity[i >> 3] & (1 << (i & 7))) === 0
    if (d.bytes !== undefined) {
      const { bytes, offsets } = d
      return (i) => (isNull(i) ? null : bytes.toString("utf8", offsets![i], offsets![i + 1]))
    }
    const numbers = d.numbers!
    if (stored.find((c) => c.name === name)?.type === "bool") return (i) => (isNull(i) ? null : numbers[i] === 1)
    return (i) => (isNull(i) ? null : numbers[i])
  })
  const out: Array<Row> = new Array(rows)
  for (let i = 0; i < rows; i++) {
    const row: Record<string, Cell> = {}
    for (let c = 0; c < names.length; c++) row[names[c]] = readers[c](i)
    out[i] = row
  }
  return out
}

/** A reader of one column's cells, by row index within the batch. */
const cellReader = (vector: arrow.Vector, name: string): ((i: number) => Cell) => {
  if (arrow.DataType.isUtf8(vector.type) && vector.data.length === 1) {
    const data = vector.data[0]
    const offsets = data.valueOffsets
    const values = Buffer.from(data.values.buffer, data.values.byteOffset, data.values.byteLength)
    const bitmap = data.nullCount > 0 ? data.nullBitmap : undefined
    const base = data.offset
    return (i) => {
      const j = i + base
      if (bitmap !== undefined && (bitmap[j >> 3] & (1 << (j & 7))) === 0) return null
      return values.toString("utf8", offsets[j], offsets[j + 1])
    }
  }
  return (i) => {
    const v: unknown = vector.get(i)
    if (v === null || v === undefined) return null
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v
    throw new CellError(`column "${name}" holds a ${typeof v} at row ${i}, not a string, number or boolean`)
  }
}

const tableRows = (table: arrow.Table, names: ReadonlyArray<string>): Array<Row> => {
  const out: Array<Row> = []
  for (const batch of table.batches) {
    const readers = names.map((name) => {
      const vector = batch.getChild(name)
      if (vector === null) throw new CellError(`row group lacks column "${name}"`)
      return cellReader(vector, name)
    })
    const n = batch.numRows
    for (let i = 0; i < n; i++) {
      const row: Record<string, Cell> = {}
      for (let c = 0; c < names.length; c++) row[names[c]] = readers[c](i)
      out.push(row)
    }
  }
  return out
}

/**
 * Streams the rows of `path` one row group at a time: each element is one row group's rows. `columns` selects
 * (and orders) the cells each row carries; an unknown name fails before any row is read.
 */
export interface ReadOptions {
  /** Which cells the rows carry, in this order (default: every column). */
  readonly columns?: ReadonlyArray<string>
  /** `wasm`: decode every row group with parquet-wasm (the tests' oracle for `read.ts`). Default `js`. */
  readonly engine?: TableEngine
}

export const readTableBatches = (
  path: string,
  options?: ReadOptions
): Stream.Stream<ReadonlyArray<Row>, ArtifactError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const { source, names, groups, stored } = yield* openForReading(path, options?.columns)
      const scratch = { bytes: Buffer.allocUnsafeSlow(0), text: new Map<string, Buffer>() }
      const viaArrow = (i: number) =>
        decodeRowGroup(source, i).pipe(
          Effect.flatMap((table) =>
            Effect.try({
              try: () => tableRows(table, names),
              catch: (e) => artifactError(path, `cannot read row group ${i} of ${path}: ${describeError(e)}`, e)
            })
          )
        )
      if (options?.engine === "wasm") return Stream.fromIterable(groups).pipe(Stream.mapEffect(viaArrow))
      return Stream.fromIterable(groups).pipe(
        Stream.mapEffect((i) =>
          decodeRowGroupInJs(source, i, stored, names, scratch).pipe(
            Effect.flatMap((decoded) => (decoded === undefined ? viaArrow(i) : Effect.succeed(decodedRows(decoded, stored, names, source.footer.rowGroups[i].rows))))
          )
        )
      )
    })
  ).pipe(Stream.withSpan("table.readTable", { attributes: { path } }))

/** Opens `path` for reading the columns `wanted` (default: all; an unknown one fails): the non-empty row groups. */
const openForReading = Effect.fn("table.openForReading")(function*(path: string, wanted: ReadonlyArray<string> | undefined) {
  const source = yield* openParquet(path)
  const stored = yield* storedColumns(source)
  const available = stored.map((c) => c.name)
  const names = wanted ?? available
  const unknown = names.filter((n) => !available.includes(n))
  if (unknown.length > 0) {
    return yield* artifactError(
      path,
      `${path} has no column ${unknown.map((n) => `"${n}"`).join(", ")} (columns: ${available.join(", ")})`
    )
  }
  yield* supportedColumns(source, stored, names)
  const groups = source.footer.rowGroups.flatMap((rg, i) => (rg.rows > 0 ? [i] : []))
  return { source, names, groups, stored }
})

/**
 * One record batch of a row group as Arrow holds it, without building rows or strings: a utf8 column's cell i is
 * `bytes[offsets[i], offsets[i + 1])`, a numeric column's is `numbers[i]`; `valid(i)` is false for a null.
 */
export interface RawColumn {
  readonly valid: (i: number) => boolean
  readonly bytes?: Buffer
  readonly offsets?: Int32Array
  readonly numbers?: ArrayLike<number>
}
export interface RawBatch {
  readonly rows: number
  readonly columns: Readonly<Record<string, RawColumn>>
}

const rawColumn = (vector: arrow.Vector, name: string): RawColumn => {
  const simple = vector.data.length === 1 ? vector.data[0] : undefined
  if (simple !== undefined && (arrow.DataType.isUtf8(vector.type) || arrow.DataType.isInt(vector.type) || arrow.DataType.isFloat(vector.type))) {
    const base = simple.offset
    const bitmap = simple.nullCount > 0 ? simple.nullBitmap : undefined
    const valid = bitmap === undefined ? () => true : (i: number) => (bitmap[(i + base) >> 3] & (1 << ((i + base) & 7))) !== 0
    if (arrow.DataType.isUtf8(vector.type)) {
      const v = simple.values
      return {
        valid,
        bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength),
        offsets: simple.valueOffsets.subarray(base, base + simple.length + 1)
      }
    }
    const values = simple.values as Int32Array | Float64Array
    if (values instanceof Int32Array || values instanceof Float64Array) return { valid, numbers: values.subarray(base, base + simple.length) }
  }
  // any other layout: through the cells
  const n = vector.length
  const cells = Array.from({ length: n }, (_, i): unknown => vector.get(i))
  const valid = (i: number) => cells[i] !== null && cells[i] !== undefined
  if (arrow.DataType.isUtf8(vector.type)) {
    const parts = cells.map((c) => Buffer.from(typeof c === "string" ? c : "", "utf8"))
    const offsets = new Int32Array(n + 1)
    for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i] + parts[i].length
    return { valid, bytes: Buffer.concat(parts), offsets }
  }
  return {
    valid,
    numbers: Float64Array.from(cells, (c) => {
      if (c === null || c === undefined) return 0
      if (typeof c !== "number") throw new CellError(`column "${name}" holds a ${typeof c}, not a number`)
      return c
    })
  }
}

/**
 * Streams the record batches of `path` (one per row group as written here) as raw columns (`RawBatch`). Row groups
 * are decoded on this thread by `read.ts` (native zstd, no Arrow); one it cannot decode (a file llink did not
 * write: another codec, encoding or page version) goes through parquet-wasm, also on this thread. For readers
 * that work on bytes (clean) and drop each batch before the next: its buffers are the decoded row group's.
 */
export const readTableRaw = (path: string, names: ReadonlyArray<string>): Stream.Stream<RawBatch, ArtifactError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const { source, groups, stored } = yield* openForReading(path, names)
      const viaArrow = (i: number): Effect.Effect<ReadonlyArray<RawBatch>, ArtifactError> =>
        decodeRowGroup(source, i).pipe(
          Effect.flatMap((table) =>
            Effect.try({
              try: () =>
                table.batches.map((batch): RawBatch => ({
                  rows: batch.numRows,
                  columns: Object.fromEntries(names.map((name) => {
                    const vector = batch.getChild(name)
                    if (vector === null) throw new CellError(`row group lacks column "${name}"`)
                    return [name, rawColumn(vector, name)]
                  }))
                })),
              catch: (e) => artifactError(path, `cannot read row group ${i} of ${path}: ${describeError(e)}`, e)
            })
          )
        )
      // the buffers of the previous row group, which its reader is done with once it pulls the next (see above)
      const scratch = { bytes: Buffer.allocUnsafeSlow(0), text: new Map<string, Buffer>() }
      const decode = (i: number): Effect.Effect<ReadonlyArray<RawBatch>, ArtifactError> =>
        Effect.gen(function*() {
          const decoded = yield* decodeRowGroupInJs(source, i, stored, names, scratch)
          if (decoded === undefined) return yield* viaArrow(i)
          const batch: RawBatch = {
            rows: source.footer.rowGroups[i].rows,
            columns: Object.fromEntries(names.map((name): [string, RawColumn] => {
              const d = decoded[name]
              const validity = d.validity
              const valid = validity === undefined ? () => true : (r: number) => (validity[r >> 3] & (1 << (r & 7))) !== 0
              return [name, d.bytes !== undefined ? { valid, bytes: d.bytes, offsets: d.offsets } : { valid, numbers: d.numbers }]
            }))
          }
          return [batch]
        })
      return Stream.fromIterable(groups).pipe(
        Stream.mapEffect(decode),
        Stream.flatMap((batches) => Stream.fromIterable(batches))
      )
    })
  ).pipe(Stream.withSpan("table.readTableRaw", { attributes: { path } }))

/** Streams rows back, one row group at a time. `columns` selects a subset. */
export const readTable = (
  path: string,
  options?: ReadOptions
): Stream.Stream<Row, ArtifactError> =>
  readTableBatches(path, options).pipe(Stream.flatMap((rows) => Stream.fromArray(rows)))

/** All rows of `path` in memory (for small tables). */
export const readTableAll = (
  path: string,
  options?: ReadOptions
): Effect.Effect<ReadonlyArray<Row>, ArtifactError> =>
  Stream.runCollect(readTableBatches(path, options)).pipe(Effect.map((batches) => batches.flat()))

/** The row count, from the footer (no data is read). */
export const tableRowCount: (path: string) => Effect.Effect<number, ArtifactError> = Effect.fn("table.tableRowCount")(
  function*(path: string) {
    const source = yield* openParquet(path)
    return source.footer.rows
  },
  Effect.scoped
)

/** The columns of `path` with their types and nullability, from the footer; fails on an unsupported type. */
export const tableColumns: (path: string) => Effect.Effect<ReadonlyArray<Column>, ArtifactError> = Effect.fn(
  "table.tableColumns"
)(function*(path: string) {
  const source = yield* openParquet(path)
  const stored = yield* storedColumns(source)
  return yield* supportedColumns(source, stored, stored.map((c) => c.name))
}, Effect.scoped)

/** Storage facts of one row group: its rows, bytes before/after compression, and the codec of each column. */
export interface RowGroupStats {
  readonly rows: number
  readonly compressedBytes: number
  readonly uncompressedBytes: number
  /** parquet-format codec names, one per column (e.g. `"ZSTD"`). */
  readonly codecs: ReadonlyArray<string>
  /** Byte range `[start, end)` of the row group's column chunks in the file. */
  readonly start: number
  readonly end: number
}

/** Footer facts of `path` (row groups, sizes, codecs) for checks and reports. */
export const tableInfo: (
  path: string
) => Effect.Effect<
  { readonly rows: number; readonly bytes: number; readonly rowGroups: ReadonlyArray<RowGroupStats> },
  ArtifactError
> = Effect.fn("table.tableInfo")(function*(path: string) {
  const source = yield* openParquet(path)
  const rowGroups = source.footer.rowGroups.map(
    (rg): RowGroupStats => ({
      rows: rg.rows,
      compressedBytes: rg.columns.reduce((n, c) => n + c.compressedBytes, 0),
      uncompressedBytes: rg.columns.reduce((n, c) => n + c.uncompressedBytes, 0),
      codecs: rg.columns.map((c) => Footer.CODEC_NAMES[c.codec] ?? `codec ${c.codec}`),
      start: rg.start,
      end: rg.end
    })
  )
  return { rows: source.footer.rows, bytes: source.size, rowGroups }
}, Effect.scoped)
