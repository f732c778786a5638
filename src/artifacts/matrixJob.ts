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
import * as os from "node:os"
import * as path from "node:path"
import { ArtifactError, StageError } from "../pipeline/errors.ts"
import { errnoCode, writeFileAtomicSync } from "../pipeline/fsAtomic.ts"
import { openMatrixWriter } from "../pipeline/matrix.ts"
import type { Progress } from "../pipeline/stage.ts"

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

const requireLittleEndian = (file: string): void => {
  if (os.endianness() !== "LE") throw new Error(`${file}: only little-endian hosts are supported`)
}

const bytesOf = (a: Float32Array | Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

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

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

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
    return { rows: written, batches: plan.length, computed, reused, fill: paddedTokens === 0 ? 1 : realTokens / paddedTokens }
  })
