/**
 * Exact checkpoint/resume of a training loop, and the seeded data order the loop walks.
 *
 * A `TrainState` is everything a loop needs to continue bit-for-bit: the step, the parameters (host tensors by
 * name), the optimizer's state (opaque named Float32Arrays plus named scalars, e.g. AdamW's m/v and its step
 * count), the hard-negative queue, any RNG states (opaque integer arrays; the dropout stream of this project is a
 * pure function of (seed, step, micro) and needs none), the data-order cursor, and free JSON `extra`.
 *
 * On disk a state is one folder:
 *   state.json   — format/version, step, scalars, rng, cursor, extra, the tensor index (group, name, shape,
 *                  element offset and length) and the size and SHA-256 of each binary file;
 *   tensors.bin  — every params/optimizer tensor as little-endian float32, back to back, in index order;
 *   queue.bin    — the queue's fp16 bits (little-endian uint16), present only with a queue.
 * `writeTrainState` builds the folder under a temporary name beside the target (each file fsynced, then the
 * folder), renames it into place and fsyncs the parent, so a crash leaves either the old folder or the new one.
 * `readTrainState` checks sizes and hashes and fails with an `ArtifactError` on any mismatch.
 *
 * `saveCheckpoint(root, state)` writes `root/step-<000000123>` and then points `root/LATEST` at it (a one-line file
 * replaced by tmp+fsync+rename), optionally pruning older step folders; `loadLatestCheckpoint(root)` reads what
 * LATEST names, or gives null when there is none.
 */
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ArtifactError } from "../pipeline/errors.ts"
import { deriveSeed, makeRng } from "../models/rng.ts"
import type { AdamWState } from "../backend/adamw.ts"
import type { HostTensor } from "./hostMath.ts"
import type { QueueSnapshot } from "./queue.ts"
import { describeError } from "../errors/describe.ts"

// ---------------------------------------------------------------------------------------------------------------
// data order

/** Where the loop stands in the data: epoch number and position inside that epoch's permutation. */
export interface DataCursor {
  readonly epoch: number
  readonly index: number
}

/** The permutation of 0 … n−1 for `epoch`: Fisher–Yates driven by `makeRng(deriveSeed(seed, "epoch:<epoch>"))`. */
export const epochPermutation = (seed: number, epoch: number, n: number): Uint32Array => {
  const perm = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[i] = i
  const rng = makeRng(deriveSeed(seed, `epoch:${epoch}`))
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1))
    const t = perm[i]
    perm[i] = perm[j]
    perm[j] = t
  }
  return perm
}

export interface Batch {
  /** Example indices of this batch. */
  readonly indices: Uint32Array
  /** The epoch the batch belongs to. */
  readonly epoch: number
  /** The cursor to pass for the next batch (store this one in a checkpoint). */
  readonly next: DataCursor
}

/**
 * A seeded, resumable order over n examples: epoch e visits `epochPermutation(seed, e, n)` in order. Batches never
 * cross an epoch boundary: the last batch of an epoch is short, or skipped with `dropLast`. The same
 * (seed, n, cursor) always gives the same batches, so resuming from a stored cursor repeats the run exactly.
 */
export class DataOrder {
  readonly seed: number
  readonly n: number
  #cachedEpoch = -1
  #cached: Uint32Array = new Uint32Array(0)

  constructor(seed: number, n: number) {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`data order: n must be a positive integer, got ${n}`)
    this.seed = seed
    this.n = n
  }

  /** The permutation of `epoch` (cached for the most recent epoch). */
  permutation(epoch: number): Uint32Array {
    if (epoch !== this.#cachedEpoch) {
      this.#cached = epochPermutation(this.seed, epoch, this.n)
      this.#cachedEpoch = epoch
    }
    return this.#cached
  }

  /** The batch at `cursor` and the cursor after it. */
  nextBatch(cursor: DataCursor, batchSize: number, options?: { readonly dropLast?: boolean }): Batch {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`data order: bad batch size ${batchSize}`)
    const dropLast = options?.dropLast ?? false
    if (dropLast && batchSize > this.n) throw new Error(`data order: batch ${batchSize} > n ${this.n} with dropLast`)
    let { epoch, index } = cursor
    if (index >= this.n || (dropLast && this.n - index < batchSize)) {
      epoch++
      index = 0
    }
    const take = Math.min(batchSize, this.n - index)
    const indices = this.permutation(epoch).slice(index, index + take)
    return { indices, epoch, next: { epoch, index: index + take } }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// train state

export interface OptimizerState {
  /** Named float32 buffers (e.g. `m/fc1.weight`, `v/fc1.weight`); shapes are the optimizer's business. */
  readonly tensors: ReadonlyMap<string, Float32Array>
  /** Named numbers (e.g. `step`, `lr`). */
  readonly scalars: Readonly<Record<string, number>>
}

/**
 * AdamW's state (`AdamW.getState()`, keyed by tf variable name) as an `OptimizerState` keyed by stable names:
 * tensors `m/<name>`, `v/<name>`, scalar `step`. `rename` maps a tf variable name to its stable name (for a
 * projector: `(n) => proj.names.get(n) ?? n`).
 */
export const optimizerStateFromAdamW = (s: AdamWState, rename: (name: string) => string = (n) => n): OptimizerState => {
  const tensors = new Map<string, Float32Array>()
  for (const [name, a] of Object.entries(s.m)) tensors.set(`m/${rename(name)}`, a)
  for (const [name, a] of Object.entries(s.v)) tensors.set(`v/${rename(name)}`, a)
  return { tensors, scalars: { step: s.step } }
}

/**
 * The inverse of `optimizerStateFromAdamW`, for `AdamW.setState()`: `rename` maps a stable name back to the tf
 * variable name of this process (for a projector: `(n) => proj.params.get(n)?.name ?? n`).
 */
export const adamWStateFromOptimizer = (s: OptimizerState, rename: (name: string) => string = (n) => n): AdamWState => {
  const m: Record<string, Float32Array> = {}
  const v: Record<string, Float32Array> = {}
  for (const [key, a] of s.tensors) {
    if (key.startsWith("m/")) m[rename(key.slice(2))] = a
    else if (key.startsWith("v/")) v[rename(key.slice(2))] = a
    else throw new Error(`optimizer state: unexpected tensor ${key} (expected m/<name> or v/<name>)`)
  }
  const step = s.scalars["step"]
  if (step === undefined || !Number.isInteger(step)) throw new Error("optimizer state: missing integer scalar 'step'")
  return { step, m, v }
}

export interface TrainState {
  readonly step: number
  readonly params: ReadonlyMap<string, HostTensor>
  readonly optimizer: OptimizerState
  readonly queue: QueueSnapshot | null
  /** Opaque generator states by name (each an array of integers/numbers). */
  readonly rng: Readonly<Record<string, ReadonlyArray<number>>>
  readonly cursor: DataCursor
  /** Anything else JSON-serialisable the loop wants back (e.g. running loss averages). */
  readonly extra?: unknown
}

const FORMAT = "llink-train-state"
const VERSION = 1
const STATE_FILE = "state.json"
const TENSORS_FILE = "tensors.bin"
const QUEUE_FILE = "queue.bin"
const LATEST_FILE = "LATEST"

interface IndexEntry {
  readonly group: "params" | "optimizer"
  readonly name: string
  readonly shape: ReadonlyArray<number>
  /** Offset and length in float32 elements inside tensors.bin. */
  readonly offset: number
  readonly length: number
}

interface FileEntry {
  readonly bytes: number
  readonly sha256: string
}

interface StateJson {
  readonly format: string
  readonly version: number
  readonly step: number
  readonly scalars: Record<string, number>
  readonly rng: Record<string, ReadonlyArray<number>>
  readonly cursor: DataCursor
  readonly extra: unknown
  readonly tensors: ReadonlyArray<IndexEntry>
  readonly queue: { readonly capacity: number; readonly dim: number; readonly head: number; readonly size: number } | null
  readonly files: Record<string, FileEntry>
}

const requireLittleEndian = (): void => {
  if (os.endianness() !== "LE") throw new Error("train state: only little-endian hosts are supported")
}

const bytesOf = (a: Float32Array | Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

/** Writes `chunks` to `file` and fsyncs it; returns size and SHA-256. */
const writeFileSynced = (file: string, chunks: ReadonlyArray<Uint8Array>): FileEntry => {
  const hash = crypto.createHash("sha256")
  let bytes = 0
  const fd = fs.openSync(file, "w")
  try {
    for (const c of chunks) {
      let off = 0
      while (off < c.byteLength) off += fs.writeSync(fd, c, off, c.byteLength - off)
      hash.update(c)
      bytes += c.byteLength
    }
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  return { bytes, sha256: hash.digest("hex") }
}

const fsyncDir = (dir: string): void => {
  const fd = fs.openSync(dir, "r")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

const tmpName = (target: string): string =>
  path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`)

/** Replaces a small file atomically (tmp + fsync + rename + fsync of the folder). */
const writeFileAtomic = (file: string, text: string): void => {
  const tmp = tmpName(file)
  writeFileSynced(tmp, [new TextEncoder().encode(text)])
  fs.renameSync(tmp, file)
  fsyncDir(path.dirname(file))
}

const toArtifactError =
  (p: string, what: string) =>
  (cause: unknown): ArtifactError =>
    new ArtifactError({ path: p, message: `${what}: ${describeError(cause)}`, cause })

const writeSync = (dir: string, state: TrainState): void => {
  requireLittleEndian()
  const entries: IndexEntry[] = []
  const chunks: Uint8Array[] = []
  let offset = 0
  const push = (group: IndexEntry["group"], name: string, shape: ReadonlyArray<number>, data: Float32Array): void => {
    const want = shape.reduce((a, b) => a * b, 1)
    if (want !== data.length) throw new Error(`${group} tensor ${name}: shape [${shape.join(",")}] but ${data.length} values`)
    entries.push({ group, name, shape: [...shape], offset, length: data.length })
    chunks.push(bytesOf(data))
    offset += data.length
  }
  for (const [name, t] of state.params) push("params", name, t.shape, t.data)
  for (const [name, data] of state.optimizer.tensors) push("optimizer", name, [data.length], data)

  const parent = path.dirname(dir)
  fs.mkdirSync(parent, { recursive: true })
  const tmp = tmpName(dir)
  fs.mkdirSync(tmp)
  try {
    const files: Record<string, FileEntry> = {}
    files[TENSORS_FILE] = writeFileSynced(path.join(tmp, TENSORS_FILE), chunks)
    if (state.queue !== null) files[QUEUE_FILE] = writeFileSynced(path.join(tmp, QUEUE_FILE), [bytesOf(state.queue.bits)])
    const json: StateJson = {
      format: FORMAT,
      version: VERSION,
      step: state.step,
      scalars: { ...state.optimizer.scalars },
      rng: { ...state.rng },
      cursor: { epoch: state.cursor.epoch, index: state.cursor.index },
      extra: state.extra ?? null,
      tensors: entries,
      queue:
        state.queue === null
          ? null
          : { capacity: state.queue.capacity, dim: state.queue.dim, head: state.queue.head, size: state.queue.size },
      files
    }
    writeFileSynced(path.join(tmp, STATE_FILE), [new TextEncoder().encode(JSON.stringify(json, null, 1))])
    fsyncDir(tmp)
    if (fs.existsSync(dir)) {
      // A folder with this name exists (e.g. a rerun of the same step): swap it out, then delete it.
      const old = tmpName(dir) + ".old"
      fs.renameSync(dir, old)
      fs.renameSync(tmp, dir)
      fs.rmSync(old, { recursive: true, force: true })
    } else {
      fs.renameSync(tmp, dir)
    }
    fsyncDir(parent)
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true })
    throw e
  }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const readSync = (dir: string): TrainState => {
  requireLittleEndian()
  const raw: unknown = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), "utf8"))
  if (!isRecord(raw) || raw["format"] !== FORMAT) throw new Error(`${STATE_FILE} is not a ${FORMAT} file`)
  if (raw["version"] !== VERSION) throw new Error(`${STATE_FILE} has version ${String(raw["version"])}, expected ${VERSION}`)
  const json = raw as unknown as StateJson
  const readChecked = (name: string): Buffer => {
    const entry = json.files[name]
    if (entry === undefined) throw new Error(`${STATE_FILE} does not list ${name}`)
    const buf = fs.readFileSync(path.join(dir, name))
    if (buf.byteLength !== entry.bytes) throw new Error(`${name} has ${buf.byteLength} bytes, expected ${entry.bytes}`)
    const sha = crypto.createHash("sha256").update(buf).digest("hex")
    if (sha !== entry.sha256) throw new Error(`${name} is corrupt (SHA-256 ${sha}, expected ${entry.sha256})`)
    return buf
  }
  const tensorsBuf = readChecked(TENSORS_FILE)
  const params = new Map<string, HostTensor>()
  const optTensors = new Map<string, Float32Array>()
  for (const e of json.tensors) {
    const start = e.offset * 4
    const end = start + e.length * 4
    if (end > tensorsBuf.byteLength) throw new Error(`tensor ${e.name} lies past the end of ${TENSORS_FILE}`)
    const data = new Float32Array(e.length)
    new Uint8Array(data.buffer).set(tensorsBuf.subarray(start, end))
    if (e.group === "params") params.set(e.name, { shape: [...e.shape], data })
    else optTensors.set(e.name, data)
  }
  let queue: QueueSnapshot | null = null
  if (json.queue !== null) {
    const qb = readChecked(QUEUE_FILE)
    const { capacity, dim, head, size } = json.queue
    if (qb.byteLength !== capacity * dim * 2) throw new Error(`${QUEUE_FILE} has ${qb.byteLength} bytes, expected ${capacity * dim * 2}`)
    const bits = new Uint16Array(capacity * dim)
    new Uint8Array(bits.buffer).set(qb)
    queue = { capacity, dim, head, size, bits }
  }
  return {
    step: json.step,
    params,
    optimizer: { tensors: optTensors, scalars: { ...json.scalars } },
    queue,
    rng: { ...json.rng },
    cursor: { epoch: json.cursor.epoch, index: json.cursor.index },
    extra: json.extra
  }
}

/** Writes `state` to the folder `dir` atomically (replacing an existing folder of that name). */
export const writeTrainState = (dir: string, state: TrainState): Effect.Effect<void, ArtifactError> =>
  Effect.try({ try: () => writeSync(dir, state), catch: toArtifactError(dir, "cannot write train state") })

/** Reads a folder written by `writeTrainState`, verifying sizes and hashes. */
export const readTrainState = (dir: string): Effect.Effect<TrainState, ArtifactError> =>
  Effect.try({ try: () => readSync(dir), catch: toArtifactError(dir, "cannot read train state") })

/** The folder name of a step's checkpoint: `step-000000123`. */
export const checkpointName = (step: number): string => `step-${String(step).padStart(9, "0")}`

/**
 * Writes `state` as `root/step-<n>`, then points `root/LATEST` at it. With `keepLast`, removes all but the newest
 * `keepLast` step folders afterwards. Returns the folder written.
 */
export const saveCheckpoint = (
  root: string,
  state: TrainState,
  options?: { readonly keepLast?: number }
): Effect.Effect<string, ArtifactError> =>
  Effect.try({
    try: () => {
      const name = checkpointName(state.step)
      const dir = path.join(root, name)
      writeSync(dir, state)
      writeFileAtomic(path.join(root, LATEST_FILE), `${name}\n`)
      const keep = options?.keepLast
      if (keep !== undefined && keep > 0) {
        const steps = fs
          .readdirSync(root)
          .filter((f) => /^step-\d+$/.test(f))
          .sort()
        for (const old of steps.slice(0, Math.max(0, steps.length - keep))) {
          if (old !== name) fs.rmSync(path.join(root, old), { recursive: true, force: true })
        }
      }
      return dir
    },
    catch: toArtifactError(root, "cannot save checkpoint")
  })

/** The state `root/LATEST` points at, or null when no checkpoint was ever completed under `root`. */
export const loadLatestCheckpoint = (root: string): Effect.Effect<TrainState | null, ArtifactError> =>
  Effect.try({
    try: () => {
      const latest = path.join(root, LATEST_FILE)
      if (!fs.existsSync(latest)) return null
      const name = fs.readFileSync(latest, "utf8").trim()
      if (!/^step-\d+$/.test(name)) throw new Error(`${latest} names "${name}", not a step folder`)
      return readSync(path.join(root, name))
    },
    catch: toArtifactError(root, "cannot load the latest checkpoint")
  })
