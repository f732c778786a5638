/**
 * The Stage A pieces together on a tiny synthetic task: projector + loss + queue + schedules + data order +
 * checkpoint, with the project's AdamW (src/backend/adamw.ts) on the stock cpu backend. Checks that training
 * improves retrieval and that a run resumed from a checkpoint (params, AdamW moments, queue, data cursor) repeats
 * the uninterrupted run exactly.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AdamW, clipGradNorm } from "../../src/backend/adamw.ts"
import { retrievalMetrics } from "../../src/metrics/retrieval.ts"
import * as Projector from "../../src/models/projector.ts"
import { makeRng } from "../../src/models/rng.ts"
import { l2NormalizeRows } from "../../src/train/hostMath.ts"
import { TeacherQueue } from "../../src/train/queue.ts"
import { linearAnneal, warmupCosine } from "../../src/train/schedule.ts"
import { hardNegativesFromQueue, stageALoss } from "../../src/train/stageALoss.ts"
import {
  adamWStateFromOptimizer,
  DataOrder,
  loadLatestCheckpoint,
  optimizerStateFromAdamW,
  saveCheckpoint
} from "../../src/train/trainState.ts"
import type { DataCursor } from "../../src/train/trainState.ts"

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "llink-miniloop-"))
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
beforeAll(async () => {
  await tf.setBackend("cpu")
})

const SEED = 17
const N = 32
const D_IN = 8
const D_OUT = 6
const BATCH = 4
const STEPS = 24
const CONFIG = Projector.makeConfig(D_IN, D_OUT, { dHidden: 16, dropout: 0.1 })

// synthetic pairs: h = 3·tanh(z·A) + noise
const rng = makeRng(1)
const Z = Float32Array.from({ length: N * D_IN }, () => rng.normal())
const A = Float32Array.from({ length: D_IN * D_OUT }, () => rng.normal())
const H = new Float32Array(N * D_OUT)
for (let i = 0; i < N; i++) {
  for (let j = 0; j < D_OUT; j++) {
    let s = 0
    for (let k = 0; k < D_IN; k++) s += Z[i * D_IN + k] * A[k * D_OUT + j]
    H[i * D_OUT + j] = 3 * Math.tanh(s) + 0.05 * rng.normal()
  }
}

const rowsOf = (x: Float32Array, d: number, idx: ArrayLike<number>): Float32Array => {
  const out = new Float32Array(idx.length * d)
  for (let i = 0; i < idx.length; i++) out.set(x.subarray(idx[i] * d, (idx[i] + 1) * d), i * d)
  return out
}

interface LoopState {
  step: number
  proj: Projector.Projector
  opt: AdamW
  queue: TeacherQueue
  cursor: DataCursor
}

const makeOpt = (proj: Projector.Projector): AdamW =>
  new AdamW([...proj.variables], { lr: 0, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 })

/** Runs steps [state.step, until), returning each step's total loss; checkpoints after `checkpointAt` steps. */
const runSteps = async (
  s: LoopState,
  until: number,
  checkpointAt?: { step: number; root: string },
  rule: "shared-mean" | "per-row" = "shared-mean"
): Promise<number[]> => {
  const order = new DataOrder(SEED, N)
  const losses: number[] = []
  for (; s.step < until; s.step++) {
    const batch = order.nextBatch(s.cursor, BATCH, { dropLast: true })
    const zb = rowsOf(Z, D_IN, batch.indices)
    const hb = rowsOf(H, D_OUT, batch.indices)
    const tau = linearAnneal(s.step, { from: 0.17, to: 0.08, totalSteps: STEPS })
    const { value, grads } = tf.variableGrads(() => {
      const p = Projector.forward(s.proj, tf.tensor2d(zb, [BATCH, D_IN]), {
        rng: makeRng(Projector.dropoutSeed(SEED, s.step, 0))
      })
      const sel = s.queue.selectHard(p.dataSync() as Float32Array, BATCH, 3, rule)
      const negatives = hardNegativesFromQueue(s.queue, sel)
      return stageALoss({ p, h: tf.tensor2d(hb, [BATCH, D_OUT]), negatives, tau }).total
    }, [...s.proj.variables])
    clipGradNorm(grads, 1.0)
    s.opt.step(grads, { lr: warmupCosine(s.step, { peak: 0.05, warmupSteps: 4, totalSteps: STEPS, floor: 1e-3 }) })
    losses.push(value.arraySync())
    tf.dispose([value, ...Object.values(grads)])
    s.queue.enqueue(hb, BATCH)
    s.cursor = batch.next
    if (checkpointAt !== undefined && s.step + 1 === checkpointAt.step) {
      const proj = s.proj
      const params = await Projector.toHost(proj)
      Effect.runSync(
        saveCheckpoint(checkpointAt.root, {
          step: s.step + 1,
          params,
          optimizer: optimizerStateFromAdamW(s.opt.getState(), (n) => proj.names.get(n) ?? n),
          queue: s.queue.snapshot(),
          rng: {},
          cursor: s.cursor
        })
      )
    }
  }
  return losses
}

const r1Of = async (proj: Projector.Projector): Promise<number> => {
  const p = await Projector.projectHost(proj, Z, N)
  return retrievalMetrics(l2NormalizeRows(p, N, D_OUT), l2NormalizeRows(H, N, D_OUT), D_OUT).r1
}

describe("a tiny Stage A loop", () => {
  it("learns, and a resumed run repeats the uninterrupted one exactly", async () => {
    const root = path.join(tmpRoot, "ckpt")
    const fresh = (prefix: string): LoopState => {
      const proj = Projector.init(CONFIG, SEED, { prefix })
      return { step: 0, proj, opt: makeOpt(proj), queue: new TeacherQueue(12, D_OUT), cursor: { epoch: 0, index: 0 } }
    }
    const a = fresh("a/")
    const before = (await r1Of(a.proj))
    const lossesA = (await runSteps(a, STEPS, { step: 10, root }))
    const after = (await r1Of(a.proj))
    expect(after).toBeGreaterThan(before)
    expect(after).toBeGreaterThanOrEqual(4 / N) // chance is 1/N
    const firstAvg = lossesA.slice(0, 4).reduce((x, y) => x + y, 0) / 4
    const lastAvg = lossesA.slice(-4).reduce((x, y) => x + y, 0) / 4
    expect(lastAvg).toBeLessThan(firstAvg)

    // the same seeds give the same run
    const b = fresh("b/")
    expect((await runSteps(b, STEPS))).toEqual(lossesA)

    // resume from the step-10 checkpoint into fresh objects with other tf variable names
    const ck = Effect.runSync(loadLatestCheckpoint(root))
    if (ck === null || ck.queue === null) throw new Error("checkpoint missing")
    expect(ck.step).toBe(10)
    expect([...ck.optimizer.tensors.keys()]).toContain("m/fc1.weight") // stored under stable names
    const proj = Projector.fromHost(CONFIG, ck.params, { prefix: "c/" })
    const opt = makeOpt(proj)
    opt.setState(adamWStateFromOptimizer(ck.optimizer, (n) => proj.params.get(n as Projector.ParamName)?.name ?? n))
    expect(opt.stepCount).toBe(10)
    const c: LoopState = { step: ck.step, proj, opt, queue: TeacherQueue.restore(ck.queue), cursor: ck.cursor }
    expect((await runSteps(c, STEPS))).toEqual(lossesA.slice(10))
    expect(await Projector.toHost(c.proj)).toEqual(await Projector.toHost(a.proj))
    expect(() => Projector.init(CONFIG, SEED, { prefix: "a/" })).toThrow(/already named/)
    // the per-row rule runs through the same loop (and differs from shared-mean once the queue fills)
    const d = fresh("d/")
    const lossesD = (await runSteps(d, STEPS, undefined, "per-row"))
    expect(lossesD.slice(0, 1)).toEqual(lossesA.slice(0, 1)) // empty queue at step 0: no hard negatives yet
    expect(lossesD).not.toEqual(lossesA)
    expect(lossesD.every(Number.isFinite)).toBe(true)
    d.opt.dispose()
    Projector.dispose(d.proj)
    for (const s of [a, b, c]) {
      s.opt.dispose()
      Projector.dispose(s.proj)
    }
  })
})
