/**
 * `split`: a seeded, deterministic subset of the cleaned pairs, cut into disjoint `train` and `holdout` tables and
 * an `eval` slice (the first `split.evalN` holdout pairs), as in the paper (100k train + 40k held out; retrieval on
 * 1,024 held-out pairs).
 *
 * Every pair is ranked by `sha1(seed + "\0" + english + "\0" + foreign)` (the first 8 bytes, big-endian): the
 * `train + holdout` lowest form the subset, in hash order; the first `train` of them are `train`, the rest
 * `holdout`, and `eval` is the head of `holdout`. The choice depends only on the pairs' content and the seed, so it
 * is the same on every rerun, whatever the input order, and a different seed gives a different split. The rank is
 * easy to recompute elsewhere, e.g. in Python: `hashlib.sha1(f"{seed}\0{en}\0{km}".encode()).digest()[:8]`.
 *
 * Memory: pass 1 keeps only a bounded max-heap of (hash, row index) for the `train + holdout` lowest; pass 2
 * re-reads the table and keeps only the chosen rows, which are written in hash order.
 */
import * as crypto from "node:crypto"
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { openTableWriter, readTable, type Row } from "../../pipeline/table.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { type LlinkConfig, SplitConfig } from "../../schemas/config.ts"
import { PairColumns } from "../../schemas/rows.ts"

const STAGE = "split"
type SplitParams = typeof SplitConfig.Type

/** The rank key of a pair: two uint32 from the first 8 bytes of the sha1. */
export const splitKey = (seed: number, english: string, foreign: string): readonly [number, number] => {
  const d = crypto.createHash("sha1").update(`${seed}\u0000${english}\u0000${foreign}`, "utf8").digest()
  return [d.readUInt32BE(0), d.readUInt32BE(4)]
}

/** A max-heap of the `capacity` smallest (hi, lo, index) keys seen. */
class SmallestK {
  readonly hi: Uint32Array
  readonly lo: Uint32Array
  readonly idx: Int32Array
  readonly capacity: number
  size = 0
  constructor(capacity: number) {
    this.capacity = capacity
    this.hi = new Uint32Array(capacity)
    this.lo = new Uint32Array(capacity)
    this.idx = new Int32Array(capacity)
  }
  private greater(a: number, b: number): boolean {
    const { hi, lo, idx } = this
    return hi[a] !== hi[b] ? hi[a] > hi[b] : lo[a] !== lo[b] ? lo[a] > lo[b] : idx[a] > idx[b]
  }
  private swap(a: number, b: number): void {
    const { hi, lo, idx } = this
    ;[hi[a], hi[b]] = [hi[b], hi[a]]
    ;[lo[a], lo[b]] = [lo[b], lo[a]]
    ;[idx[a], idx[b]] = [idx[b], idx[a]]
  }
  offer(h: number, l: number, i: number): void {
    if (this.capacity === 0) return
    if (this.size < this.capacity) {
      let c = this.size++
      this.hi[c] = h
      this.lo[c] = l
      this.idx[c] = i
      while (c > 0) {
        const parent = (c - 1) >> 1
        if (!this.greater(c, parent)) break
        this.swap(c, parent)
        c = parent
      }
      return
    }
    // replace the root (the largest kept) when the new key is smaller
    if (h > this.hi[0] || (h === this.hi[0] && (l > this.lo[0] || (l === this.lo[0] && i > this.idx[0])))) return
    this.hi[0] = h
    this.lo[0] = l
    this.idx[0] = i
    let c = 0
    while (true) {
      const left = 2 * c + 1
      const right = left + 1
      let largest = c
      if (left < this.size && this.greater(left, largest)) largest = left
      if (right < this.size && this.greater(right, largest)) largest = right
      if (largest === c) break
      this.swap(c, largest)
      c = largest
    }
  }
  /** Row indices in ascending key order. */
  sortedIndices(): Int32Array {
    const order = Array.from({ length: this.size }, (_, k) => k)
    order.sort((a, b) => (this.greater(a, b) ? 1 : this.greater(b, a) ? -1 : 0))
    return Int32Array.from(order, (k) => this.idx[k])
  }
}

const checkCount = (name: string, v: number): StageError | undefined =>
  Number.isSafeInteger(v) && v >= 0 ? undefined : new StageError({ stage: STAGE, message: `split.${name} must be a whole number ≥ 0, got ${v}` })

export const split = defineStage<SplitParams>({
  name: STAGE,
  version: "1",
  description: "Seeded content-hash split of the clean pairs into disjoint train and holdout tables, plus an eval slice",
  inputs: ["clean"],
  outputs: [
    { name: "train", kind: "parquet", file: "train.parquet", description: "training pairs (hash order)" },
    { name: "holdout", kind: "parquet", file: "holdout.parquet", description: "held-out pairs (hash order)" },
    { name: "eval", kind: "parquet", file: "eval.parquet", description: "the first evalN held-out pairs" }
  ],
  params: SplitConfig,
  selectParams: (config) => (config as LlinkConfig).split,
  run: Effect.fn("split.run")(function*(ctx) {
    const { train, holdout, seed, evalN } = ctx.params
    for (const [name, v] of [["train", train], ["holdout", holdout], ["evalN", evalN]] as const) {
      const bad = checkCount(name, v)
      if (bad !== undefined) return yield* bad
    }
    if (evalN > holdout) {
      return yield* new StageError({
        stage: STAGE,
        message: `split.evalN (${evalN}) is larger than split.holdout (${holdout}): the eval slice is taken from the holdout pairs`
      })
    }
    const wanted = train + holdout
    const input = ctx.inputs["clean"]
    const heap = new SmallestK(wanted)
    let total = 0
    const progress = ctx.progress("rank", undefined)
    yield* readTable(input, { columns: ["english", "foreign"] }).pipe(
      Stream.runForEachArray((rows) =>
        Effect.gen(function*() {
          for (const row of rows) {
            const { english, foreign } = row
            if (typeof english !== "string" || typeof foreign !== "string") {
              return yield* new StageError({ stage: STAGE, message: `clean table row ${total + 1}: english/foreign is not a string`, file: input })
            }
            const [h, l] = splitKey(seed, english, foreign)
            heap.offer(h, l, total++)
          }
          progress.advance(rows.length)
        })
      ),
      asStageError(STAGE)
    )
    progress.done()
    if (total < wanted) {
      return yield* new StageError({
        stage: STAGE,
        message: `too few pairs to split: split.train + split.holdout = ${train} + ${holdout} = ${wanted}, ` +
          `but the clean table has only ${total} pairs — lower split.train / split.holdout or use a larger corpus`,
        file: input
      })
    }
    // pass 2: materialise the chosen rows, placed at their rank
    const order = heap.sortedIndices()
    const rankOf = new Map<number, number>()
    for (let r = 0; r < order.length; r++) rankOf.set(order[r], r)
    const chosen: Array<Row | undefined> = new Array(wanted)
    let index = 0
    yield* readTable(input).pipe(
      Stream.runForEachArray((rows) =>
        Effect.sync(() => {
          for (const row of rows) {
            const r = rankOf.get(index++)
            if (r !== undefined) chosen[r] = row
          }
        })
      ),
      asStageError(STAGE)
    )
    const missing = chosen.findIndex((r) => r === undefined)
    if (index !== total || missing >= 0) {
      return yield* new StageError({
        stage: STAGE,
        message: `the clean table changed between passes (${total} rows, then ${index})`,
        file: input
      })
    }
    const rows = chosen as Array<Row>
    const write = (name: string, part: ReadonlyArray<Row>) =>
      Effect.gen(function*() {
        const writer = yield* openTableWriter(ctx.outputs[name], PairColumns)
        yield* writer.write(part)
        return yield* writer.close
      }).pipe(asStageError(STAGE))
    const nTrain = yield* write("train", rows.slice(0, train))
    const nHoldout = yield* write("holdout", rows.slice(train))
    const nEval = yield* write("eval", rows.slice(train, train + evalN))
    ctx.log(`${total} pairs → train ${nTrain}, holdout ${nHoldout}, eval ${nEval} (seed ${seed})`)
    return {
      rows: { train: nTrain, holdout: nHoldout, eval: nEval },
      metrics: { available: total, train: nTrain, holdout: nHoldout, eval: nEval, seed }
    }
  })
})
