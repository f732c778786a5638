/**
 * The supervised fine-tuning loop shared by Stage B and the direct fine-tune baseline: seeded data order,
 * gradient accumulation, global-norm clipping, AdamW per parameter group with the linear warmup/decay schedule
 * (Hugging Face `get_linear_schedule_with_warmup`: step 0 runs at lr 0), periodic validation, metrics rows, and
 * exact checkpoint/resume.
 *
 * One optimizer step = up to `accumulation` micro-batches of `microBatch` examples from `DataOrder` (seeded epoch
 * permutations; a batch never crosses an epoch; the last one of an epoch is short). The loss of each micro-batch is
 * divided by the number of micro-batches of its step, so the accumulated gradient is their mean. Training covers
 * `epochs` epochs: total steps = ⌈epochs·⌈n/microBatch⌉ / accumulation⌉, capped by `maxSteps` (> 0); the schedule
 * spans the total.
 *
 * Randomness: the only random draws are LoRA dropout masks, and each forward gets its own generator seeded from
 * (seed, step, micro, pass) (`dropoutModel`), so nothing random needs checkpointing. A checkpoint
 * (`src/train/trainState.ts`) holds every trainable tensor and both AdamW moments under stable names, each group's
 * AdamW step count, the data cursor and the metrics rows so far; a rerun resumes from the newest one and ends with the
 * bytes an uninterrupted run ends with. A checkpoint of other settings (its `identity` differs) is ignored.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { AdamW, clipCoefficient, clipScale, gradNorm, gradNormTensor } from "../backend/adamw.ts"
import { onHost, readFloat32, readScalars } from "../backend/read.ts"
import { asStageError } from "../pipeline/stageError.ts"
import type { LlamaModel } from "../models/llama.ts"
import { withLora } from "../models/llama.ts"
import { LORA_TARGETS, peftName } from "../models/lora.ts"
import { deriveSeed, makeRng } from "../models/rng.ts"
import type { HostTensor } from "../models/safetensors.ts"
import { StageError } from "../pipeline/errors.ts"
import type { Progress } from "../pipeline/stage.ts"
import { linearWarmup } from "./schedule.ts"
import { DataOrder, loadLatestCheckpoint, saveCheckpoint } from "./trainState.ts"
import type { DataCursor, OptimizerState } from "./trainState.ts"
import { describeError } from "../errors/describe.ts"

/** A set of variables sharing one AdamW (learning rate, weight decay). */
export interface ParamGroup {
  readonly name: string
  /** Stable name (as stored in checkpoints) → variable. */
  readonly variables: ReadonlyMap<string, tf.Variable>
  /** Peak learning rate. */
  readonly lr: number
  readonly weightDecay: number
}

export interface LoopSettings {
  readonly seed: number
  /** Number of training examples. */
  readonly examples: number
  readonly microBatch: number
  readonly accumulation: number
  readonly epochs: number
  readonly maxSteps: number
  readonly warmupFraction: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly gradClip: number
  readonly checkpointEvery: number
  readonly evalEvery: number
}

/** The loop settings of a stage's params (the fields Stage B and the fine-tune share) for `examples` rows. */
export const loopSettingsOf = (p: Omit<LoopSettings, "examples">, examples: number): LoopSettings => ({
  seed: p.seed,
  examples,
  microBatch: p.microBatch,
  accumulation: p.accumulation,
  epochs: p.epochs,
  maxSteps: p.maxSteps,
  warmupFraction: p.warmupFraction,
  beta1: p.beta1,
  beta2: p.beta2,
  eps: p.eps,
  gradClip: p.gradClip,
  checkpointEvery: p.checkpointEvery,
  evalEvery: p.evalEvery
})

/** The optimizer steps a run takes. */
export const planTotalSteps = (s: Pick<LoopSettings, "examples" | "microBatch" | "accumulation" | "epochs" | "maxSteps">): number => {
  const full = Math.ceil((s.epochs * Math.ceil(s.examples / s.microBatch)) / s.accumulation)
  return s.maxSteps > 0 ? Math.min(full, s.maxSteps) : full
}

/** A metrics row: `step` (optimizer steps done), logged values (null = not computed at that step). */
export type MetricsRow = Readonly<Record<string, number | null>>

export interface MicroStep {
  /** This micro-batch's loss (the loop divides it by the step's micro-batch count). */
  readonly loss: tf.Scalar
  /** Scalars to log, averaged over the step's micro-batches (null = not computed). */
  readonly logs: Readonly<Record<string, tf.Scalar | null>>
}

export interface LoopHooks {
  /** Runs inside `tf.variableGrads`: the loss of micro-batch `micro` of optimizer step `step` (0-based). */
  readonly micro: (step: number, micro: number, indices: Uint32Array) => MicroStep
  /** Validation once `steps` optimizer steps are done; the values join that step's row. */
  readonly evaluate: (steps: number) => Promise<Readonly<Record<string, number | null>>>
  /** Extra values logged after every optimizer step (e.g. the adapter gate). */
  readonly afterStep?: () => Promise<Readonly<Record<string, number | null>>>
}

export interface LoopSpec {
  readonly stage: string
  readonly settings: LoopSettings
  /** The first group's learning rate is logged as `lr`, the others as `lr<Name>` (`lrColumn`). */
  readonly groups: ReadonlyArray<ParamGroup>
  readonly hooks: LoopHooks
  /** Names of the micro logs and of the evaluation values (columns of every row). */
  readonly logKeys: ReadonlyArray<string>
  readonly evalKeys: ReadonlyArray<string>
  /** A checkpoint whose identity differs is not resumed. */
  readonly identity: string
  /** Folder of the checkpoints (inside the stage's scratch folder). */
  readonly checkpointRoot: string
  readonly log: (message: string) => void
  readonly progress: (label: string, total?: number) => Progress
  /** Stop (with a checkpoint) once this many steps are done, as a crash would (tests). */
  readonly haltAfter?: number
}

export interface LoopResult {
  readonly rows: ReadonlyArray<MetricsRow>
  readonly totalSteps: number
  readonly resumedFrom: number
  /** True when stopped by `haltAfter` before the end. */
  readonly halted: boolean
}

/** The metrics column of a group's learning rate: `lr` for the first group, `lr<Name>` for the others. */
export const lrColumn = (group: string, index: number): string =>
  index === 0 ? "lr" : `lr${group.charAt(0).toUpperCase()}${group.slice(1)}`

/** The LoRA variables under stable names `lora/<PEFT tensor name>`. */
export const loraGroupVariables = (model: LlamaModel): Map<string, tf.Variable> => {
  const out = new Map<string, tf.Variable>()
  if (model.lora === undefined) return out
  model.lora.layers.forEach((layer, l) => {
    for (const t of LORA_TARGETS) {
      const pair = layer[t]
      if (pair === undefined) continue
      out.set(`lora/${peftName(model.config, l, t, "A")}`, pair.a)
      out.set(`lora/${peftName(model.config, l, t, "B")}`, pair.b)
    }
  })
  return out
}

/** `model` whose LoRA dropout draws from its own stream for (seed, step, micro, pass). */
export const dropoutModel = (model: LlamaModel, seed: number, step: number, micro: number, pass: string): LlamaModel =>
  model.lora === undefined
    ? model
    : withLora(model, { ...model.lora, dropoutRng: makeRng(deriveSeed(seed, `lora-dropout:${step}:${micro}:${pass}`)) })

const stepKey = (group: string): string => `step/${group}`

const rowsFromExtra = (u: unknown): Array<MetricsRow> | undefined => {
  if (!Array.isArray(u)) return undefined
  const out: Array<MetricsRow> = []
  for (const r of u) {
    if (r === null || typeof r !== "object" || Array.isArray(r)) return undefined
    const row: Record<string, number | null> = {}
    for (const [k, v] of Object.entries(r as Record<string, unknown>)) {
      if (v !== null && typeof v !== "number") return undefined
      row[k] = v
    }
    out.push(row)
  }
  return out
}

const mean = (xs: ReadonlyArray<number | null>): number | null => {
  const vals = xs.filter((x): x is number => x !== null)
  return vals.length === 0 ? null : vals.reduce((a, b) => a + b, 0) / vals.length
}

const errorOf = (stage: string, what: string) => (cause: unknown): StageError =>
  new StageError({ stage, message: `${what}: ${describeError(cause)}`, cause })

export const runLoop = (spec: LoopSpec): Effect.Effect<LoopResult, StageError> =>
  Effect.gen(function*() {
    const s = spec.settings
    const totalSteps = planTotalSteps(s)
    const stableOf = new Map<string, string>()
    const allVars = new Map<string, tf.Variable>()
    for (const g of spec.groups) {
      for (const [stable, v] of g.variables) {
        if (allVars.has(stable)) return yield* new StageError({ stage: spec.stage, message: `parameter ${stable} is in two groups` })
        allVars.set(stable, v)
        stableOf.set(v.name, stable)
      }
    }
    const makeOptimizers = Effect.try({
      try: () =>
        spec.groups.map(
          (g) => new AdamW([...g.variables.values()], { lr: g.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: g.weightDecay })
        ),
      catch: errorOf(spec.stage, "cannot create the optimizers")
    })
    const disposeOptimizers = (optimizers: ReadonlyArray<AdamW>) => Effect.sync(() => optimizers.forEach((o) => o.dispose()))
    return yield* Effect.acquireUseRelease(makeOptimizers, (optimizers) => Effect.gen(function*() {
      // ---- resume
      let ck = yield* loadLatestCheckpoint(spec.checkpointRoot).pipe(asStageError(spec.stage))
      if (ck !== null) {
        const extra = ck.extra as { identity?: unknown } | null
        if (extra === null || typeof extra !== "object" || extra.identity !== spec.identity) {
          spec.log(`ignoring the checkpoint in ${spec.checkpointRoot}: it was written with other settings; starting over`)
          ck = null
        } else if (ck.step > totalSteps) {
          spec.log(`ignoring the checkpoint at step ${ck.step} > ${totalSteps} steps; starting over`)
          ck = null
        }
      }
      const rows: Array<MetricsRow> = []
      let step = 0
      let cursor: DataCursor = { epoch: 0, index: 0 }
      if (ck !== null) {
        const state = ck
        const restored = rowsFromExtra((state.extra as { rows?: unknown }).rows)
        if (restored === undefined) {
          return yield* new StageError({ stage: spec.stage, message: `the checkpoint in ${spec.checkpointRoot} has malformed metrics` })
        }
        yield* Effect.try({
          try: () => {
            for (const [stable, v] of allVars) {
              const t = state.params.get(stable)
              if (t === undefined) throw new Error(`the checkpoint has no parameter ${stable}`)
              if (t.data.length !== v.size) throw new Error(`checkpoint parameter ${stable} has ${t.data.length} values, expected ${v.size}`)
              tf.tidy(() => v.assign(tf.tensor(t.data, v.shape, "float32")))
            }
            spec.groups.forEach((g, i) => {
              const m: Record<string, Float32Array> = {}
              const vv: Record<string, Float32Array> = {}
              for (const [stable, v] of g.variables) {
                const a = state.optimizer.tensors.get(`m/${stable}`)
                const b = state.optimizer.tensors.get(`v/${stable}`)
                if (a !== undefined) m[v.name] = a
                if (b !== undefined) vv[v.name] = b
              }
              const t = state.optimizer.scalars[stepKey(g.name)]
              if (t === undefined) throw new Error(`the checkpoint has no AdamW step for group ${g.name}`)
              optimizers[i].setState({ step: t, m, v: vv })
            })
          },
          catch: errorOf(spec.stage, `cannot resume from ${spec.checkpointRoot}`)
        })
        rows.push(...restored)
        step = state.step
        cursor = state.cursor
        spec.log(`resuming from the checkpoint at step ${step}`)
      }
      const resumedFrom = step

      const checkpoint = (done: number): Effect.Effect<void, StageError> =>
        Effect.gen(function*() {
          const { params, states } = yield* Effect.tryPromise({
            try: async () => {
              const params = new Map<string, HostTensor>()
              for (const [stable, v] of allVars) params.set(stable, { shape: [...v.shape], data: await readFloat32(v) })
              const states = await Promise.all(optimizers.map((o) => o.getStateAsync()))
              return { params, states }
            },
            catch: errorOf(spec.stage, "cannot read the state back for a checkpoint")
          })
          const tensors = new Map<string, Float32Array>()
          const scalars: Record<string, number> = {}
          spec.groups.forEach((g, i) => {
            const st = states[i]
            for (const [name, a] of Object.entries(st.m)) tensors.set(`m/${stableOf.get(name) ?? name}`, a)
            for (const [name, a] of Object.entries(st.v)) tensors.set(`v/${stableOf.get(name) ?? name}`, a)
            scalars[stepKey(g.name)] = st.step
          })
          const optimizer: OptimizerState = { tensors, scalars }
          yield* saveCheckpoint(
            spec.checkpointRoot,
            { step: done, params, optimizer, queue: null, rng: {}, cursor, extra: { identity: spec.identity, rows } },
            { keepLast: 2 }
          ).pipe(asStageError(spec.stage))
        })

      const order = new DataOrder(s.seed, s.examples)
      const bar = spec.progress("steps", totalSteps)
      if (step > 0) bar.advance(step)

      const device = !onHost()
      const trainStep = async (): Promise<MetricsRow> => {
        const micros: Array<Uint32Array> = []
        let next = cursor
        for (let m = 0; m < s.accumulation; m++) {
          const b = order.nextBatch(next, s.microBatch)
          if (b.epoch >= s.epochs) break
          micros.push(b.indices)
          next = b.next
        }
        if (micros.length === 0) throw new Error(`no data left for step ${step + 1} (epochs exhausted)`)
        const lrs = spec.groups.map((g) => linearWarmup(step, { peak: g.lr, totalSteps, warmupFraction: s.warmupFraction }))
        // each micro-batch's logged scalars, kept as tensors and read once per step (a GPU waits once)
        const logged = new Map<string, Array<tf.Tensor | null>>(spec.logKeys.map((k) => [k, []]))
        const kept: Array<tf.Tensor> = []
        let acc: Record<string, tf.Tensor> | undefined
        let norm: tf.Scalar | undefined
        let scale: tf.Scalar | undefined
        try {
          micros.forEach((indices, m) => {
            {
              const { value, grads } = tf.variableGrads(() => {
                const out = spec.hooks.micro(step, m, indices)
                for (const k of spec.logKeys) {
                  const t = out.logs[k]
                  if (t === undefined) throw new Error(`micro-batch did not log ${k}`)
                  if (t !== null) kept.push(tf.keep(t))
                  logged.get(k)!.push(t)
                }
                return tf.div(out.loss, micros.length) as tf.Scalar
              }, [...allVars.values()])
              value.dispose()
              if (acc === undefined) {
                acc = grads
              } else {
                const prev: Record<string, tf.Tensor> = acc
                const sum: Record<string, tf.Tensor> = {}
                for (const name of Object.keys(prev)) {
                  const g = grads[name]
                  sum[name] = g === undefined ? prev[name].clone() : tf.add(prev[name], g)
                }
                for (const name of Object.keys(grads)) if (!(name in prev)) sum[name] = grads[name].clone()
                tf.dispose([...Object.values(prev), ...Object.values(grads)])
                acc = sum
              }
            }
          })
          if (acc === undefined) throw new Error("no gradients")
          const grads: Record<string, tf.Tensor> = acc
          // host backends: the norm as a number, exactly as before; device backends: clip on the device, read later
          let normValue: number | undefined
          if (device) {
            norm = gradNormTensor(grads)
            scale = clipScale(norm, s.gradClip)
          } else {
            normValue = gradNorm(grads)
          }
          const gradScale = scale ?? clipCoefficient(normValue!, s.gradClip)
          spec.groups.forEach((g, i) => {
            const sub: Record<string, tf.Tensor> = {}
            for (const v of g.variables.values()) if (grads[v.name] !== undefined) sub[v.name] = grads[v.name]
            optimizers[i].step(sub, { lr: lrs[i], gradScale })
          })
          const order = [...spec.logKeys.flatMap((k) => logged.get(k)!.filter((t): t is tf.Tensor => t !== null)), ...(norm === undefined ? [] : [norm])]
          const values = await readScalars(order)
          let at = 0
          const logs = new Map<string, Array<number | null>>(
            spec.logKeys.map((k) => [k, logged.get(k)!.map((t) => (t === null ? null : values[at++]))])
          )
          if (norm !== undefined) normValue = values[at++]
          cursor = next
          step += 1
          const row: Record<string, number | null> = { step }
          for (const k of spec.logKeys) row[k] = mean(logs.get(k)!)
          spec.groups.forEach((g, i) => {
            row[lrColumn(g.name, i)] = lrs[i]
          })
          row["gradNorm"] = normValue!
          return row
        } finally {
          tf.dispose(kept)
          if (norm !== undefined) tf.dispose([norm, ...(scale === undefined ? [] : [scale])])
          if (acc !== undefined) tf.dispose(Object.values(acc as Record<string, tf.Tensor>))
        }
      }

      let halted = false
      while (step < totalSteps) {
        let row = yield* Effect.tryPromise({ try: trainStep, catch: errorOf(spec.stage, `step ${step + 1} failed`) })
        const done = step
        if (spec.hooks.afterStep !== undefined) {
          const after = spec.hooks.afterStep
          row = { ...row, ...(yield* Effect.tryPromise({ try: () => after(), catch: errorOf(spec.stage, "logging failed") })) }
        }
        const evalNow = done === totalSteps || (s.evalEvery > 0 && done % s.evalEvery === 0)
        const evals: Record<string, number | null> = Object.fromEntries(spec.evalKeys.map((k) => [k, null]))
        if (evalNow) {
          Object.assign(evals, yield* Effect.tryPromise({ try: () => spec.hooks.evaluate(done), catch: errorOf(spec.stage, "validation failed") }))
        }
        row = { ...row, ...evals }
        rows.push(row)
        if (evalNow) {
          const shown = Object.entries(row)
            .filter(([k, v]) => k !== "step" && v !== null)
            .map(([k, v]) => `${k} ${Math.abs(v as number) >= 1e-3 || v === 0 ? (v as number).toFixed(4) : (v as number).toExponential(2)}`)
          spec.log(`step ${done}/${totalSteps}: ${shown.join(", ")}`)
        }
        bar.advance(1)
        if (spec.haltAfter !== undefined && done === spec.haltAfter && done < totalSteps) {
          yield* checkpoint(done)
          halted = true
          break
        }
        if (done < totalSteps && s.checkpointEvery > 0 && done % s.checkpointEvery === 0) yield* checkpoint(done)
        yield* Effect.yieldNow
      }
      bar.done()
      const result: LoopResult = { rows, totalSteps, resumedFrom, halted }
      return result
    }), disposeOptimizers)
  })
