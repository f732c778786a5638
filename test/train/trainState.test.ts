import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { makeRng } from "../../src/models/rng.ts"
import { TeacherQueue } from "../../src/train/queue.ts"
import {
  adamWStateFromOptimizer,
  checkpointName,
  DataOrder,
  epochPermutation,
  loadLatestCheckpoint,
  optimizerStateFromAdamW,
  readTrainState,
  saveCheckpoint,
  writeTrainState
} from "../../src/train/trainState.ts"
import type { DataCursor, TrainState } from "../../src/train/trainState.ts"

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "llink-trainstate-"))
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))

const sampleState = (step: number): TrainState => {
  const rng = makeRng(step)
  const vec = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal())
  const w = vec(6)
  w[0] = -0
  w[1] = Number.NaN
  w[2] = Number.POSITIVE_INFINITY
  const queue = new TeacherQueue(5, 3)
  queue.enqueue(vec(7 * 3))
  return {
    step,
    params: new Map([
      ["fc1.weight", { shape: [2, 3], data: w }],
      ["fc1.bias", { shape: [2], data: vec(2) }],
      ["empty", { shape: [0], data: new Float32Array(0) }]
    ]),
    optimizer: {
      tensors: new Map([
        ["m/fc1.weight", vec(6)],
        ["v/fc1.weight", vec(6)]
      ]),
      scalars: { step: step, lr: 1.25e-4 }
    },
    queue: queue.snapshot(),
    rng: { data: [1, 2, 3, 4], other: [] },
    cursor: { epoch: 2, index: 17 },
    extra: { emaLoss: 0.5, note: "x" }
  }
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length)

const expectSameState = (got: TrainState, want: TrainState): void => {
  expect(got.step).toBe(want.step)
  expect([...got.params.keys()]).toEqual([...want.params.keys()])
  for (const [name, t] of want.params) {
    const g = got.params.get(name)
    expect(g?.shape).toEqual(t.shape)
    expect(bitsOf(g?.data ?? new Float32Array(0))).toEqual(bitsOf(t.data)) // bit-exact, NaN and -0 included
  }
  expect([...got.optimizer.tensors.keys()]).toEqual([...want.optimizer.tensors.keys()])
  for (const [name, t] of want.optimizer.tensors) expect(got.optimizer.tensors.get(name)).toEqual(t)
  expect(got.optimizer.scalars).toEqual(want.optimizer.scalars)
  expect(got.queue).toEqual(want.queue)
  expect(got.rng).toEqual(want.rng)
  expect(got.cursor).toEqual(want.cursor)
  expect(got.extra).toEqual(want.extra)
}

describe("train state", () => {
  it("round-trips every part bit-exactly, leaving no temporary files", () => {
    const dir = path.join(tmpRoot, "a", "state")
    const s = sampleState(3)
    Effect.runSync(writeTrainState(dir, s))
    expectSameState(Effect.runSync(readTrainState(dir)), s)
    expect(fs.readdirSync(path.dirname(dir))).toEqual(["state"])
    expect(fs.readdirSync(dir).sort()).toEqual(["queue.bin", "state.json", "tensors.bin"])
    // overwriting the same folder works and replaces it entirely
    const s2 = { ...sampleState(4), queue: null }
    Effect.runSync(writeTrainState(dir, s2))
    expectSameState(Effect.runSync(readTrainState(dir)), s2)
    expect(fs.readdirSync(dir).sort()).toEqual(["state.json", "tensors.bin"])
    expect(fs.readdirSync(path.dirname(dir))).toEqual(["state"])
  })

  it("a restored queue behaves like the original", () => {
    const dir = path.join(tmpRoot, "q")
    const s = sampleState(5)
    Effect.runSync(writeTrainState(dir, s))
    const back = Effect.runSync(readTrainState(dir))
    if (back.queue === null || s.queue === null) throw new Error("queue missing")
    const a = TeacherQueue.restore(s.queue)
    const b = TeacherQueue.restore(back.queue)
    const p = Float32Array.from([1, 2, 3, -1, 0, 2])
    expect(b.selectHard(p, 2, 3, "per-row")).toEqual(a.selectHard(p, 2, 3, "per-row"))
  })

  it("detects corruption and reports it as an ArtifactError", () => {
    const dir = path.join(tmpRoot, "c")
    Effect.runSync(writeTrainState(dir, sampleState(6)))
    const file = path.join(dir, "tensors.bin")
    const buf = fs.readFileSync(file)
    buf[5] ^= 0xff
    fs.writeFileSync(file, buf)
    const err = Effect.runSync(Effect.flip(readTrainState(dir)))
    expect(err._tag).toBe("ArtifactError")
    expect(err.message).toMatch(/corrupt/)
    fs.writeFileSync(file, buf.subarray(0, 10))
    expect(Effect.runSync(Effect.flip(readTrainState(dir))).message).toMatch(/bytes/)
    const missing = Effect.runSync(Effect.flip(readTrainState(path.join(tmpRoot, "nope"))))
    expect(missing._tag).toBe("ArtifactError")
  })

  it("rejects a tensor whose shape does not match its data", () => {
    const s = sampleState(7)
    const bad: TrainState = { ...s, params: new Map([["w", { shape: [4], data: new Float32Array(3) }]]) }
    const err = Effect.runSync(Effect.flip(writeTrainState(path.join(tmpRoot, "bad"), bad)))
    expect(err.message).toMatch(/shape/)
    expect(fs.existsSync(path.join(tmpRoot, "bad"))).toBe(false)
    expect(fs.readdirSync(tmpRoot).some((f) => f.includes(".tmp-"))).toBe(false)
  })

  it("saves checkpoints under LATEST, prunes old ones, and loads the newest", () => {
    const root = path.join(tmpRoot, "ckpt")
    expect(Effect.runSync(loadLatestCheckpoint(root))).toBeNull()
    const s1 = sampleState(100)
    const s2 = sampleState(200)
    const s3 = sampleState(300)
    expect(Effect.runSync(saveCheckpoint(root, s1))).toBe(path.join(root, checkpointName(100)))
    expectSameState(Effect.runSync(loadLatestCheckpoint(root)) ?? s3, s1)
    Effect.runSync(saveCheckpoint(root, s2, { keepLast: 2 }))
    Effect.runSync(saveCheckpoint(root, s3, { keepLast: 2 }))
    expect(fs.readdirSync(root).sort()).toEqual(["LATEST", "step-000000200", "step-000000300"])
    expectSameState(Effect.runSync(loadLatestCheckpoint(root)) ?? s1, s3)
    fs.writeFileSync(path.join(root, "LATEST"), "../../etc\n")
    expect(Effect.runSync(Effect.flip(loadLatestCheckpoint(root))).message).toMatch(/not a step folder/)
  })
})

describe("AdamW state adapters", () => {
  it("store moments under stable names and map them back", () => {
    const adam = { step: 7, m: { "p3/fc1.weight": Float32Array.of(1, 2) }, v: { "p3/fc1.weight": Float32Array.of(3, 4) } }
    const opt = optimizerStateFromAdamW(adam, (n) => n.replace(/^p3\//, ""))
    expect([...opt.tensors.keys()]).toEqual(["m/fc1.weight", "v/fc1.weight"])
    expect(opt.scalars).toEqual({ step: 7 })
    const back = adamWStateFromOptimizer(opt, (n) => `p9/${n}`)
    expect(back).toEqual({ step: 7, m: { "p9/fc1.weight": Float32Array.of(1, 2) }, v: { "p9/fc1.weight": Float32Array.of(3, 4) } })
    expect(() => adamWStateFromOptimizer({ tensors: new Map([["x", new Float32Array(1)]]), scalars: { step: 1 } })).toThrow(
      /unexpected tensor/
    )
    expect(() => adamWStateFromOptimizer({ tensors: new Map(), scalars: {} })).toThrow(/step/)
  })
})

describe("data order", () => {
  it("gives a seeded permutation per epoch", () => {
    const p = epochPermutation(17, 0, 50)
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(epochPermutation(17, 0, 50)).toEqual(p)
    expect(epochPermutation(17, 1, 50)).not.toEqual(p)
    expect(epochPermutation(18, 0, 50)).not.toEqual(p)
    expect([...p]).not.toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it("walks epochs in batches (short last batch) and resumes exactly from a stored cursor", () => {
    const n = 23
    const walk = (order: DataOrder, from: DataCursor, batches: number): { seq: number[][]; cursor: DataCursor } => {
      const seq: number[][] = []
      let cursor = from
      for (let i = 0; i < batches; i++) {
        const b = order.nextBatch(cursor, 5)
        seq.push([b.epoch, ...b.indices])
        cursor = b.next
      }
      return { seq, cursor }
    }
    const full = walk(new DataOrder(9, n), { epoch: 0, index: 0 }, 12).seq
    // epoch 0 is batches of 5, 5, 5, 5, 3 covering the whole permutation
    expect(full.slice(0, 5).map((b) => b.length - 1)).toEqual([5, 5, 5, 5, 3])
    expect(full.slice(0, 5).flatMap((b) => b.slice(1))).toEqual([...epochPermutation(9, 0, n)])
    expect(full[5][0]).toBe(1)
    expect(full.slice(5, 10).flatMap((b) => b.slice(1))).toEqual([...epochPermutation(9, 1, n)])
    // stop after 7 batches, "checkpoint" the cursor, resume with a fresh object
    const first = walk(new DataOrder(9, n), { epoch: 0, index: 0 }, 7)
    const stored: DataCursor = JSON.parse(JSON.stringify(first.cursor))
    const rest = walk(new DataOrder(9, n), stored, 5).seq
    expect([...first.seq, ...rest]).toEqual(full)
  })

  it("dropLast skips the short tail of an epoch", () => {
    const order = new DataOrder(1, 12)
    let cursor: DataCursor = { epoch: 0, index: 0 }
    const epochs: number[] = []
    for (let i = 0; i < 6; i++) {
      const b = order.nextBatch(cursor, 5, { dropLast: true })
      expect(b.indices.length).toBe(5)
      epochs.push(b.epoch)
      cursor = b.next
    }
    expect(epochs).toEqual([0, 0, 1, 1, 2, 2])
  })
})
