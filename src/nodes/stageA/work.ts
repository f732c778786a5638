/**
 * The `stageA` stage's work: train the projector g (z_F → h_E space) with the Stage A objective; everything else is
 * frozen (z_F and h_E are precomputed matrices).
 *
 * One optimizer step = `accumulation` micro-batches of `microBatch` pairs (seeded epoch permutations, the last
 * partial batch of an epoch skipped). Per micro-batch, in order: p = g(z) with a dropout mask that is a pure function
 * of (seed, step, micro); hard negatives chosen from the fp16 FIFO queue against p (`hardNegativeRule`); its loss
 * (`stageALoss`); then its teachers enter the queue — as the authors' loop does. The gradient of
 * Σ loss / accumulation is taken in ONE backward pass over the stacked micro-batches (the weights do not change
 * within a step, so this equals accumulating per micro-batch, with far larger matrix products). Then global-norm
 * clipping (`gradClip`), AdamW at lr = warmup + cosine(step) (peak `lr`, floor `minLr`), τ = linear anneal
 * `tauStart` → `tauEnd` over `steps`.
 *
 * Resume: every `checkpointEvery` steps the full state (projector, AdamW moments and step, queue bits, data cursor,
 * the metrics so far) is saved in the scratch folder (`trainState.ts`); a rerun starts from the latest one and ends
 * with exactly the weights of an uninterrupted run (nothing else is random).
 *
 * Metrics: one row per step (1-based `step` = optimizer steps done; `loss`… averaged over the micro-batches; `tau`,
 * `lr` used; `gradNorm` before clipping) with `devR1`/`devMrr` on evaluation steps (every `evalEvery` and the last):
 * retrieval of the first `evalN` holdout pairs.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as path from "node:path"
import { AdamW, clipCoefficient, clipScale, gradNorm, gradNormTensor } from "../../backend/adamw.ts"
import { sumAll } from "../../backend/ops.ts"
import { onHost, readScalars } from "../../backend/read.ts"
import { DeviceQueue } from "../../train/deviceQueue.ts"
import { devRetrieval } from "../../metrics/projectorRetrieval.ts"
import type { RetrievalMetrics } from "../../metrics/retrieval.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import * as Projector from "../../models/projector.ts"
import { makeRng } from "../../models/rng.ts"
import type { Matrix } from "../../formats/arrow/matrix.ts"
import { readMatrix } from "../../formats/arrow/matrix.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter } from "../../formats/parquet/table.ts"
import { METRICS_COLUMNS, type MetricsRow } from "./metrics.ts"
import type { StageAParams } from "./params.ts"
import type { MatMulABt } from "../../train/hostMath.ts"
import { TeacherQueue } from "../../train/queue.ts"
import { linearAnneal, warmupCosine } from "../../train/schedule.ts"
import { type HardNegatives, hardNegativesFromQueue, stageALoss } from "../../train/stageALoss.ts"
import type { StageALossConfig } from "../../train/stageALoss.ts"
import {
  adamWStateFromOptimizer,
  DataOrder,
  loadLatestCheckpoint,
  optimizerStateFromAdamW,
  saveCheckpoint
} from "../../train/trainState.ts"
import type { DataCursor, TrainState } from "../../train/trainState.ts"
import { hostMatmul } from "../../backend/host.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { saveProjectorDir } from "../../artifacts/projector.ts"
import { selectionQuery, StepScores } from "./stepScores.ts"
import { describeError } from "../../errors/describe.ts"

export type { StageAParams }

const STAGE = "stageA"
/** Cosine above which a queued teacher counts as a copy of a row's own teacher (`excludePositives`). */
const SAME_TEACHER_COSINE = 0.9999

const METRIC_KEYS = ["step", "loss", "nce", "ncePH", "nceHP", "dir", "norm", "tau", "lr", "gradNorm", "devR1", "devMrr"] as const

const asMetricsRows = (u: unknown): Array<MetricsRow> | undefined => {
  if (!Array.isArray(u)) return undefined
  const out: Array<MetricsRow> = []
  for (const r of u) {
    if (typeof r !== "object" || r === null) return undefined
    const rec = r as Record<string, unknown>
    const num = (k: string): number | undefined => (typeof rec[k] === "number" ? (rec[k] as number) : rec[k] === null ? Number.NaN : undefined)
    const vals = METRIC_KEYS.slice(0, 10).map(num)
    if (vals.some((v) => v === undefined)) return undefined
    const dev = (k: string): number | null => (typeof rec[k] === "number" ? (rec[k] as number) : null)
    const [step, loss, nce, ncePH, nceHP, dir, norm, tau, lr, gn] = vals as Array<number>
    out.push({ step, loss, nce, ncePH, nceHP, dir, norm, tau, lr, gradNorm: gn, devR1: dev("devR1"), devMrr: dev("devMrr") })
  }
  return out
}

const rowsOf = (m: Matrix, idx: ArrayLike<number>): Float32Array => {
  const d = m.dim
  const out = new Float32Array(idx.length * d)
  for (let i = 0; i < idx.length; i++) out.set(m.data.subarray(idx[i] * d, (idx[i] + 1) * d), i * d)
  return out
}

/** What one training run steps over: the settings, the data, and the mutable state (projector, optimizer, queue). */
export interface TrainerSetup {
  readonly params: Omit<StageAParams, "evalN">
  readonly zTrain: Matrix
  readonly hTrain: Matrix
  readonly proj: Projector.Projector
  readonly opt: AdamW
  readonly queue: TeacherQueue
  /** The product used for hard-negative scores (host queue). */
  readonly matmul: MatMulABt
  /** On a device backend: the queue mirrored on the device; selection then stays on the device (`deviceQueue.ts`). */
  readonly device?: DeviceQueue
  /** Optimizer steps already done (0 for a fresh run). */
  readonly step: number
  readonly cursor: DataCursor
}

export interface Trainer {
  /** Optimizer steps done so far. */
  readonly step: () => number
  readonly cursor: () => DataCursor
  /** Runs one optimizer step (all micro-batches) and returns its metrics row (dev numbers null). Rejects on failure. */
  readonly next: () => Promise<MetricsRow>
  /** Hard-negative score calls answered by the step's block product vs by the plain product (see `StepScores`). */
  readonly scoreStats: () => { readonly hits: number; readonly fallbacks: number }
}

/**
 * The Stage A step loop over `setup` (see the module doc). Tensors are freed every step.
 *
 * The weights only change at the optimizer update, so one step is ONE forward/backward pass over all its
 * micro-batches (rows stacked, each micro-batch's dropout mask from its own seed), with each micro-batch's loss
 * computed on its own rows and negatives, in micro-batch order, enqueuing its teachers after its selection; the
 * gradient of Σ_k loss_k / accumulation equals the accumulated one. Hard-negative scores of the whole step are one
 * block product (`StepScores`).
 */
export const makeTrainer = (setup: TrainerSetup): Trainer => {
  const { params: p, zTrain, hTrain, proj, opt, queue } = setup
  const dIn = zTrain.dim
  const dOut = hTrain.dim
  const dHidden = proj.config.dHidden
  const lossConfig: StageALossConfig = { lambdaDir: p.lambdaDir, lambdaNorm: p.lambdaNorm, dirReduction: p.dirReduction }
  const order = new DataOrder(p.seed, zTrain.rows)
  const scores = new StepScores(queue, setup.matmul)
  const A = p.accumulation
  const mb = p.microBatch
  let step = setup.step
  let cursor = setup.cursor
  const device = setup.device
  /** The current step's schedule values, its rows micro-batch after micro-batch, their teachers and dropout masks. */
  const stepInputs = () => {
    const s = step
    const tau = linearAnneal(s, { from: p.tauStart, to: p.tauEnd, totalSteps: p.steps })
    const lr = warmupCosine(s, { peak: p.lr, warmupSteps: p.warmupSteps, totalSteps: p.steps, floor: p.minLr })
    const rows = A * mb
    const idx = new Uint32Array(rows)
    let c = cursor
    for (let k = 0; k < A; k++) {
      const batch = order.nextBatch(c, mb, { dropLast: true })
      idx.set(batch.indices, k * mb)
      c = batch.next
    }
    const mask = new Float32Array(rows * dHidden)
    for (let k = 0; k < A; k++) {
      mask.set(Projector.dropoutMask(makeRng(Projector.dropoutSeed(p.seed, s, k)), mb, dHidden, p.dropout), k * mb * dHidden)
    }
    return { s, tau, lr, rows, idx, c, z: rowsOf(zTrain, idx), h: rowsOf(hTrain, idx), mask }
  }
  /** One step on a device backend: selection, loss, clipping and update without a read-back; one read at the end. */
  const nextOnDevice = async (dq: DeviceQueue): Promise<MetricsRow> => {
    const { s, tau, lr, rows, c, z, h, mask } = stepInputs()
    // Selection first, off the gradient tape: its top-k indices must not be differentiated (tfjs would try, and
    // fail on their int32 type). The projections are recomputed under the tape with the same masks, hence equal.
    const hAll = tf.tensor2d(h, [rows, dOut])
    const chosen: Array<HardNegatives | null> = []
    try {
      const pFixed = tf.tidy(() => Projector.forward(proj, tf.tensor2d(z, [rows, dIn]), { mask }))
      try {
        for (let k = 0; k < A; k++) {
          // tidy keeps the tensors of the returned selection and frees the rest
          const sel = tf.tidy(() => {
            const pk = tf.slice(pFixed, [k * mb, 0], [mb, dOut]) as tf.Tensor2D
            const hk = tf.slice(hAll, [k * mb, 0], [mb, dOut]) as tf.Tensor2D
            return dq.hardNegatives(pk, p.hardNegatives, p.hardNegativeRule, {
              ...(p.excludePositives ? { exclude: { teachers: hk, minCosine: SAME_TEACHER_COSINE } } : {})
            }) ?? undefined
          })
          chosen.push(sel ?? null)
          dq.enqueue(h.subarray(k * mb * dOut, (k + 1) * mb * dOut), mb)
        }
      } finally {
        pFixed.dispose()
      }
    } catch (cause) {
      hAll.dispose()
      throw cause
    }
    const freeChosen = () => {
      hAll.dispose()
      for (const c of chosen) if (c !== null) tf.dispose([c.vectors, ...(c.bias === undefined ? [] : [c.bias])])
    }
    const parts: Array<tf.Tensor> = []
    let result: { value: tf.Scalar; grads: tf.NamedTensorMap }
    try {
      result = tf.variableGrads(() => {
        const pAll = Projector.forward(proj, tf.tensor2d(z, [rows, dIn]), { mask })
        const totals: Array<tf.Scalar> = []
        for (let k = 0; k < A; k++) {
          const pk = tf.slice(pAll, [k * mb, 0], [mb, dOut]) as tf.Tensor2D
          const hk = tf.slice(hAll, [k * mb, 0], [mb, dOut]) as tf.Tensor2D
          const loss = stageALoss({ p: pk, h: hk, negatives: chosen[k], tau }, lossConfig)
          for (const term of [loss.total, loss.nce, loss.ncePH, loss.nceHP, loss.dir, loss.norm]) parts.push(tf.keep(term))
          totals.push(loss.total)
        }
        return tf.div(sumAll(totals), A) as tf.Scalar
      }, [...proj.variables])
    } catch (cause) {
      freeChosen()
      tf.dispose(parts)
      throw cause
    }
    const { value, grads } = result
    const norm = gradNormTensor(grads)
    const scale = clipScale(norm, p.gradClip)
    try {
      opt.step(grads, { lr, gradScale: scale })
      const values = await readScalars([...parts, norm])
      step = s + 1
      cursor = c
      const mean = (j: number) => {
        let acc = 0
        for (let k = 0; k < A; k++) acc += values[k * 6 + j]
        return acc / A
      }
      return {
        step: s + 1,
        loss: mean(0),
        nce: mean(1),
        ncePH: mean(2),
        nceHP: mean(3),
        dir: mean(4),
        norm: mean(5),
        tau,
        lr,
        gradNorm: values[values.length - 1],
        devR1: null,
        devMrr: null
      }
    } finally {
      freeChosen()
      tf.dispose([value, norm, scale, ...parts, ...Object.values(grads)])
    }
  }
  const nextOnHost = (): MetricsRow => {
    const { s, tau, lr, rows, c, z, h, mask } = stepInputs()
    const sums = { loss: 0, nce: 0, ncePH: 0, nceHP: 0, dir: 0, norm: 0 }
    const { value, grads } = tf.variableGrads(() => {
      const pAll = Projector.forward(proj, tf.tensor2d(z, [rows, dIn]), { mask })
      const pVals = pAll.dataSync() as Float32Array
      scores.begin(
        Array.from({ length: A }, (_, k) => selectionQuery(pVals.subarray(k * mb * dOut, (k + 1) * mb * dOut), mb, dOut, p.hardNegativeRule))
      )
      const totals: Array<tf.Scalar> = []
      for (let k = 0; k < A; k++) {
        const hk = h.subarray(k * mb * dOut, (k + 1) * mb * dOut)
        const sel = queue.selectHard(pVals.subarray(k * mb * dOut, (k + 1) * mb * dOut), mb, p.hardNegatives, p.hardNegativeRule, {
          matmul: scores.forMicro(k),
          ...(p.excludePositives ? { exclude: { teachers: hk, minCosine: SAME_TEACHER_COSINE } } : {})
        })
        const loss = stageALoss(
          {
            p: tf.slice(pAll, [k * mb, 0], [mb, dOut]) as tf.Tensor2D,
            h: tf.tensor2d(hk, [mb, dOut]),
            negatives: hardNegativesFromQueue(queue, sel),
            tau
          },
          lossConfig
        )
        sums.loss += loss.total.dataSync()[0]
        sums.nce += loss.nce.dataSync()[0]
        sums.ncePH += loss.ncePH.dataSync()[0]
        sums.nceHP += loss.nceHP.dataSync()[0]
        sums.dir += loss.dir.dataSync()[0]
        sums.norm += loss.norm.dataSync()[0]
        totals.push(loss.total)
        queue.enqueue(hk, mb)
        scores.enqueued(mb)
      }
      return tf.div(tf.addN(totals), A) as tf.Scalar
    }, [...proj.variables])
    try {
      const norm = gradNorm(grads)
      opt.step(grads, { lr, gradScale: clipCoefficient(norm, p.gradClip) })
      step = s + 1
      cursor = c
      return {
        step: s + 1,
        loss: sums.loss / A,
        nce: sums.nce / A,
        ncePH: sums.ncePH / A,
        nceHP: sums.nceHP / A,
        dir: sums.dir / A,
        norm: sums.norm / A,
        tau,
        lr,
        gradNorm: norm,
        devR1: null,
        devMrr: null
      }
    } finally {
      tf.dispose([value, ...Object.values(grads)])
    }
  }
  const next = (): Promise<MetricsRow> => (device === undefined ? Promise.resolve().then(nextOnHost) : nextOnDevice(device))
  return { step: () => step, cursor: () => cursor, next, scoreStats: () => ({ hits: scores.hits, fallbacks: scores.fallbacks }) }
}

/** The identity of a run's settings, stored in each checkpoint: a checkpoint of other settings is not resumed. */
const runIdentity = (p: StageAParams, dims: { dIn: number; dOut: number; nTrain: number; nEval: number }): string =>
  JSON.stringify({ ...Object.fromEntries(Object.entries(p).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), ...dims })

export const runStageA = (ctx: StageContext<StageAParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const started = yield* startBackend(STAGE)
    const backend = started.tfBackend
    const { matmul, name: matmulName } = hostMatmul(started)

    const zTrain = yield* readMatrix(ctx.inputs["zF.train"]).pipe(asStageError(STAGE))
    const hTrain = yield* readMatrix(ctx.inputs["hE.train"]).pipe(asStageError(STAGE))
    const zHold = yield* readMatrix(ctx.inputs["zF.holdout"]).pipe(asStageError(STAGE))
    const hHold = yield* readMatrix(ctx.inputs["hE.holdout"]).pipe(asStageError(STAGE))
    if (zTrain.rows !== hTrain.rows || zHold.rows !== hHold.rows) {
      return yield* new StageError({
        stage: STAGE,
        message: `z_F and h_E differ in rows: train ${zTrain.rows} vs ${hTrain.rows}, holdout ${zHold.rows} vs ${hHold.rows}`,
        file: ctx.inputs["hE.train"]
      })
    }
    if (zHold.rows > 0 && (zHold.dim !== zTrain.dim || hHold.dim !== hTrain.dim)) {
      return yield* new StageError({ stage: STAGE, message: `train and holdout matrices differ in width`, file: ctx.inputs["zF.holdout"] })
    }
    if (zTrain.rows < p.microBatch) {
      return yield* new StageError({
        stage: STAGE,
        message: `stageA.microBatch ${p.microBatch} is larger than the ${zTrain.rows} training pairs`,
        file: ctx.inputs["zF.train"]
      })
    }
    const dIn = zTrain.dim
    const dOut = hTrain.dim
    const nEval = Math.min(p.evalN, zHold.rows)
    const config = Projector.makeConfig(dIn, dOut, { dHidden: p.dHidden === 0 ? 4 * dIn : p.dHidden, dropout: p.dropout })
    const identity = runIdentity(p, { dIn, dOut, nTrain: zTrain.rows, nEval })
    const ckptRoot = path.join(ctx.scratchDir, "checkpoints")

    let ck: TrainState | null = yield* loadLatestCheckpoint(ckptRoot).pipe(asStageError(STAGE))
    if (ck !== null) {
      const extra = ck.extra as { identity?: unknown } | null
      if (extra === null || typeof extra !== "object" || extra.identity !== identity) {
        ctx.log(`ignoring the checkpoint in ${ckptRoot}: it was written with other settings; starting over`)
        ck = null
      } else if (ck.step > p.steps) {
        ctx.log(`ignoring the checkpoint at step ${ck.step} > stageA.steps ${p.steps}; starting over`)
        ck = null
      }
    }
    const resumedFrom = ck?.step ?? 0
    const restoredMetrics = ck === null ? [] : asMetricsRows((ck.extra as { metrics?: unknown }).metrics)
    if (restoredMetrics === undefined) {
      return yield* new StageError({ stage: STAGE, message: `the checkpoint in ${ckptRoot} has malformed metrics`, file: ckptRoot })
    }
    const start = ck

    const outcome = yield* Effect.acquireUseRelease(
      Effect.try({
        try: () => {
          const proj = start === null ? Projector.init(config, p.seed) : Projector.fromHost(config, start.params)
          const opt = new AdamW([...proj.variables], {
            lr: p.lr,
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
            weightDecay: p.weightDecay
          })
          try {
            if (start !== null) opt.setState(adamWStateFromOptimizer(start.optimizer, (n) => proj.params.get(n as Projector.ParamName)?.name ?? n))
            const queue = start !== null && start.queue !== null ? TeacherQueue.restore(start.queue) : new TeacherQueue(p.queueSize, dOut)
            if (queue.capacity !== p.queueSize || queue.dim !== dOut) {
              throw new Error(`checkpoint queue is ${queue.capacity}×${queue.dim}, expected ${p.queueSize}×${dOut}`)
            }
            // on a device backend the queue is mirrored there, so selection needs no read-back
            const device = onHost() ? undefined : new DeviceQueue(queue)
            return { proj, opt, queue, device }
          } catch (cause) {
            // the release below never runs for a failed acquire: free the variables here, then report
            opt.dispose()
            Projector.dispose(proj)
            throw cause
          }
        },
        catch: (cause) =>
          new StageError({ stage: STAGE, message: `cannot set up training: ${describeError(cause)}`, cause })
      }),
      ({ proj, opt, queue, device }) =>
        Effect.gen(function*() {
          const trainer = makeTrainer({
            ...(device === undefined ? {} : { device }),
            params: p,
            zTrain,
            hTrain,
            proj,
            opt,
            queue,
            matmul,
            step: start?.step ?? 0,
            cursor: start?.cursor ?? { epoch: 0, index: 0 }
          })
          const metrics: Array<MetricsRow> = [...restoredMetrics]
          if (resumedFrom > 0) ctx.log(`resuming from the checkpoint at step ${resumedFrom}`)
          const bar = ctx.progress("steps", p.steps)
          if (trainer.step() > 0) bar.advance(trainer.step())

          let lastDev: RetrievalMetrics | null = null
          if (p.ablation === "untrained") ctx.log("ablation: the projector stays at its seeded initialisation (no training step)")
          while (p.ablation === "none" && trainer.step() < p.steps) {
            let row = yield* Effect.tryPromise({
              try: trainer.next,
              catch: (cause) =>
                new StageError({
                  stage: STAGE,
                  message: `step ${trainer.step() + 1} failed: ${describeError(cause)}`,
                  cause
                })
            })
            const done = row.step
            const isLast = done === p.steps
            if (nEval > 0 && (isLast || (p.evalEvery > 0 && done % p.evalEvery === 0))) {
              const dev = yield* Effect.tryPromise({
                try: () => devRetrieval(proj, zHold, hHold, nEval, matmul),
                catch: (cause) => new StageError({ stage: STAGE, message: `dev retrieval failed: ${String(cause)}`, cause })
              })
              lastDev = dev
              row = { ...row, devR1: dev.r1, devMrr: dev.mrr }
              ctx.log(
                `step ${done}/${p.steps}: loss ${row.loss.toFixed(4)} (nce ${row.nce.toFixed(4)}) τ ${row.tau.toFixed(3)} ` +
                  `lr ${row.lr.toExponential(2)} | dev R@1 ${dev.r1.toFixed(3)} MRR ${dev.mrr.toFixed(3)} (n ${nEval})`
              )
            }
            metrics.push(row)
            if (!isLast && p.checkpointEvery > 0 && done % p.checkpointEvery === 0) {
              const [params, optState] = yield* Effect.tryPromise({
                try: () => Promise.all([Projector.toHost(proj), opt.getStateAsync()]),
                catch: (cause) => new StageError({ stage: STAGE, message: `cannot read the state back for a checkpoint: ${String(cause)}`, cause })
              })
              yield* saveCheckpoint(
                ckptRoot,
                {
                  step: done,
                  params,
                  optimizer: optimizerStateFromAdamW(optState, (n) => proj.names.get(n) ?? n),
                  queue: queue.snapshot(),
                  rng: {},
                  cursor: trainer.cursor(),
                  extra: { identity, metrics }
                },
                { keepLast: 2 }
              ).pipe(asStageError(STAGE))
            }
            bar.advance(1)
            yield* Effect.yieldNow
          }
          bar.done()

          const finalWeights = yield* Effect.tryPromise({
            try: () => Projector.toHost(proj),
            catch: (cause) => new StageError({ stage: STAGE, message: `cannot read the projector back: ${String(cause)}`, cause })
          })
          yield* saveProjectorDir(ctx.outputs["projector"], config, finalWeights, p.steps).pipe(asStageError(STAGE))
          const writer = yield* openTableWriter(ctx.outputs["stageA.metrics"], METRICS_COLUMNS).pipe(asStageError(STAGE))
          yield* writer.write(metrics.map((r) => ({ ...r }))).pipe(asStageError(STAGE))
          const nRows = yield* writer.close.pipe(asStageError(STAGE))
          const first = metrics[0]
          const last = metrics[metrics.length - 1]
          if (first === undefined || last === undefined) ctx.log("no training step: the projector is its seeded initialisation")
          else ctx.log(
            `trained ${p.steps} steps (${backend}, ${matmulName} matmul${resumedFrom > 0 ? `, resumed from ${resumedFrom}` : ""}): ` +
              `loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}` +
              (lastDev === null ? "" : `; dev R@1 ${lastDev.r1.toFixed(3)} (chance ${lastDev.chanceR1.toFixed(4)})`)
          )
          return {
            rows: { "stageA.metrics": nRows },
            metrics: {
              steps: p.steps,
              resumedFrom,
              backend,
              matmul: matmulName,
              dims: { dIn, dHidden: config.dHidden, dOut },
              hardNegativeScores: trainer.scoreStats(),
              firstLoss: first?.loss ?? null,
              lastLoss: last?.loss ?? null,
              dev: lastDev
            }
          }
        }),
      ({ proj, opt, device }) =>
        Effect.sync(() => {
          device?.dispose()
          opt.dispose()
          Projector.dispose(proj)
        })
    )
    return outcome
  })
