/**
 * Dense float matrices (embeddings, projected vectors) as Arrow IPC files: a `vector` column of
 * `FixedSizeList<Float32>[dim]` and, optionally, an `id` Int32 column, stored as a sequence of record batches.
 * Any Arrow implementation reads them (`pyarrow.ipc.open_file`, `arrow.tableFromIPC`).
 *
 * Writing goes batch by batch: each `write` encodes one record batch with apache-arrow's `RecordBatchFileWriter`
 * (the caller's `Float32Array` is referenced, not copied) and writes its bytes to the file before returning, so
 * memory holds at most one batch. `close` writes the footer and fsyncs.
 *
 * Reading does not go through apache-arrow's record batch reader: the footer and each batch's message header are
 * decoded with apache-arrow, and then the `Float32` values buffer (and the `id` values) are read straight from the
 * file into their destination — for `readMatrix`, into one contiguous row-major `Float32Array` allocated once from
 * the headers' row counts. No element-by-element copy, no intermediate buffer.
 *
 * Gotchas: vectors and ids are non-nullable; files with compressed IPC bodies, dictionaries or other columns are
 * rejected with a clear `ArtifactError`. Either every batch of a writer carries ids or none does.
 */
import * as arrow from "apache-arrow"
import { Footer } from "apache-arrow/ipc/metadata/file"
import { Effect, Semaphore, Stream } from "effect"
import * as fs from "node:fs"
import type { FileHandle } from "node:fs/promises"
import { artifactError, openRegularFile, readFully, writeFully } from "../file.ts"
import { ArtifactError } from "../errors.ts"
import { describeError } from "../../errors/describe.ts"

export interface Matrix {
  readonly rows: number
  readonly dim: number
  /** rows × dim values, row-major. */
  readonly data: Float32Array
}
export interface MatrixWriter {
  readonly write: (batch: Matrix, ids?: Int32Array) => Effect.Effect<void, ArtifactError>
  readonly close: Effect.Effect<number, ArtifactError>
}

/** Column names used in the file. */
export const VECTOR_COLUMN = "vector"
export const ID_COLUMN = "id"

const ARROW_MAGIC = Uint8Array.from("ARROW1", (c) => c.charCodeAt(0))

// ---- helpers -----------------------------------------------------------------------------------------------

/** Thrown by the pure parts (layout checks); turned into an `ArtifactError` at the Effect boundary. */
class LayoutError extends Error {
  override readonly name = "LayoutError"
}

const bytesOf = (view: ArrayBufferView): Uint8Array => new Uint8Array(view.buffer, view.byteOffset, view.byteLength)


/** Small IPC pieces (prefixes, flatbuffers, padding) are merged so one batch costs a few writes, not dozens. */
const coalesce = (chunks: ReadonlyArray<Uint8Array>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let small: Array<Uint8Array> = []
  const flushSmall = () => {
    if (small.length === 0) return
    const merged = new Uint8Array(small.reduce((n, c) => n + c.length, 0))
    let at = 0
    for (const c of small) {
      merged.set(c, at)
      at += c.length
    }
    out.push(merged)
    small = []
  }
  for (const c of chunks) {
    if (c.length < 65_536) small.push(c)
    else {
      flushSmall()
      out.push(c)
    }
  }
  flushSmall()
  return out
}

// ---- writing -----------------------------------------------------------------------------------------------

/**
 * A `RecordBatchFileWriter` whose bytes are collected synchronously (instead of queued for an async reader) so
 * each batch can be written to disk and forgotten before the next one is encoded.
 */
class CollectingFileWriter extends arrow.RecordBatchFileWriter {
  private collected: Array<Uint8Array> = []

  protected override _write(chunk: ArrayBufferView): this {
    if (this._started && chunk.byteLength > 0) {
      this.collected.push(bytesOf(chunk))
      this._position += chunk.byteLength
    }
    return this
  }

  /** The bytes produced since the last call. */
  take(): Array<Uint8Array> {
    const out = this.collected
    this.collected = []
    return out
  }
}

const matrixSchema = (dim: number, withIds: boolean): arrow.Schema => {
  const vector = new arrow.Field(
    VECTOR_COLUMN,
    new arrow.FixedSizeList(dim, new arrow.Field("item", new arrow.Float32(), false)),
    false
  )
  return new arrow.Schema(withIds ? [vector, new arrow.Field(ID_COLUMN, new arrow.Int32(), false)] : [vector])
}

const recordBatch = (schema: arrow.Schema, batch: Matrix, ids: Int32Array | undefined): arrow.RecordBatch => {
  const [vectorField] = schema.fields
  const child = arrow.makeData({ type: new arrow.Float32(), length: batch.rows * batch.dim, nullCount: 0, data: batch.data })
  const list = arrow.makeData({ type: vectorField.type, length: batch.rows, nullCount: 0, child })
  const children: Array<arrow.Data> = [list]
  if (ids !== undefined) children.push(arrow.makeData({ type: new arrow.Int32(), length: batch.rows, nullCount: 0, data: ids }))
  return new arrow.RecordBatch(
    schema,
    arrow.makeData({ type: new arrow.Struct(schema.fields), length: batch.rows, nullCount: 0, children })
  )
}

/**
 * Opens `path` for writing `dim`-wide vectors. Each `write` appends one record batch (ids optional, but the same
 * choice for every batch); `close` writes the footer, fsyncs and returns the row count. After a failure the writer
 * refuses further calls (the partial file is left for the runner to discard).
 */
export const openMatrixWriter: (path: string, dim: number) => Effect.Effect<MatrixWriter, ArtifactError> = Effect.fn(
  "matrix.openMatrixWriter"
)(function*(path: string, dim: number) {
  if (!Number.isSafeInteger(dim) || dim < 1) {
    return yield* artifactError(path, `cannot write ${path}: dim must be a positive integer, got ${dim}`)
  }
  const io = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, ArtifactError> =>
    Effect.tryPromise({ try: f, catch: (e) => artifactError(path, `cannot ${what} ${path}: ${describeError(e)}`, e) })
  const fh = yield* io("create", () => fs.promises.open(path, "w"))
  const lock = yield* Semaphore.make(1)
  const writer = new CollectingFileWriter()

  let state: "open" | "closed" | "failed" = "open"
  let position = 0
  let rows = 0
  let schema: arrow.Schema | undefined

  const abort: Effect.Effect<void> = Effect.suspend(() => {
    if (state !== "open") return Effect.void
    state = "failed"
    return io("close", () => fh.close()).pipe(
      Effect.catch((e) => Effect.logWarning(`matrix writer: ${e.message} (after an earlier failure)`))
    )
  })
  const guarded = <A>(what: string, body: () => Effect.Effect<A, ArtifactError>): Effect.Effect<A, ArtifactError> =>
    lock.withPermits(1)(
      Effect.suspend(() =>
        state === "open"
          ? // uninterruptible: an interrupted write would leave the file and the writer's position out of step
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
  const flushBytes = Effect.suspend(() => {
    const chunks = coalesce(writer.take())
    return io("write", () => writeFully(fh, chunks, position)).pipe(
      Effect.map((written) => {
        position += written
      })
    )
  })

  const write = (batch: Matrix, ids?: Int32Array): Effect.Effect<void, ArtifactError> =>
    guarded("write", () =>
      Effect.gen(function*() {
        const where = `cannot write ${path} (rows ${rows}..)`
        if (batch.dim !== dim) {
          return yield* artifactError(path, `${where}: batch has dim ${batch.dim}, the matrix has dim ${dim}`)
        }
        if (!Number.isSafeInteger(batch.rows) || batch.rows < 0) {
          return yield* artifactError(path, `${where}: batch rows must be a non-negative integer, got ${batch.rows}`)
        }
        if (batch.data.length !== batch.rows * dim) {
          return yield* artifactError(
            path,
            `${where}: batch data holds ${batch.data.length} floats, expected rows × dim = ${batch.rows} × ${dim} = ${batch.rows * dim}`
          )
        }
        if (ids !== undefined && ids.length !== batch.rows) {
          return yield* artifactError(path, `${where}: ${ids.length} ids for ${batch.rows} rows`)
        }
        if (batch.rows === 0) return
        const withIds = ids !== undefined
        if (schema === undefined) schema = matrixSchema(dim, withIds)
        else if ((schema.fields.length === 2) !== withIds) {
          return yield* artifactError(
            path,
            `${where}: ${withIds ? "ids given, but earlier batches had none" : "no ids given, but earlier batches had ids"}`
          )
        }
        const encoded = recordBatch(schema, batch, ids)
        yield* Effect.try({
          try: () => writer.write(encoded),
          catch: (e) => artifactError(path, `${where}: apache-arrow could not encode the batch: ${describeError(e)}`, e)
        })
        yield* flushBytes
        rows += batch.rows
      })
    )

  const close: Effect.Effect<number, ArtifactError> = guarded("close", () =>
    Effect.gen(function*() {
      yield* Effect.try({
        try: () => {
          // An empty matrix still gets a schema (without ids) so readers see its dim.
          if (schema === undefined) writer.reset(undefined, matrixSchema(dim, false))
          writer.close()
        },
        catch: (e) => artifactError(path, `cannot finish ${path}: ${describeError(e)}`, e)
      })
      yield* flushBytes
      yield* io("fsync", () => fh.sync())
      state = "closed"
      yield* io("close", () => fh.close())
      return rows
    })
  )

  const matrixWriter: MatrixWriter = { write, close }
  return matrixWriter
})

// ---- reading -----------------------------------------------------------------------------------------------

/** Where one record batch's vectors (and ids) lie in the file. */
interface BatchLayout {
  readonly rows: number
  /** Absolute file offset and byte length of the Float32 values. */
  readonly vectorsAt: number
  readonly idsAt: number | undefined
}

interface ArrowSource {
  readonly path: string
  readonly fh: FileHandle
  readonly dim: number
  readonly hasIds: boolean
  readonly rows: number
  readonly batches: ReadonlyArray<BatchLayout>
}

/** Which schema fields hold what, and each field's first node and buffer index in a record batch. */
interface Layout {
  readonly dim: number
  readonly vectorNode: number
  readonly vectorBuffer: number
  readonly idNode: number | undefined
  readonly idBuffer: number | undefined
}

const layoutOf = (schema: arrow.Schema): Layout => {
  let node = 0
  let buffer = 0
  let vector: { node: number; buffer: number; dim: number } | undefined
  let id: { node: number; buffer: number } | undefined
  for (const f of schema.fields) {
    const t = f.type
    if (f.name === VECTOR_COLUMN && arrow.DataType.isFixedSizeList(t)) {
      const child = t.children[0].type
      if (!(arrow.DataType.isFloat(child) && child.precision === arrow.Precision.SINGLE)) {
        throw new LayoutError(`column "${VECTOR_COLUMN}" holds ${String(child)}, expected Float32`)
      }
      // FixedSizeList: one node + validity buffer; its Float32 child: one node + validity and values buffers.
      vector = { node, buffer, dim: t.listSize }
      node += 2
      buffer += 3
    } else if (f.name === ID_COLUMN && arrow.DataType.isInt(t) && t.bitWidth === 32 && t.isSigned) {
      id = { node, buffer }
      node += 1
      buffer += 2
    } else {
      throw new LayoutError(`unexpected column "${f.name}" of type ${String(t)} (a matrix has "vector" and optionally "id")`)
    }
  }
  if (vector === undefined) throw new LayoutError(`no "${VECTOR_COLUMN}" column of FixedSizeList<Float32>`)
  return { dim: vector.dim, vectorNode: vector.node, vectorBuffer: vector.buffer, idNode: id?.node, idBuffer: id?.buffer }
}

/** Decodes the message at `block` (already read into `meta`) and locates its buffers. */
const batchLayout = (
  layout: Layout,
  meta: Uint8Array,
  block: { readonly offset: number; readonly metaDataLength: number; readonly bodyLength: number },
  index: number
): BatchLayout => {
  const view = new DataView(meta.buffer, meta.byteOffset, meta.byteLength)
  const first = view.getInt32(0, true)
  const [length, at] = first === -1 ? [view.getInt32(4, true), 8] : [first, 4]
  if (length < 0 || at + length > meta.length) throw new LayoutError(`batch ${index}: bad message length ${length}`)
  const message = arrow.Message.decode(meta.subarray(at, at + length))
  if (!message.isRecordBatch()) throw new LayoutError(`batch ${index}: expected a record batch message`)
  const header = message.header()
  if (header.compression !== null) throw new LayoutError(`batch ${index}: compressed IPC bodies are not supported`)
  const rows = header.length
  const bodyStart = block.offset + block.metaDataLength
  const region = (i: number, bytes: number, what: string): number => {
    const r = header.buffers[i]
    if (r === undefined || r.length < bytes || r.offset + bytes > block.bodyLength) {
      throw new LayoutError(`batch ${index}: ${what} buffer does not hold ${bytes} bytes`)
    }
    return bodyStart + r.offset
  }
  const node = (i: number, expected: number, what: string): void => {
    const n = header.nodes[i]
    if (n === undefined || n.length !== expected) throw new LayoutError(`batch ${index}: ${what} has the wrong length`)
    if (n.nullCount !== 0) throw new LayoutError(`batch ${index}: ${what} holds nulls`)
  }
  node(layout.vectorNode, rows, "vector column")
  node(layout.vectorNode + 1, rows * layout.dim, "vector values")
  const vectorsAt = region(layout.vectorBuffer + 2, rows * layout.dim * 4, "vector values")
  let idsAt: number | undefined
  if (layout.idNode !== undefined && layout.idBuffer !== undefined) {
    node(layout.idNode, rows, "id column")
    idsAt = region(layout.idBuffer + 1, rows * 4, "id values")
  }
  return { rows, vectorsAt, idsAt }
}

/** Opens `path`, checks its magic numbers, decodes the footer and every batch header; closes with the scope. */
const openArrow = Effect.fn("matrix.openArrow")(function*(path: string) {
  const { fh, io, size } = yield* openRegularFile(path)
  const magicLength = ARROW_MAGIC.length
  if (size < 2 * magicLength + 6) return yield* artifactError(path, `not an Arrow IPC file: ${path} has only ${size} bytes`)
  const head = new Uint8Array(magicLength)
  const tail = new Uint8Array(4 + magicLength)
  yield* io(() => readFully(fh, head, 0))
  yield* io(() => readFully(fh, tail, size - tail.length))
  const isMagic = (b: Uint8Array) => b.every((x, i) => x === ARROW_MAGIC[i])
  if (!isMagic(head)) return yield* artifactError(path, `not an Arrow IPC file: ${path} does not start with ARROW1`)
  if (!isMagic(tail.subarray(4))) {
    return yield* artifactError(path, `truncated or not an Arrow IPC file: ${path} (${size} bytes) does not end with ARROW1`)
  }
  const footerLength = new DataView(tail.buffer).getInt32(0, true)
  if (footerLength <= 0 || footerLength > size - tail.length - magicLength) {
    return yield* artifactError(path, `corrupt Arrow IPC file: ${path} claims a ${footerLength}-byte footer in ${size} bytes`)
  }
  const footerBytes = new Uint8Array(footerLength)
  yield* io(() => readFully(fh, footerBytes, size - tail.length - footerLength))
  const footer = yield* Effect.try({
    try: () => Footer.decode(footerBytes),
    catch: (e) => artifactError(path, `corrupt Arrow IPC footer in ${path}: ${describeError(e)}`, e)
  })
  const layout = yield* Effect.try({
    try: () => {
      if (footer.numDictionaries > 0) throw new LayoutError("dictionary batches are not supported")
      return layoutOf(footer.schema)
    },
    catch: (e) => artifactError(path, `${path} is not a matrix file: ${describeError(e)}`, e)
  })
  const dataEnd = size - tail.length - footerLength
  const batches: Array<BatchLayout> = []
  for (let i = 0; i < footer.numRecordBatches; i++) {
    const block = footer.getRecordBatch(i)
    if (block === null || block.offset < magicLength || block.offset + block.metaDataLength + block.bodyLength > dataEnd) {
      return yield* artifactError(path, `corrupt Arrow IPC file: ${path}: batch ${i} lies outside the data section`)
    }
    const meta = new Uint8Array(block.metaDataLength)
    yield* io(() => readFully(fh, meta, block.offset))
    batches.push(
      yield* Effect.try({
        try: () => batchLayout(layout, meta, block, i),
        catch: (e) => artifactError(path, `corrupt Arrow IPC file: ${path}: ${describeError(e)}`, e)
      })
    )
  }
  const source: ArrowSource = {
    path,
    fh,
    dim: layout.dim,
    hasIds: layout.idNode !== undefined,
    rows: batches.reduce((n, b) => n + b.rows, 0),
    batches
  }
  return source
})

const readBatchInto = (
  source: ArrowSource,
  batch: BatchLayout,
  index: number,
  vectors: Float32Array,
  ids: Int32Array | undefined
): Effect.Effect<void, ArtifactError> =>
  Effect.tryPromise({
    try: async () => {
      await readFully(source.fh, bytesOf(vectors), batch.vectorsAt)
      if (ids !== undefined && batch.idsAt !== undefined) await readFully(source.fh, bytesOf(ids), batch.idsAt)
    },
    catch: (e) => artifactError(source.path, `cannot read batch ${index} of ${source.path}: ${describeError(e)}`, e)
  })

/** The whole matrix as one contiguous row-major `Float32Array` (and the ids, if the file has them). */
export const readMatrix: (path: string) => Effect.Effect<Matrix & { readonly ids?: Int32Array }, ArtifactError> =
  Effect.fn("matrix.readMatrix")(function*(path: string) {
    const source = yield* openArrow(path)
    const { rows, dim } = source
    const data = new Float32Array(rows * dim)
    const ids = source.hasIds ? new Int32Array(rows) : undefined
    let row = 0
    for (const [i, batch] of source.batches.entries()) {
      const vectors = data.subarray(row * dim, (row + batch.rows) * dim)
      yield* readBatchInto(source, batch, i, vectors, ids?.subarray(row, row + batch.rows))
      row += batch.rows
    }
    const matrix: Matrix & { readonly ids?: Int32Array } = ids === undefined ? { rows, dim, data } : { rows, dim, data, ids }
    return matrix
  }, Effect.scoped)

/** Streams the matrix one stored record batch at a time (each batch's data is its own `Float32Array`). */
export const readMatrixBatches = (path: string): Stream.Stream<Matrix & { readonly ids?: Int32Array }, ArtifactError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const source = yield* openArrow(path)
      return Stream.fromIterable(source.batches.entries()).pipe(
        Stream.mapEffect(([i, batch]) =>
          Effect.gen(function*() {
            const data = new Float32Array(batch.rows * source.dim)
            const ids = source.hasIds ? new Int32Array(batch.rows) : undefined
            yield* readBatchInto(source, batch, i, data, ids)
            const matrix: Matrix & { readonly ids?: Int32Array } =
              ids === undefined ? { rows: batch.rows, dim: source.dim, data } : { rows: batch.rows, dim: source.dim, data, ids }
            return matrix
          })
        )
      )
    })
  ).pipe(Stream.withSpan("matrix.readMatrixBatches", { attributes: { path } }))

/** Rows and dim, from the footer and batch headers (no vector data is read). */
export const matrixInfo: (path: string) => Effect.Effect<{ readonly rows: number; readonly dim: number }, ArtifactError> =
  Effect.fn("matrix.matrixInfo")(function*(path: string) {
    const { rows, dim } = yield* openArrow(path)
    return { rows, dim }
  }, Effect.scoped)
