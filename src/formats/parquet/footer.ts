/**
 * Parquet footer surgery: just enough of the Thrift compact protocol to read a Parquet footer (`FileMetaData`),
 * find each row group's byte range, and re-emit footers with row groups moved to other file offsets.
 *
 * Why this exists: parquet-wasm 0.8.0 has a synchronous whole-buffer API (`readParquet`, `writeParquet`) whose
 * errors are ordinary catchable exceptions, and an async, row-group-level API (`ParquetFile`,
 * `transformParquetStream`) that `unwrap()`s read errors (a corrupt page panics the wasm module inside a
 * microtask: an uncaught exception that kills the process, and the read promise never settles) and discards write
 * errors (`let _ = writer.write(..)`). `table.ts` therefore only uses the synchronous API, on small self-contained
 * Parquet buffers built here:
 *
 * - reading: one row group's bytes plus a footer that describes only that row group (offsets shifted so the
 *   chunk starts right after the leading `PAR1`): `rowGroupFile`;
 * - writing: every batch is written by `writeParquet` as a one-row-group file; its row group bytes are appended to
 *   the output and its row group metadata, shifted to the new offset, is kept; `composeFooter` writes the final
 *   footer from a template footer (schema, key/value metadata incl. `ARROW:schema`) and all row groups.
 *
 * Page indexes (`ColumnChunk` fields 4–7) and bloom filters (`ColumnMetaData` 14–15) live outside the row group
 * byte range, so they are dropped from moved row groups; they are optional optimisations, never needed to read.
 *
 * Field numbers are those of parquet-format's `parquet.thrift`. Offsets are file positions, which fit in a JS
 * number (≤ 2^53). Everything here throws `ParquetFooterError`; callers turn it into an `ArtifactError`.
 */

/** A footer that cannot be parsed or describes bytes outside the file. */
export class ParquetFooterError extends Error {
  override readonly name = "ParquetFooterError"
}

/** The 4-byte magic at both ends of a Parquet file. */
export const MAGIC = Uint8Array.of(0x50, 0x41, 0x52, 0x31) // "PAR1"

// Thrift compact protocol type ids.
const T_STOP = 0
const T_TRUE = 1
const T_FALSE = 2
const T_I8 = 3
const T_I16 = 4
const T_I32 = 5
const T_I64 = 6
const T_DOUBLE = 7
const T_BINARY = 8
const T_LIST = 9
const T_SET = 10
const T_MAP = 11
const T_STRUCT = 12

/** Thrift structures nest only a few levels in a Parquet footer; deeper means garbage. */
const MAX_DEPTH = 32

/** One field of a struct as found in the buffer: `start`..`end` is its value's encoding (empty for booleans). */
interface RawField {
  readonly id: number
  readonly type: number
  readonly start: number
  readonly end: number
}

class Reader {
  pos: number
  readonly buf: Uint8Array
  constructor(buf: Uint8Array, pos = 0) {
    this.buf = buf
    this.pos = pos
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new ParquetFooterError("footer ends inside a Thrift value")
    return this.buf[this.pos++]
  }

  varint(): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      const b = this.byte()
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (result > Number.MAX_SAFE_INTEGER) throw new ParquetFooterError("Thrift integer beyond 2^53")
        return result
      }
      scale *= 128
    }
    throw new ParquetFooterError("Thrift varint longer than 10 bytes")
  }

  zigzag(): number {
    const u = this.varint()
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2
  }

  skip(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw new ParquetFooterError("footer ends inside a Thrift value")
    this.pos += n
  }

  /** Skips one value of `type`. `inContainer`: booleans in lists/maps take one byte, in fields none. */
  skipValue(type: number, depth: number, inContainer: boolean): void {
    if (depth > MAX_DEPTH) throw new ParquetFooterError("Thrift structure nested too deeply")
    switch (type) {
      case T_TRUE:
      case T_FALSE:
        if (inContainer) this.skip(1)
        return
      case T_I8:
        return this.skip(1)
      case T_I16:
      case T_I32:
      case T_I64:
        this.varint()
        return
      case T_DOUBLE:
        return this.skip(8)
      case T_BINARY:
        return this.skip(this.varint())
      case T_LIST:
      case T_SET: {
        const { size, elemType } = this.listHeader()
        for (let i = 0; i < size; i++) this.skipValue(elemType, depth + 1, true)
        return
      }
      case T_MAP: {
        const size = this.varint()
        if (size === 0) return
        const kv = this.byte()
        for (let i = 0; i < size; i++) {
          this.skipValue(kv >> 4, depth + 1, true)
          this.skipValue(kv & 0x0f, depth + 1, true)
        }
        return
      }
      case T_STRUCT:
        this.fields(depth + 1)
        return
      default:
        throw new ParquetFooterError(`unknown Thrift type ${type}`)
    }
  }

  listHeader(): { size: number; elemType: number } {
    const b = this.byte()
    const short = b >> 4
    const size = short === 15 ? this.varint() : short
    if (size > this.buf.length) throw new ParquetFooterError("Thrift list longer than the footer")
    return { size, elemType: b & 0x0f }
  }

  /** Reads a struct's fields up to and including its STOP byte. */
  fields(depth = 0): Array<RawField> {
    const out: Array<RawField> = []
    let last = 0
    for (;;) {
      const b = this.byte()
      if (b === T_STOP) return out
      const type = b & 0x0f
      const delta = b >> 4
      const id = delta === 0 ? this.zigzag() : last + delta
      last = id
      const start = this.pos
      this.skipValue(type, depth, false)
      out.push({ id, type, start, end: this.pos })
    }
  }
}

/** A Thrift compact-protocol encoder (also used by `write.ts` for page headers and column metadata). */
export class Writer {
  private buf = new Uint8Array(1024)
  private len = 0
  private readonly lastIds: Array<number> = [0]

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }

  byte(b: number): void {
    this.ensure(1)
    this.buf[this.len++] = b
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
  }

  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new ParquetFooterError(`cannot encode ${n} as a Thrift varint`)
    let v = n
    while (v >= 0x80) {
      this.byte((v % 128) | 0x80)
      v = Math.floor(v / 128)
    }
    this.byte(v)
  }

  zigzag(n: number): void {
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1)
  }

  fieldHeader(id: number, type: number): void {
    const last = this.lastIds[this.lastIds.length - 1]
    const delta = id - last
    if (delta > 0 && delta <= 15) this.byte((delta << 4) | type)
    else {
      this.byte(type)
      this.zigzag(id)
    }
    this.lastIds[this.lastIds.length - 1] = id
  }

  beginStruct(): void {
    this.lastIds.push(0)
  }

  endStruct(): void {
    this.byte(T_STOP)
    this.lastIds.pop()
  }

  listHeader(size: number, elemType: number): void {
    if (size < 15) this.byte((size << 4) | elemType)
    else {
      this.byte(0xf0 | elemType)
      this.varint(size)
    }
  }

  /** Copies a field verbatim (booleans carry their value in the header's type nibble). */
  copyField(src: Uint8Array, f: RawField): void {
    this.fieldHeader(f.id, f.type)
    this.bytes(src.subarray(f.start, f.end))
  }

  i64Field(id: number, value: number): void {
    this.fieldHeader(id, T_I64)
    this.zigzag(value)
  }

  i32Field(id: number, value: number): void {
    this.fieldHeader(id, T_I32)
    this.zigzag(value)
  }

  /** A boolean field: the value is the header's type nibble (1 true, 2 false). */
  boolField(id: number, value: boolean): void {
    this.fieldHeader(id, value ? T_TRUE : T_FALSE)
  }

  binaryField(id: number, value: Uint8Array): void {
    this.fieldHeader(id, T_BINARY)
    this.varint(value.length)
    this.bytes(value)
  }

  /** Opens a struct-valued field; close it with `endStruct`. */
  structField(id: number): void {
    this.fieldHeader(id, T_STRUCT)
    this.beginStruct()
  }

  /** A list field of i32 (`intType` T_I32) or i64 (T_I64) values. */
  intListField(id: number, values: ReadonlyArray<number>, wide = false): void {
    this.fieldHeader(id, T_LIST)
    this.listHeader(values.length, wide ? T_I64 : T_I32)
    for (const v of values) this.zigzag(v)
  }

  /** A list field of binary values (strings). */
  binaryListField(id: number, values: ReadonlyArray<Uint8Array>): void {
    this.fieldHeader(id, T_LIST)
    this.listHeader(values.length, T_BINARY)
    for (const v of values) {
      this.varint(v.length)
      this.bytes(v)
    }
  }

  /** Opens a list field of `size` structs; write each with `beginStruct`/`endStruct`. */
  structListField(id: number, size: number): void {
    this.fieldHeader(id, T_LIST)
    this.listHeader(size, T_STRUCT)
  }

  get length(): number {
    return this.len
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

const readI64 = (src: Uint8Array, f: RawField): number => {
  if (f.type !== T_I64 && f.type !== T_I32) throw new ParquetFooterError(`field ${f.id} is not an integer`)
  return new Reader(src, f.start).zigzag()
}

const structFields = (src: Uint8Array, f: RawField): Array<RawField> => {
  if (f.type !== T_STRUCT) throw new ParquetFooterError(`field ${f.id} is not a struct`)
  return new Reader(src, f.start).fields()
}

/** The elements of a list field of structs, each as its own field list. */
const structList = (src: Uint8Array, f: RawField): Array<{ start: number; end: number; fields: Array<RawField> }> => {
  if (f.type !== T_LIST) throw new ParquetFooterError(`field ${f.id} is not a list`)
  const r = new Reader(src, f.start)
  const { size, elemType } = r.listHeader()
  if (elemType !== T_STRUCT) throw new ParquetFooterError(`field ${f.id} is not a list of structs`)
  const out: Array<{ start: number; end: number; fields: Array<RawField> }> = []
  for (let i = 0; i < size; i++) {
    const start = r.pos
    const fields = r.fields()
    out.push({ start, end: r.pos, fields })
  }
  return out
}

const find = (fields: ReadonlyArray<RawField>, id: number): RawField | undefined => fields.find((f) => f.id === id)

const utf8 = new TextDecoder()

/** A `list<binary>` field (`path_in_schema`) joined with "."; "" when absent. */
const pathOf = (src: Uint8Array, f: RawField | undefined): string => {
  if (f === undefined) return ""
  if (f.type !== T_LIST) throw new ParquetFooterError(`field ${f.id} is not a list`)
  const r = new Reader(src, f.start)
  const { size, elemType } = r.listHeader()
  if (elemType !== T_BINARY) throw new ParquetFooterError(`field ${f.id} is not a list of strings`)
  const parts: Array<string> = []
  for (let i = 0; i < size; i++) {
    const n = r.varint()
    const at = r.pos
    r.skip(n)
    parts.push(utf8.decode(src.subarray(at, at + n)))
  }
  return parts.join(".")
}

/** One column chunk of a row group, as far as this project needs it. */
export interface ColumnChunkInfo {
  /** parquet-format `CompressionCodec`: 0 UNCOMPRESSED, 1 SNAPPY, 2 GZIP, 4 BROTLI, 6 ZSTD, 7 LZ4_RAW. */
  readonly codec: number
  readonly compressedBytes: number
  readonly uncompressedBytes: number
  /** File offset of the chunk's first page (dictionary page if any). */
  readonly start: number
  /** parquet-format physical `Type` (1 INT32, 5 DOUBLE, 6 BYTE_ARRAY, …). */
  readonly type: number
  /** Values (levels) in the chunk, nulls included. */
  readonly numValues: number
  /** `path_in_schema`, joined with "." (a flat column's name). */
  readonly path: string
}

// parquet-format enums (the numbers in the file), for the encoder (write.ts) and decoder (read.ts)
export const TYPE_BOOLEAN = 0
export const TYPE_INT32 = 1
export const TYPE_FLOAT = 4
export const TYPE_DOUBLE = 5
export const TYPE_BYTE_ARRAY = 6
export const ENC_PLAIN = 0
export const ENC_PLAIN_DICTIONARY = 2
export const ENC_RLE = 3
export const ENC_RLE_DICTIONARY = 8
export const PAGE_DATA = 0
export const PAGE_DICTIONARY = 2
export const PAGE_DATA_V2 = 3
export const CODEC_UNCOMPRESSED = 0
export const CODEC_ZSTD = 6

/** parquet-format codec ids by name (note: these are the file's numbers, not parquet-wasm's `Compression` enum). */
export const CODEC_NAMES: Readonly<Record<number, string>> = {
  0: "UNCOMPRESSED",
  1: "SNAPPY",
  2: "GZIP",
  3: "LZO",
  4: "BROTLI",
  5: "LZ4",
  6: "ZSTD",
  7: "LZ4_RAW"
}

export interface RowGroupInfo {
  readonly rows: number
  readonly columns: ReadonlyArray<ColumnChunkInfo>
  /** Byte range `[start, end)` of the row group's column chunks in the file. */
  readonly start: number
  readonly end: number
  /** The row group's encoded `RowGroup` struct (fields through STOP), as found in the footer. */
  readonly raw: Uint8Array
}

export interface FooterInfo {
  readonly rows: number
  readonly rowGroups: ReadonlyArray<RowGroupInfo>
  /** The whole encoded `FileMetaData`. */
  readonly raw: Uint8Array
  readonly fields: ReadonlyArray<RawField>
}

/** Parses an encoded `FileMetaData` (the bytes between the leading data and the trailing length + `PAR1`). */
export const parseFooter = (raw: Uint8Array): FooterInfo => {
  const fields = new Reader(raw).fields()
  const numRows = find(fields, 3)
  const rowGroupsField = find(fields, 4)
  if (numRows === undefined || rowGroupsField === undefined) {
    throw new ParquetFooterError("footer lacks num_rows or row_groups")
  }
  if (find(fields, 8) !== undefined) throw new ParquetFooterError("encrypted Parquet files are not supported")
  const rowGroups = structList(raw, rowGroupsField).map((rg, index): RowGroupInfo => {
    const rowsField = find(rg.fields, 3)
    const colsField = find(rg.fields, 1)
    if (rowsField === undefined || colsField === undefined) {
      throw new ParquetFooterError(`row group ${index} lacks num_rows or columns`)
    }
    const columns = structList(raw, colsField).map((cc, c): ColumnChunkInfo => {
      if (find(cc.fields, 1) !== undefined) {
        throw new ParquetFooterError(`row group ${index} column ${c} lives in another file (file_path)`)
      }
      const mdField = find(cc.fields, 3)
      if (mdField === undefined) throw new ParquetFooterError(`row group ${index} column ${c} lacks meta_data`)
      const md = structFields(raw, mdField)
      const need = (id: number, what: string): number => {
        const f = find(md, id)
        if (f === undefined) throw new ParquetFooterError(`row group ${index} column ${c} lacks ${what}`)
        return readI64(raw, f)
      }
      const dict = find(md, 11)
      const dictOffset = dict === undefined ? 0 : readI64(raw, dict)
      const dataOffset = need(9, "data_page_offset")
      return {
        type: need(1, "type"),
        numValues: need(5, "num_values"),
        path: pathOf(raw, find(md, 3)),
        codec: need(4, "codec"),
        uncompressedBytes: need(6, "total_uncompressed_size"),
        compressedBytes: need(7, "total_compressed_size"),
        start: dictOffset > 0 && dictOffset < dataOffset ? dictOffset : dataOffset
      }
    })
    const start = columns.length === 0 ? 0 : Math.min(...columns.map((c) => c.start))
    const end = columns.length === 0 ? 0 : Math.max(...columns.map((c) => c.start + c.compressedBytes))
    return { rows: readI64(raw, rowsField), columns, start, end, raw: raw.slice(rg.start, rg.end) }
  })
  return { rows: readI64(raw, numRows), rowGroups, raw, fields }
}

/** Checks that every row group lies inside `[4, dataEnd)` (the bytes before the footer). */
export const checkRanges = (footer: FooterInfo, dataEnd: number): void => {
  footer.rowGroups.forEach((rg, i) => {
    if (rg.columns.length > 0 && (rg.start < MAGIC.length || rg.end > dataEnd || rg.end < rg.start)) {
      throw new ParquetFooterError(
        `row group ${i} claims bytes ${rg.start}..${rg.end}, outside the data section 4..${dataEnd}`
      )
    }
  })
}

// ---- re-emitting moved row groups -------------------------------------------------------------------------

const writeColumnMetaData = (w: Writer, src: Uint8Array, fields: ReadonlyArray<RawField>, shift: number): void => {
  w.beginStruct()
  for (const f of fields) {
    if (f.id === 9 || f.id === 10 || f.id === 11) w.i64Field(f.id, readI64(src, f) + shift)
    else if (f.id === 14 || f.id === 15) continue // bloom filter: lives outside the row group bytes
    else w.copyField(src, f)
  }
  w.endStruct()
}

const writeColumnChunk = (w: Writer, src: Uint8Array, fields: ReadonlyArray<RawField>, shift: number): void => {
  w.beginStruct()
  for (const f of fields) {
    if (f.id === 2) w.i64Field(2, readI64(src, f) + shift)
    else if (f.id === 3) {
      w.fieldHeader(3, T_STRUCT)
      writeColumnMetaData(w, src, structFields(src, f), shift)
    } else if (f.id >= 4 && f.id <= 7) continue // offset/column index: outside the row group bytes
    else w.copyField(src, f)
  }
  w.endStruct()
}

/** Re-encodes a `RowGroup` struct with every file offset moved by `shift` bytes (ordinal dropped). */
export const shiftRowGroup = (rawRowGroup: Uint8Array, shift: number): Uint8Array => {
  const w = new Writer()
  const fields = new Reader(rawRowGroup).fields()
  w.beginStruct()
  for (const f of fields) {
    if (f.id === 1) {
      const chunks = structList(rawRowGroup, f)
      w.fieldHeader(1, T_LIST)
      w.listHeader(chunks.length, T_STRUCT)
      for (const cc of chunks) writeColumnChunk(w, rawRowGroup, cc.fields, shift)
    } else if (f.id === 5) w.i64Field(5, readI64(rawRowGroup, f) + shift)
    else if (f.id === 7) continue // ordinal: position in the original file
    else w.copyField(rawRowGroup, f)
  }
  w.endStruct()
  return w.result()
}

/**
 * Encodes a `FileMetaData` that takes everything (version, schema, key/value metadata, created_by, column
 * orders) from `template` but holds `rows` and exactly `rowGroups` (already-encoded `RowGroup` structs).
 */
export const composeFooter = (template: FooterInfo, rows: number, rowGroups: ReadonlyArray<Uint8Array>): Uint8Array => {
  const w = new Writer()
  w.beginStruct()
  for (const f of template.fields) {
    if (f.id === 3) w.i64Field(3, rows)
    else if (f.id === 4) {
      w.fieldHeader(4, T_LIST)
      w.listHeader(rowGroups.length, T_STRUCT)
      for (const rg of rowGroups) w.bytes(rg)
    } else w.copyField(template.raw, f)
  }
  w.endStruct()
  return w.result()
}

/** `footer ‖ u32le(footer length) ‖ PAR1`: the tail of a Parquet file. */
export const footerTail = (footer: Uint8Array): Uint8Array => {
  const tail = new Uint8Array(footer.length + 8)
  tail.set(footer, 0)
  new DataView(tail.buffer).setUint32(footer.length, footer.length, true)
  tail.set(MAGIC, footer.length + 4)
  return tail
}

/**
 * A complete Parquet file holding only row group `index` of `footer`'s file: returns the buffer and the
 * offset at which the caller must place the row group's bytes (`rg.end - rg.start` of them).
 */
export const rowGroupFile = (footer: FooterInfo, index: number): { readonly file: Uint8Array; readonly dataAt: number } => {
  const rg = footer.rowGroups[index]
  const size = rg.end - rg.start
  const shift = MAGIC.length - rg.start
  const tail = footerTail(composeFooter(footer, rg.rows, [shiftRowGroup(rg.raw, shift)]))
  const file = new Uint8Array(MAGIC.length + size + tail.length)
  file.set(MAGIC, 0)
  file.set(tail, MAGIC.length + size)
  return { file, dataAt: MAGIC.length }
}

/** A Parquet file with the schema and metadata of `footer` and no row groups (for reading the schema). */
export const schemaOnlyFile = (footer: FooterInfo): Uint8Array => {
  const tail = footerTail(composeFooter(footer, 0, []))
  const file = new Uint8Array(MAGIC.length + tail.length)
  file.set(MAGIC, 0)
  file.set(tail, MAGIC.length)
  return file
}

/** Splits a complete in-memory Parquet file into its footer and data section (`[4, dataEnd)`). */
export const splitFile = (file: Uint8Array): { readonly footer: FooterInfo; readonly dataEnd: number } => {
  if (file.length < 12) throw new ParquetFooterError("shorter than a Parquet file can be")
  const len = new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(file.length - 8, true)
  const dataEnd = file.length - 8 - len
  if (dataEnd < MAGIC.length) throw new ParquetFooterError(`footer length ${len} exceeds the file`)
  const footer = parseFooter(file.subarray(dataEnd, file.length - 8))
  checkRanges(footer, dataEnd)
  return { footer, dataEnd }
}

/** A `PageHeader` as far as `read.ts` needs it. */
export interface PageHeaderInfo {
  /** parquet-format `PageType`: 0 DATA_PAGE, 2 DICTIONARY_PAGE, 3 DATA_PAGE_V2 (others are skipped by readers). */
  readonly type: number
  readonly uncompressedSize: number
  readonly compressedSize: number
  /** Values (levels) in a data page, entries in a dictionary page. */
  readonly numValues: number
  /** The values' encoding (data and dictionary pages). */
  readonly encoding: number
  /** The definition levels' encoding (data page v1). */
  readonly definitionEncoding: number
  /** Where the page body starts (just after the header). */
  readonly bodyAt: number
}

/** Parses the Thrift `PageHeader` that starts at `buf[pos]`. */
export const pageHeaderAt = (buf: Uint8Array, pos: number): PageHeaderInfo => {
  const r = new Reader(buf, pos)
  const fields = r.fields()
  const int = (fs: ReadonlyArray<RawField>, id: number, what: string): number => {
    const f = find(fs, id)
    if (f === undefined) throw new ParquetFooterError(`page header at byte ${pos} lacks ${what}`)
    return readI64(buf, f)
  }
  const type = int(fields, 1, "type")
  const data = find(fields, 5)
  const dict = find(fields, 7)
  const sub = data !== undefined ? structFields(buf, data) : dict !== undefined ? structFields(buf, dict) : undefined
  return {
    type,
    uncompressedSize: int(fields, 2, "uncompressed_page_size"),
    compressedSize: int(fields, 3, "compressed_page_size"),
    numValues: sub === undefined ? 0 : int(sub, 1, "num_values"),
    encoding: sub === undefined ? 0 : int(sub, 2, "encoding"),
    definitionEncoding: data === undefined || sub === undefined ? 0 : int(sub, 3, "definition_level_encoding"),
    bodyAt: r.pos
  }
}
