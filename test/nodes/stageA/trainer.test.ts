/**
 * The Stage A trainer's two shortcuts against the straightforward loop they replace:
 * - `StepScores` (all of a step's hard-negative scores in one block product, patched for the slots enqueued since)
 *   selects exactly the negatives `selectHard` selects with the plain product — while the queue grows, when it is
 *   full and overwrites, and when it wraps more than once within a step;
 * - `makeTrainer`'s single backward pass over the stacked micro-batches gives the gradient (and the loss terms) of
 *   per-micro-batch accumulation with the same dropout masks and negatives.
 */
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { AdamW, clipCoefficient, gradNorm } from "../../../src/backend/adamw.ts"
import type { StepOptions } from "../../../src/backend/adamw.ts"
import * as Projector from "../../../src/models/projector.ts"
import { fillNormal, makeRng } from "../../../src/models/rng.ts"
import { StageAConfig } from "../../../src/nodes/stageA/params.ts"
import { initBackend } from "../../../src/backend/select.ts"
import { selectionQuery, StepScores } from "../../../src/nodes/stageA/stepScores.ts"
import { makeTrainer } from "../../../src/nodes/stageA/work.ts"
import { matMulABtJs } from "../../../src/train/hostMath.ts"
import type { HardNegativeRule } from "../../../src/train/queue.ts"
import { TeacherQueue } from "../../../src/train/queue.ts"
import { hardNegativesFromQueue, stageALoss } from "../../../src/train/stageALoss.ts"
import { DataOrder } from "../../../src/train/trainState.ts"

beforeAll(async () => {
  await initBackend()
})

describe("StepScores", () => {
  const run = (rule: HardNegativeRule, capacity: number, prefill: number) => {
    const d = 12
    const mb = 5
    const A = 6
    const k = 4
    const rng = makeRng(capacity * 31 + prefill)
    const fill = fillNormal(rng, prefill * d, 1)
    const plainQ = new TeacherQueue(capacity, d)
    const cachedQ = new TeacherQueue(capacity, d)
    if (prefill > 0) {
      plainQ.enqueue(fill, prefill)
      cachedQ.enqueue(fill, prefill)
    }
    const p = fillNormal(rng, A * mb * d, 1)
    const teachers = fillNormal(rng, A * mb * d, 1)
    const scores = new StepScores(cachedQ, matMulABtJs)
    scores.begin(Array.from({ length: A }, (_, m) => selectionQuery(p.subarray(m * mb * d, (m + 1) * mb * d), mb, d, rule)))
    for (let m = 0; m < A; m++) {
      const pm = p.subarray(m * mb * d, (m + 1) * mb * d)
      const plain = plainQ.selectHard(pm, mb, k, rule)
      const cached = cachedQ.selectHard(pm, mb, k, rule, { matmul: scores.forMicro(m) })
      expect(Array.from(cached.indices)).toEqual(Array.from(plain.indices))
      for (let i = 0; i < plain.scores.length; i++) expect(Math.abs(cached.scores[i] - plain.scores[i])).toBeLessThan(1e-5)
      const tm = teachers.subarray(m * mb * d, (m + 1) * mb * d)
      plainQ.enqueue(tm, mb)
      cachedQ.enqueue(tm, mb)
      scores.enqueued(mb)
    }
    return { hits: scores.hits, fallbacks: scores.fallbacks }
  }

  it("selects what selectHard selects with the plain product, as the queue grows, overwrites and wraps", () => {
    for (const rule of ["shared-mean", "per-row"] as const) {
      // growing, never full: every call answered from the block
      expect(run(rule, 100, 7)).toEqual({ hits: 6, fallbacks: 0 })
      // full from the start: the step overwrites the oldest slots
      expect(run(rule, 40, 40)).toEqual({ hits: 6, fallbacks: 0 })
      // empty at the start: micro-batch 0 has nothing to score; the block is filled at micro-batch 1
      expect(run(rule, 100, 0)).toEqual({ hits: 5, fallbacks: 0 })
      // a 12-slot queue is rewritten entirely within the step: the stale block is not used
      const small = run(rule, 12, 12)
      expect(small.hits + small.fallbacks).toBe(6)
      expect(small.fallbacks).toBeGreaterThan(0)
    }
  })

  it("passes unknown queries (e.g. the exclusion's teacher scores) to the plain product", () => {
    const q = new TeacherQueue(30, 4)
    q.enqueue(fillNormal(makeRng(1), 10 * 4, 1), 10)
    const scores = new StepScores(q, matMulABtJs)
    const p = fillNormal(makeRng(2), 3 * 4, 1)
    scores.begin([selectionQuery(p, 3, 4, "shared-mean")])
    const sel = q.selectHard(p, 3, 2, "shared-mean", { matmul: scores.forMicro(0), exclude: { teachers: p, minCosine: 0.9999 } })
    expect(sel.k).toBe(2)
    expect(scores).toMatchObject({ hits: 1, fallbacks: 1 })
  })
})

describe("makeTrainer", () => {
  /** An AdamW that keeps a copy of the gradients it is given. */
  class Capturing extends AdamW {
    captured: Array<Record<string, Float32Array>> = []
    override step(grads: Readonly<Record<string, tf.Tensor>>, options?: StepOptions): void {
      this.captured.push(Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, Float32Array.from(g.dataSync())])))
      super.step(grads, options)
    }
  }

  it("one backward pass over the stacked micro-batches = per-micro-batch accumulation (gradients and losses)", async () => {
    for (const rule of ["shared-mean", "per-row"] as const) {
      const dIn = 10
      const dOut = 8
      const rows = 64
      const rng = makeRng(5)
      const z = { rows, dim: dIn, data: fillNormal(rng, rows * dIn, 1) }
      const h = { rows, dim: dOut, data: fillNormal(rng, rows * dOut, 1) }
      const params = Schema.decodeUnknownSync(StageAConfig)({
        steps: 10,
        microBatch: 6,
        accumulation: 4,
        queueSize: 30,
        hardNegatives: 5,
        hardNegativeRule: rule,
        warmupSteps: 2,
        seed: 9
      })
      const config = Projector.makeConfig(dIn, dOut, { dHidden: 16, dropout: 0.1 })
      const prefill = fillNormal(rng, 12 * dOut, 1)

      // the trainer
      const projA = Projector.init(config, 3)
      const optA = new Capturing([...projA.variables], { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 })
      const queueA = new TeacherQueue(30, dOut)
      queueA.enqueue(prefill, 12)
      const trainer = makeTrainer({ params, zTrain: z, hTrain: h, proj: projA, opt: optA, queue: queueA, matmul: matMulABtJs, step: 0, cursor: { epoch: 0, index: 0 } })
      const rowsA = [await trainer.next(), await trainer.next(), await trainer.next()]
      expect(trainer.scoreStats().fallbacks).toBe(0)

      // the reference: per-micro-batch forward/backward, gradients summed
      const projB = Projector.init(config, 3)
      const optB = new Capturing([...projB.variables], { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 })
      const queueB = new TeacherQueue(30, dOut)
      queueB.enqueue(prefill, 12)
      const order = new DataOrder(params.seed, rows)
      let cursor = { epoch: 0, index: 0 }
      for (let s = 0; s < 3; s++) {
        let acc: Record<string, tf.Tensor> | undefined
        let lossSum = 0
        const tau = 0.17 + (0.08 - 0.17) * (s / 10)
        for (let k = 0; k < params.accumulation; k++) {
          const batch = order.nextBatch(cursor, params.microBatch, { dropLast: true })
          cursor = batch.next
          const take = (m: { data: Float32Array; dim: number }) => {
            const out = new Float32Array(batch.indices.length * m.dim)
            batch.indices.forEach((r, i) => out.set(m.data.subarray(r * m.dim, (r + 1) * m.dim), i * m.dim))
            return out
          }
          const zb = take(z)
          const hb = take(h)
          const { value, grads } = tf.variableGrads(() => {
            const p = Projector.forward(projB, tf.tensor2d(zb, [6, dIn]), { rng: makeRng(Projector.dropoutSeed(params.seed, s, k)) })
            const sel = queueB.selectHard(p.dataSync() as Float32Array, 6, 5, rule)
            const loss = stageALoss({ p, h: tf.tensor2d(hb, [6, dOut]), negatives: hardNegativesFromQueue(queueB, sel), tau })
            lossSum += loss.total.dataSync()[0]
            return tf.div(loss.total, params.accumulation) as tf.Scalar
          }, [...projB.variables])
          value.dispose()
          if (acc === undefined) acc = grads
          else {
            const prev: Record<string, tf.Tensor> = acc
            acc = Object.fromEntries(Object.keys(prev).map((n) => [n, tf.add(prev[n], grads[n])]))
            tf.dispose([...Object.values(prev), ...Object.values(grads)])
          }
          queueB.enqueue(hb, 6)
        }
        if (acc === undefined) throw new Error("no micro-batches")
        optB.step(acc, { lr: rowsA[s].lr, gradScale: clipCoefficient(gradNorm(acc), params.gradClip) })
        tf.dispose(Object.values(acc))
        expect(rowsA[s].loss).toBeCloseTo(lossSum / params.accumulation, 5)
        expect(rowsA[s].tau).toBeCloseTo(tau, 12)
      }
      // same gradients, step by step
      for (let s = 0; s < 3; s++) {
        for (const name of Projector.PARAM_NAMES) {
          const ga = optA.captured[s][projA.params.get(name)?.name ?? ""]
          const gb = optB.captured[s][projB.params.get(name)?.name ?? ""]
          let maxDiff = 0
          let maxAbs = 0
          for (let i = 0; i < ga.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(ga[i] - gb[i]))
            maxAbs = Math.max(maxAbs, Math.abs(gb[i]))
          }
          expect(maxDiff).toBeLessThan(1e-5 * Math.max(1, maxAbs))
        }
      }
      for (const o of [optA, optB]) o.dispose()
      Projector.dispose(projA)
      Projector.dispose(projB)
    }
  })
})
