/**
 * Resumable, length-bucketed batched computation of a matrix artifact (the encoder's z_F, the teacher's h_E).
 *
 * Batching: rows are taken in windows of `batchSize × WINDOW_BATCHES` consecutive rows; inside a window they are
 * ordered by token length (ties by row index) and cut into batches of `batchSize`, so a batch pads its rows to a
 * similar length (padding is masked out, so a row's vector does not depend on its batch-mates beyond float
 * rounding; it costs compute). Batch numbers run over the windows in order; every batch but the last has
 * `batchSize` rows.
 *
 * Each finished batch is kept in the stage's scratch folder:
 *   `<prefix>-<000012>.f32`   rows × dim little-endian float32, written durably under a temporary name, then renamed;
 *   `<prefix>-<000012>.done`  a small JSON marker { rows, dim, bytes, sha256, rowsSha256 } written atomically after
 *                             the data (`rowsSha256` binds the data to the row indices it holds).
 * A batch counts as finished only when its marker exists and agrees with the data file and the expected rows;
 * anything else is recomputed. After a crash, a rerun with the same scratch folder skips finished batches and
 * computes the rest. The artifact is assembled at the end, window by window, in row order (record batches of
 * `batchSize` rows, ids = row index), so a resumed run writes exactly the bytes of an uninterrupted one.
 */
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { ArtifactError, StageError } from "../pipeline/errors.ts"
import { errnoCode } from "../formats/file.ts"
import { writeFileAtomicSync } from "../pipeline/fsAtomic.ts"
import { asStageError } from "../pipeline/stageError.ts"
import { openMatrixWriter } from "../formats/arrow/matrix.ts"
import type { FinishedShard, Progress, ShardContext, ShardRange } from "../pipeline/stage.ts"
import { consecutiveRanges } from "../pipeline/shards.ts"
import { bytesOf, readF32File, requireLittleEndian, writeF32File } from "./f32File.ts"
import { tableRowCount } from "../formats/parquet/table.ts"
import { describeError } from "../errors/describe.ts"

/** Batches per length-sorting window. */
export const WINDOW_BATCHES = 64

export interface BatchJob {
  /** The stage (for errors). */
  readonly stage: string
  /** Progress label, e.g. `zF.train`. */
  readonly label: string
  /** Scratch file prefix, e.g. `train`. */
  readonly prefix: string
  readonly batchSize: number
  readonly dim: number
  /** Token length of every row (its count is the row count); rows of similar length are batched together. */
  readonly lengths: ArrayLike<number>
  /** Computes the given rows (in that order) → rows.length × dim values. May throw (reported as a StageError). */
  readonly compute: (rows: Int32Array) => Promise<Float32Array>
}

export interface BatchJobResult {
  readonly rows: number
  readonly batches: number
  /** Batches computed in this run (the others were reused from scratch). */
  readonly computed: number
  readonly reused: number
  /** Real tokens / (rows × longest row of their batch), over the batches computed in this run (1 = no padding). */
  readonly fill: number
}

interface Marker {
  readonly rows: number
  readonly dim: number
  readonly bytes: number
  readonly sha256: string
  readonly rowsSha256: string
}

/** Paths of batch `index`'s data file and marker. */
export const batchFiles = (scratchDir: string, prefix: string, index: number): { readonly data: string; readonly marker: string } => {
  const base = path.join(scratchDir, `${prefix}-${String(index).padStart(6, "0")}`)
  return { data: `${base}.f32`, marker: `${base}.done` }
}

/**
 * The batches of a job: row indices of each batch, in batch order (windows of `batchSize × WINDOW_BATCHES` rows,
 * each sorted by length, ties by row index).
 */
export const planBatches = (lengths: ArrayLike<number>, batchSize: number): Array<Int32Array> => {
  const n = lengths.length
  const window = batchSize * WINDOW_BATCHES
  const out: Array<Int32Array> = []
  for (let w0 = 0; w0 < n; w0 += window) {
    const w1 = Math.min(n, w0 + window)
    const rows = Int32Array.from({ length: w1 - w0 }, (_, i) => w0 + i)
    rows.sort((a, b) => lengths[a] - lengths[b] || a - b)
    for (let b0 = 0; b0 < rows.length; b0 += batchSize) out.push(rows.slice(b0, Math.min(rows.length, b0 + batchSize)))
  }
  return out
}

const sha256 = (b: Uint8Array): string => crypto.createHash("sha256").update(b).digest("hex")

const readIfExists = (file: string): Buffer | undefined => {
  try {
    return fs.readFileSync(file)
  } catch (cause) {
    if (errnoCode(cause) === "ENOENT") return undefined
    throw cause
  }
}

const isMarker = (u: unknown): u is Marker => {
  if (typeof u !== "object" || u === null) return false
  const m = u as Record<string, unknown>
  return (
    typeof m.rows === "number" &&
    typeof m.dim === "number" &&
    typeof m.bytes === "number" &&
    typeof m.sha256 === "string" &&
    typeof m.rowsSha256 === "string"
  )
}

const NOT_YET = "not computed yet"

/**
 * The values of a finished batch holding `rows`, or the reason it is not usable (absent, or a marker that disagrees
 * with the data or with the rows — e.g. a data file torn by a crash before its marker was written).
 */
export const loadFinishedBatch = (
  scratchDir: string,
  prefix: string,
  index: number,
  rows: Int32Array,
  dim: number
): { readonly ok: true; readonly data: Float32Array } | { readonly ok: false; readonly reason: string } => {
  const files = batchFiles(scratchDir, prefix, index)
  requireLittleEndian(files.data)
  const markerText = readIfExists(files.marker)
  if (markerText === undefined) return { ok: false, reason: NOT_YET }
  let marker: unknown
  try {
    marker = JSON.parse(markerText.toString("utf8"))
  } catch (cause) {
    return { ok: false, reason: `marker ${files.marker} is not JSON (${String(cause)})` }
  }
  if (!isMarker(marker)) return { ok: false, reason: `marker ${files.marker} lacks rows/dim/bytes/sha256/rowsSha256` }
  const n = rows.length
  if (marker.rows !== n || marker.dim !== dim || marker.rowsSha256 !== sha256(bytesOf(rows))) {
    return { ok: false, reason: `marker describes other rows (${marker.rows}×${marker.dim}), expected ${n}×${dim}` }
  }
  const buf = readIfExists(files.data)
  if (buf === undefined) return { ok: false, reason: `data file ${files.data} is missing` }
  if (buf.byteLength !== marker.bytes || buf.byteLength !== n * dim * 4) {
    return { ok: false, reason: `data file has ${buf.byteLength} bytes, expected ${n * dim * 4}` }
  }
  if (sha256(buf) !== marker.sha256) return { ok: false, reason: `data file ${files.data} does not match its marker's SHA-256` }
  const data = new Float32Array(n * dim)
  bytesOf(data).set(buf)
  return { ok: true, data }
}

/** Stores a finished batch: the data file (durable, renamed into place), then its marker (atomically). */
export const saveFinishedBatch = (
  scratchDir: string,
  prefix: string,
  index: number,
  data: Float32Array,
  rows: Int32Array,
  dim: number
): void => {
  const files = batchFiles(scratchDir, prefix, index)
  requireLittleEndian(files.data)
  if (data.length !== rows.length * dim) throw new Error(`batch ${index}: ${data.length} values, expected ${rows.length}×${dim}`)
  const bytes = bytesOf(data)
  // a stale marker must never vouch for a new data file: remove it first
  fs.rmSync(files.marker, { force: true })
  writeFileAtomicSync(files.data, bytes)
  const marker: Marker = { rows: rows.length, dim, bytes: bytes.byteLength, sha256: sha256(bytes), rowsSha256: sha256(bytesOf(rows)) }
  writeFileAtomicSync(files.marker, JSON.stringify(marker))
}

const describe = (cause: unknown): string => describeError(cause)

/** Batch plan, reuse statistics and a loader of finished batches after `computeBatches`. */
interface ComputedBatches {
  readonly plan: ReadonlyArray<Int32Array>
  readonly load: (i: number) => Effect.Effect<ReturnType<typeof loadFinishedBatch>, ArtifactError>
  readonly computed: number
  readonly reused: number
  readonly fill: number
}

/** Computes every batch of `job` not already finished in `scratchDir` (see the module doc). */
const computeBatches = (
  job: BatchJob,
  scratchDir: string,
  progress: Progress,
  log: (line: string) => void
): Effect.Effect<ComputedBatches, StageError | ArtifactError> =>
  Effect.gen(function*() {
    const { batchSize, dim, lengths } = job
    const n = lengths.length
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      return yield* new StageError({ stage: job.stage, message: `batch size must be a whole number ≥ 1, got ${batchSize}` })
    }
    yield* Effect.try({
      try: () => fs.mkdirSync(scratchDir, { recursive: true }),
      catch: (cause) => new ArtifactError({ path: scratchDir, message: `cannot create the scratch folder: ${describe(cause)}`, cause })
    })
    const plan = planBatches(lengths, batchSize)
    const load = (i: number) =>
      Effect.try({
        try: () => loadFinishedBatch(scratchDir, job.prefix, i, plan[i], dim),
        catch: (cause) =>
          new ArtifactError({ path: batchFiles(scratchDir, job.prefix, i).data, message: `cannot read a scratch batch: ${describe(cause)}`, cause })
      })
    let computed = 0
    let reused = 0
    let realTokens = 0
    let paddedTokens = 0
    const notes: Array<string> = []
    progress.setTotal(n)
    for (let i = 0; i < plan.length; i++) {
      const rows = plan[i]
      const found = yield* load(i)
      if (found.ok) {
        reused++
      } else {
        if (found.reason !== NOT_YET) notes.push(`batch ${i}: ${found.reason}`)
        const data = yield* Effect.tryPromise({
          try: () => job.compute(rows),
          catch: (cause) =>
            new StageError({ stage: job.stage, message: `${job.label}: batch ${i} (rows ${rows[0]}, …) failed: ${describe(cause)}`, cause })
        })
        if (data.length !== rows.length * dim) {
          return yield* new StageError({
            stage: job.stage,
            message: `${job.label}: batch ${i} gave ${data.length} values, expected ${rows.length}×${dim}`
          })
        }
        yield* Effect.try({
          try: () => saveFinishedBatch(scratchDir, job.prefix, i, data, rows, dim),
          catch: (cause) =>
            new ArtifactError({ path: batchFiles(scratchDir, job.prefix, i).data, message: `cannot store a scratch batch: ${describe(cause)}`, cause })
        })
        computed++
        let longest = 0
        for (const r of rows) {
          realTokens += lengths[r]
          longest = Math.max(longest, lengths[r])
        }
        paddedTokens += longest * rows.length
      }
      progress.advance(rows.length)
      yield* Effect.yieldNow
    }
    progress.done()
    if (reused > 0) log(`${job.label}: reused ${reused} of ${plan.length} finished batches from ${scratchDir}`)
    for (const note of notes.slice(0, 5)) log(`${job.label}: recomputed ${note}`)

    return { plan, load, computed, reused, fill: paddedTokens === 0 ? 1 : realTokens / paddedTokens }
  })

/**
 * Runs `job` batch by batch (skipping batches finished in `scratchDir`), then writes the matrix artifact `out`
 * (row order, ids = row index). `progress` advances by rows; `log` receives a line when batches are reused.
 */
export const runBatchJob = (
  job: BatchJob,
  scratchDir: string,
  out: string,
  progress: Progress,
  log: (line: string) => void
): Effect.Effect<BatchJobResult, StageError | ArtifactError> =>
  Effect.gen(function*() {
    const { batchSize, dim, lengths } = job
    const n = lengths.length
    const { plan, load, computed, reused, fill } = yield* computeBatches(job, scratchDir, progress, log)
    // assemble the artifact window by window, in row order
    const writer = yield* openMatrixWriter(out, dim)
    const window = batchSize * WINDOW_BATCHES
    let next = 0
    for (let w0 = 0; w0 < n; w0 += window) {
      const w1 = Math.min(n, w0 + window)
      const buf = new Float32Array((w1 - w0) * dim)
      for (; next < plan.length && plan[next][0] < w1; next++) {
        const found = yield* load(next)
        if (!found.ok) {
          return yield* new ArtifactError({
            path: batchFiles(scratchDir, job.prefix, next).data,
            message: `scratch batch ${next} changed while the artifact was assembled: ${found.reason}`
          })
        }
        const rows = plan[next]
        for (let r = 0; r < rows.length; r++) buf.set(found.data.subarray(r * dim, (r + 1) * dim), (rows[r] - w0) * dim)
      }
      for (let r0 = w0; r0 < w1; r0 += batchSize) {
        const r1 = Math.min(w1, r0 + batchSize)
        const ids = Int32Array.from({ length: r1 - r0 }, (_, k) => r0 + k)
        yield* writer.write({ rows: r1 - r0, dim, data: buf.subarray((r0 - w0) * dim, (r1 - w0) * dim) }, ids)
      }
    }
    const written = yield* writer.close
    return { rows: written, batches: plan.length, computed, reused, fill }
  })

/**
 * Shards of a batched matrix job over `tables` (input artifact names): one per window of `batchSize ×
 * WINDOW_BATCHES` rows of each table, in table then row order, and one empty shard for an empty table (so the merge
 * still learns the vector size). Batches never cross windows, so a shard computes exactly the batches that
 * `runBatchJob` computes for those rows, and `mergeMatrixShards` writes the same bytes.
 */
export const planMatrixShards = (
  stage: string,
  inputs: Readonly<Record<string, string>>,
  tables: ReadonlyArray<string>,
  batchSize: number
): Effect.Effect<Array<ShardRange>, StageError> =>
  Effect.gen(function*() {
    const window = batchSize * WINDOW_BATCHES
    const out: Array<ShardRange> = []
    for (const table of tables) {
      const n = yield* tableRowCount(inputs[table]).pipe(asStageError(stage))
      if (n === 0) out.push({ table, start: 0, end: 0 })
      out.push(...consecutiveRanges(table, n, window))
    }
    return out
  })

const SHARD_FILE = "matrix.f32"

/**
 * Computes one shard of a matrix job: `job.lengths` are the shard's rows (row 0 = the range's first row) and
 * `compute` gets indices into them. Writes `<outDir>/matrix.f32` (rows × dim float32, row order); the batches are
 * kept in `scratch` (the shard's scratch folder, which outlives a failed attempt), so an attempt after a crash
 * computes only the batches the last one did not finish.
 */
export const runMatrixShard = (
  job: BatchJob,
  outDir: string,
  scratch: string,
  progress: Progress,
  log: (line: string) => void
): Effect.Effect<{ readonly rows: number; readonly metrics: Record<string, unknown> }, StageError | ArtifactError> =>
  Effect.gen(function*() {
    const { plan, load, computed, fill } = yield* computeBatches(job, scratch, progress, log)
    const n = job.lengths.length
    const buf = new Float32Array(n * job.dim)
    for (let i = 0; i < plan.length; i++) {
      const found = yield* load(i)
      if (!found.ok) {
        return yield* new ArtifactError({ path: batchFiles(scratch, job.prefix, i).data, message: `scratch batch ${i} vanished: ${found.reason}` })
      }
      const rows = plan[i]
      for (let r = 0; r < rows.length; r++) buf.set(found.data.subarray(r * job.dim, (r + 1) * job.dim), rows[r] * job.dim)
    }
    const file = path.join(outDir, SHARD_FILE)
    yield* Effect.try({
      try: () => writeF32File(file, buf),
      catch: (cause) => new ArtifactError({ path: file, message: `cannot write the shard: ${describe(cause)}`, cause })
    })
    return { rows: n, metrics: { dim: job.dim, batches: plan.length, computed, fill: Number(fill.toFixed(3)) } }
  })

/**
 * Writes the matrix artifact `out` from the finished shards of one table (contiguous from row 0, in row order):
 * record batches of `batchSize` rows restarting at every window, ids = row index — the bytes `runBatchJob` writes.
 */
export const mergeMatrixShards = (
  stage: string,
  out: string,
  batchSize: number,
  shards: ReadonlyArray<FinishedShard>
): Effect.Effect<number, StageError | ArtifactError> =>
  Effect.gen(function*() {
    const first = shards[0]
    const dim = first?.metrics["dim"]
    if (first === undefined || typeof dim !== "number") {
      return yield* new StageError({ stage, message: `${out}: no shard says the vector size` })
    }
    const writer = yield* openMatrixWriter(out, dim)
    let next = 0
    for (const shard of shards) {
      const { start, end } = shard.range
      if (start !== next || shard.rows !== end - start) {
        return yield* new StageError({
          stage,
          message: `shards of ${shard.range.table} are not contiguous: expected row ${next}, got [${start}, ${end}) with ${shard.rows} rows`
        })
      }
      const file = path.join(shard.dir, SHARD_FILE)
      const data = yield* Effect.try({
        try: () => readF32File(file, (end - start) * dim),
        catch: (cause) => new ArtifactError({ path: file, message: `cannot read the shard: ${describe(cause)}`, cause })
      })
      for (let r0 = start; r0 < end; r0 += batchSize) {
        const r1 = Math.min(end, r0 + batchSize)
        const ids = Int32Array.from({ length: r1 - r0 }, (_, k) => r0 + k)
        yield* writer.write({ rows: r1 - r0, dim, data: data.subarray((r0 - start) * dim, (r1 - start) * dim) }, ids)
      }
      next = end
    }
    return yield* writer.close
  })

/**
 * Writes the matrix outputs `<prefix>.<table>` (e.g. `zF.train`) from the finished shards of each table; returns
 * the rows per output.
 */
export const mergeMatrixOutputs = (
  stage: string,
  outputs: Readonly<Record<string, string>>,
  prefix: string,
  tables: ReadonlyArray<string>,
  batchSize: number,
  shards: ReadonlyArray<FinishedShard>
): Effect.Effect<Record<string, number>, StageError> =>
  Effect.gen(function*() {
    const rows: Record<string, number> = {}
    for (const table of tables) {
      const name = `${prefix}.${table}`
      rows[name] = yield* mergeMatrixShards(stage, outputs[name], batchSize, shards.filter((s) => s.range.table === table))
        .pipe(asStageError(stage))
    }
    return rows
  })

/**
 * `runMatrixShard` for the shard in `ctx`, filling output `<prefix>.<table>`: `seqs` are the range's token id
 * sequences (their lengths batch them), `compute` gets the sequences of one batch.
 */
export const runSequenceShard = (
  stage: string,
  ctx: ShardContext<unknown>,
  prefix: string,
  batchSize: number,
  dim: number,
  seqs: ReadonlyArray<ReadonlyArray<number>>,
  compute: (batch: ReadonlyArray<ReadonlyArray<number>>) => Promise<Float32Array>
): Effect.Effect<{ readonly rows: number; readonly metrics: Record<string, unknown> }, StageError> => {
  const { table, start, end } = ctx.range
  const label = `${prefix}.${table}[${start}, ${end})`
  return runMatrixShard(
    { stage, label, prefix: table, batchSize, dim, lengths: seqs.map((q) => q.length), compute: (rows) => compute(Array.from(rows, (i) => seqs[i])) },
    ctx.outDir,
    ctx.scratchDir,
    ctx.progress(label, seqs.length),
    ctx.log
  ).pipe(asStageError(stage))
}
