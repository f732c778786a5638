/**
 * AdamW with decoupled weight decay, step for step the same arithmetic as PyTorch's `torch.optim.AdamW`
 * (amsgrad off): p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps).
 *
 * On the CPU backends (`cpu-blas`, `cpu`) each variable is updated by one Float32Array loop (in place on
 * `cpu-blas` when the variable's buffer is exclusively its own, else into a fresh buffer and one `assign`); on
 * any other backend the same update runs as tf ops. `clipGradNorm` is PyTorch's `clip_grad_norm_`.
 *
 * State for checkpoints: `getState()` / `setState()` (`step`, and `m`, `v` per variable name).
 */
import * as tf from "@tensorflow/tfjs"
import { BlasBackend } from "./cpuBlas/backend.ts"
import { sumAll } from "./ops.ts"

export interface AdamWOptions {
  /** Learning rate; change it per step with `opt.lr = ...` or `step(grads, lr)` (schedules). */
  readonly lr: number
  /** Default 0.9. */
  readonly beta1?: number
  /** Default 0.999. */
  readonly beta2?: number
  /** Default 1e-8. */
  readonly eps?: number
  /** Decoupled weight decay, default 0.01 (PyTorch's default). */
  readonly weightDecay?: number
  /** Which variables decay (by name); default all. */
  readonly decays?: (name: string) => boolean
  /** `auto` (default): the Float32Array loop on CPU backends, tf ops elsewhere; `ops`: always tf ops. */
  readonly impl?: "auto" | "ops"
}

export interface StepOptions {
  /** Set the learning rate for this and later steps (schedules). */
  readonly lr?: number
  /**
   * Multiply every gradient by this first (default 1): fused clipping, `clipCoefficient(gradNorm(g), max)`; on a
   * device backend pass the scalar tensor of `clipScale(gradNormTensor(g), max)`, so the step needs no read-back.
   */
  readonly gradScale?: number | tf.Scalar
}

export interface AdamWState {
  /** Number of steps taken (the t of the bias corrections). */
  readonly step: number
  readonly m: Readonly<Record<string, Float32Array>>
  readonly v: Readonly<Record<string, Float32Array>>
}

/** Moment storage: arrays on CPU backends, tensors elsewhere (converted on demand if the backend changes). */
type Moment = Float32Array | tf.Tensor

const isCpu = (): boolean => tf.backend() instanceof tf.MathBackendCPU

const cpuValues = (t: tf.Tensor, what: string): Float32Array => {
  const be = tf.backend()
  if (!(be instanceof tf.MathBackendCPU)) throw new Error(`${what}: not on a CPU backend`)
  if (t.dtype !== "float32") throw new Error(`${what}: expected float32, got ${t.dtype}`)
  const v = be.data.get(t.dataId).values
  if (v instanceof Float32Array) return v
  // A float32 tensor cast from int32/bool keeps its integer storage on CPU backends (read-only use here).
  if (v instanceof Int32Array || v instanceof Uint8Array) return Float32Array.from(v)
  throw new Error(`${what}: unexpected storage for a float32 tensor`)
}

const toArray = (m: Moment): Float32Array => (m instanceof Float32Array ? m : Float32Array.from(m.dataSync()))

export class AdamW {
  lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
  private readonly decays: (name: string) => boolean
  private readonly impl: "auto" | "ops"
  private readonly vars: ReadonlyMap<string, tf.Variable>
  private readonly m = new Map<string, Moment>()
  private readonly v = new Map<string, Moment>()
  private t = 0

  constructor(params: ReadonlyArray<tf.Variable>, options: AdamWOptions) {
    const vars = new Map<string, tf.Variable>()
    for (const p of params) {
      if (vars.has(p.name)) throw new Error(`AdamW: variable '${p.name}' given twice`)
      if (p.dtype !== "float32") throw new Error(`AdamW: variable '${p.name}' is ${p.dtype}, expected float32`)
      vars.set(p.name, p)
    }
    this.vars = vars
    this.lr = options.lr
    this.beta1 = options.beta1 ?? 0.9
    this.beta2 = options.beta2 ?? 0.999
    this.eps = options.eps ?? 1e-8
    this.weightDecay = options.weightDecay ?? 0.01
    this.decays = options.decays ?? (() => true)
    this.impl = options.impl ?? "auto"
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.t
  }

  /**
   * One update from `grads` (keyed by variable name, as `tf.variableGrads` returns them). Variables without a
   * gradient are left alone; a gradient for an unknown name is an error. Does not dispose or modify `grads`.
   * `gradScale` multiplies every gradient first (fused gradient clipping: see `clipCoefficient`).
   */
  step(grads: Readonly<Record<string, tf.Tensor>>, options: StepOptions = {}): void {
    if (options.lr !== undefined) this.lr = options.lr
    for (const name of Object.keys(grads)) {
      if (!this.vars.has(name)) throw new Error(`AdamW: gradient for unknown variable '${name}'`)
    }
    this.t++
    const bc1 = 1 - this.beta1 ** this.t
    const bc2 = 1 - this.beta2 ** this.t
    const cpu = this.impl === "auto" && isCpu()
    const given = options.gradScale ?? 1
    // the host loop wants a number (a CPU backend reads a scalar synchronously); tf ops take either
    const gradScale = typeof given === "number" || !cpu ? given : given.dataSync()[0]
    for (const [name, variable] of this.vars) {
      const g = grads[name]
      if (g === undefined) continue
      if (!tf.util.arraysEqual(g.shape, variable.shape)) {
        throw new Error(`AdamW: gradient for '${name}' has shape [${g.shape}], variable has [${variable.shape}]`)
      }
      const wd = this.decays(name) ? this.weightDecay : 0
      if (cpu) this.stepCpu(name, variable, g, wd, bc1, bc2, gradScale)
      else this.stepTf(name, variable, g, wd, bc1, bc2, gradScale)
    }
  }

  private moment(store: Map<string, Moment>, name: string, size: number, cpu: boolean): Moment {
    const cur = store.get(name)
    if (cpu) {
      if (cur instanceof Float32Array) return cur
      const arr = cur === undefined ? new Float32Array(size) : toArray(cur)
      if (cur !== undefined && !(cur instanceof Float32Array)) cur.dispose()
      store.set(name, arr)
      return arr
    }
    if (cur !== undefined && !(cur instanceof Float32Array)) return cur
    const shape = this.vars.get(name)?.shape ?? [size]
    const t = tf.keep(cur === undefined ? tf.zeros(shape) : tf.tensor(cur, shape, "float32"))
    store.set(name, t)
    return t
  }

  private stepCpu(
    name: string,
    variable: tf.Variable,
    g: tf.Tensor,
    wd: number,
    bc1: number,
    bc2: number,
    scale: number | tf.Scalar
  ): void {
    if (typeof scale !== "number") throw new Error("AdamW: the CPU step needs a numeric gradScale")
    const gradScale = scale
    const be = tf.backend()
    if (!(be instanceof tf.MathBackendCPU)) throw new Error("AdamW: CPU step on a non-CPU backend")
    const n = variable.size
    const M = this.moment(this.m, name, n, true)
    const V = this.moment(this.v, name, n, true)
    if (!(M instanceof Float32Array) || !(V instanceof Float32Array)) throw new Error("AdamW: moment storage")
    const G = cpuValues(g, `AdamW gradient '${name}'`)
    const P = cpuValues(variable, `AdamW variable '${name}'`)
    const inPlace = be instanceof BlasBackend && be.canMutate(variable.dataId)
    const O = inPlace ? P : be instanceof BlasBackend ? be.alloc(n) : new Float32Array(n)
    const b1 = this.beta1
    const b2 = this.beta2
    const c1 = (1 - b1) * gradScale
    const c2 = (1 - b2) * gradScale * gradScale
    const decay = 1 - this.lr * wd
    const stepSize = this.lr / bc1
    const invBc2Sqrt = 1 / Math.sqrt(bc2)
    const eps = this.eps
    // Double precision inside, float32 storage (m, v, p): PyTorch's float32 AdamW up to rounding.
    for (let i = 0; i < n; i++) {
      const gi = G[i]
      const m = b1 * M[i] + c1 * gi
      const v = b2 * V[i] + c2 * gi * gi
      M[i] = m
      V[i] = v
      O[i] = P[i] * decay - (stepSize * m) / (Math.sqrt(v) * invBc2Sqrt + eps)
    }
    if (!inPlace) {
      const t = tf.tensor(O, variable.shape, "float32")
      variable.assign(t)
      t.dispose()
    }
  }

  private stepTf(
    name: string,
    variable: tf.Variable,
    g0: tf.Tensor,
    wd: number,
    bc1: number,
    bc2: number,
    gradScale: number | tf.Scalar
  ): void {
    const M = this.moment(this.m, name, variable.size, false)
    const V = this.moment(this.v, name, variable.size, false)
    if (M instanceof Float32Array || V instanceof Float32Array) throw new Error("AdamW: moment storage")
    const [m, v] = tf.tidy(() => {
      const g = gradScale === 1 ? g0 : tf.mul(g0, gradScale)
      const m = tf.add(tf.mul(M, this.beta1), tf.mul(g, 1 - this.beta1))
      const v = tf.add(tf.mul(V, this.beta2), tf.mul(tf.square(g), 1 - this.beta2))
      const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.eps)
      const p = tf.sub(tf.mul(variable, 1 - this.lr * wd), tf.mul(tf.div(m, denom), this.lr / bc1))
      variable.assign(p)
      return [tf.keep(m), tf.keep(v)]
    })
    M.dispose()
    V.dispose()
    this.m.set(name, m)
    this.v.set(name, v)
  }

  /** A copy of the optimiser state (moments of variables that have had a gradient). */
  getState(): AdamWState {
    const m: Record<string, Float32Array> = {}
    const v: Record<string, Float32Array> = {}
    for (const [name, x] of this.m) m[name] = x instanceof Float32Array ? x.slice() : toArray(x)
    for (const [name, x] of this.v) v[name] = x instanceof Float32Array ? x.slice() : toArray(x)
    return { step: this.t, m, v }
  }

  /** `getState()` on any backend: moments held as tensors are read back asynchronously. */
  async getStateAsync(): Promise<AdamWState> {
    const read = async (x: Moment): Promise<Float32Array> => (x instanceof Float32Array ? x.slice() : Float32Array.from(await x.data()))
    const m: Record<string, Float32Array> = {}
    const v: Record<string, Float32Array> = {}
    for (const [name, x] of this.m) m[name] = await read(x)
    for (const [name, x] of this.v) v[name] = await read(x)
    return { step: this.t, m, v }
  }

  /** Restore a state from `getState()` (copied in). Names must be variables of this optimiser and sizes must
   *  match; variables absent from the state start from zero moments. */
  setState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`AdamW.setState: bad step ${state.step}`)
    const check = (kind: string, rec: Readonly<Record<string, Float32Array>>): void => {
      for (const [name, arr] of Object.entries(rec)) {
        const variable = this.vars.get(name)
        if (variable === undefined) throw new Error(`AdamW.setState: ${kind} for unknown variable '${name}'`)
        if (arr.length !== variable.size) {
          throw new Error(`AdamW.setState: ${kind}['${name}'] has ${arr.length} values, variable has ${variable.size}`)
        }
      }
    }
    check("m", state.m)
    check("v", state.v)
    this.disposeMoments()
    for (const [name, arr] of Object.entries(state.m)) this.m.set(name, arr.slice())
    for (const [name, arr] of Object.entries(state.v)) this.v.set(name, arr.slice())
    this.t = state.step
  }

  private disposeMoments(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) if (!(x instanceof Float32Array)) x.dispose()
    this.m.clear()
    this.v.clear()
  }

  /** Free moment tensors held on non-CPU backends. */
  dispose(): void {
    this.disposeMoments()
  }
}

/** The L2 norm over all gradients together (PyTorch's `total_norm` in `clip_grad_norm_`). `impl: "ops"` forces
 *  the tf-ops path (what non-CPU backends use). */
export const gradNorm = (grads: Readonly<Record<string, tf.Tensor>>, options: { readonly impl?: "auto" | "ops" } = {}): number => {
  const names = Object.keys(grads)
  if (names.length === 0) return 0
  if (options.impl !== "ops" && tf.backend() instanceof tf.MathBackendCPU) {
    let sq = 0
    for (const name of names) {
      const G = cpuValues(grads[name], `gradNorm '${name}'`)
      for (let i = 0; i < G.length; i++) sq += G[i] * G[i]
    }
    return Math.sqrt(sq)
  }
  return tf.tidy(() => tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]))))).dataSync()[0])
}

/** The global L2 norm as a scalar tensor (tf ops: what a device backend computes without reading back). */
export const gradNormTensor = (grads: Readonly<Record<string, tf.Tensor>>): tf.Scalar =>
  tf.tidy(() => {
    const names = Object.keys(grads)
    return names.length === 0 ? tf.scalar(0) : (tf.sqrt(sumAll(names.map((n) => tf.sum(tf.square(grads[n]))))) as tf.Scalar)
  })

/** `clipCoefficient` on a scalar tensor: min(maxNorm / (norm + 1e-6), 1). */
export const clipScale = (norm: tf.Scalar, maxNorm: number): tf.Scalar =>
  tf.tidy(() => tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1) as tf.Scalar)

/** PyTorch's clipping factor: min(maxNorm / (norm + 1e-6), 1) (NaN when the norm is NaN). */
export const clipCoefficient = (norm: number, maxNorm: number): number => Math.min(maxNorm / (norm + 1e-6), 1)

/**
 * PyTorch's `clip_grad_norm_(max_norm, norm_type=2)`: the L2 norm over all gradients together; when it exceeds
 * `maxNorm`, every gradient is scaled by maxNorm/(norm + 1e-6). Scales in place: on `cpu-blas` the buffers
 * themselves when exclusively owned, otherwise the map entry is replaced by the scaled tensor and the old one
 * disposed (so the map still holds exactly the tensors the caller must dispose). Returns the norm before
 * clipping (NaN/Infinity pass through, as in PyTorch with `error_if_nonfinite=False`). `impl: "ops"` forces the
 * tf-ops path (what non-CPU backends use).
 *
 * With AdamW, `opt.step(grads, { gradScale: clipCoefficient(gradNorm(grads), maxNorm) })` does the same without
 * a separate pass over the gradients (and without modifying them).
 */
export const clipGradNorm = (
  grads: Record<string, tf.Tensor>,
  maxNorm: number,
  options: { readonly impl?: "auto" | "ops" } = {}
): number => {
  const norm = gradNorm(grads, options)
  const coef = clipCoefficient(norm, maxNorm)
  if (coef < 1 || Number.isNaN(coef)) {
    const be = tf.backend()
    const loops = options.impl !== "ops" && be instanceof tf.MathBackendCPU
    for (const name of Object.keys(grads)) {
      const g = grads[name]
      if (loops && be instanceof BlasBackend && be.canMutate(g.dataId)) {
        const G = cpuValues(g, `clipGradNorm '${name}'`)
        for (let i = 0; i < G.length; i++) G[i] = G[i] * coef
      } else {
        grads[name] = tf.mul(g, coef)
        g.dispose()
      }
    }
  }
  return norm
}
