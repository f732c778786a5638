/** The `split` stage's work (see stage.ts): the seeded content-hash split. */
import * as crypto from "node:crypto"
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter, readTable, type Row } from "../../formats/parquet/table.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import type { SplitParams } from "./params.ts"
import { PairColumns } from "../../schemas/rows.ts"

const STAGE = "split"

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


/** Every row's key in read order, for `holdoutFrom: "end"`. */
class KeyLog {
  private hi = new Uint32Array(1024)
  private lo = new Uint32Array(1024)
  size = 0
  push(h: number, l: number): void {
    if (this.size === this.hi.length) {
      const grow = (a: Uint32Array) => {
        const b = new Uint32Array(a.length * 2)
        b.set(a)
        return b
      }
      this.hi = grow(this.hi)
      this.lo = grow(this.lo)
    }
    this.hi[this.size] = h
    this.lo[this.size] = l
    this.size++
  }
  /** Row indices: the `train` smallest keys before the last `holdout` rows, then those rows, each part in key order. */
  trainThenTail(train: number, holdout: number): Int32Array {
    const cut = this.size - holdout
    const head = new SmallestK(train)
    for (let i = 0; i < cut; i++) head.offer(this.hi[i], this.lo[i], i)
    const tail = new SmallestK(holdout)
    for (let i = cut; i < this.size; i++) tail.offer(this.hi[i], this.lo[i], i)
    const out = new Int32Array(train + holdout)
    out.set(head.sortedIndices(), 0)
    out.set(tail.sortedIndices(), train)
    return out
  }
}

export const runSplit = (ctx: StageContext<SplitParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const { train, holdout, seed, evalN, holdoutFrom } = ctx.params
    const wanted = train + holdout
    const input = ctx.inputs["clean"]
    const heap = new SmallestK(wanted)
    // holdoutFrom "end": every row's key is kept (8 bytes a row), as the tail is known only at the end
    const keys = holdoutFrom === "end" ? new KeyLog() : undefined
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
            if (keys === undefined) heap.offer(h, l, total++)
            else {
              keys.push(h, l)
              total++
            }
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
    const order = keys === undefined ? heap.sortedIndices() : keys.trainThenTail(train, holdout)
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
    ctx.log(`${total} pairs → train ${nTrain}, holdout ${nHoldout}${holdoutFrom === "end" ? " (the last pairs)" : ""}, eval ${nEval} (seed ${seed})`)
    return {
      rows: { train: nTrain, holdout: nHoldout, eval: nEval },
      metrics: { available: total, train: nTrain, holdout: nHoldout, eval: nEval, seed }
    }
  })

