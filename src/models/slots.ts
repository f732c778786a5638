/**
 * The Stage B slot module: one Stage A vector in, K soft tokens out (paper §4.2; authors' code `sft/modeling.py`).
 *
 *   v = g(z_F)                                   the frozen Stage A projector, evaluation mode (no dropout)
 *   s = LN₀(v / max(‖v‖, 1e-12)) · scale         ForeignScale: L2-normalise, non-affine LayerNorm, learned scalar
 *   a = s + clamp(tanh g, 0, gateMax) · W2(GELU(W1(LN(s))))     gated adapter, g₀ = 0.5, gateMax 0.7
 *   e = W_b(GELU(W_a a))                         expander Linear(d→2d) → GELU → Linear(2d→K·d)
 *   slots = LN(reshape(e, [K, d]))               per-slot affine LayerNorm → [K, d]
 *
 * The K rows overwrite the input embeddings at the `<f0>`…`<f{K−1}>` positions (`slotOverrides`, llama.ts overrides).
 *
 * `scale` starts at the median L2 norm of the decoder's input-embedding rows ("median-embedding-norm", the paper) or
 * at 1.0 ("one", the code). The median of an even count is the mean of the two middle values (`medianRowNorm`).
 *
 * Parameters (PyTorch layout: Linear weights [out, in]) and their stable names, as stored in `slots.safetensors`:
 *   scale.scale []                     adapter.ln.weight [d], adapter.ln.bias [d]
 *   adapter.w1.weight [h, d], .bias [h]    adapter.w2.weight [d, h], .bias [d]    adapter.g []
 *   expander.net.0.weight [2d, d], .bias [2d]   expander.net.2.weight [K·d, 2d], .bias [K·d]
 *   expander.ln.weight [d], expander.ln.bias [d]
 * Initialisation follows the code: adapter W1/W2 xavier-uniform with gain 0.5, expander Linears xavier-uniform with
 * gain 0.1 (bound = gain·√(6/(fan_in+fan_out))), biases 0, LayerNorm weights 1 and biases 0, g = gateInit. Each
 * random tensor draws from its own stream `makeRng(deriveSeed(seed, "slots/<name>"))`, so the bytes depend only on
 * (seed, config).
 *
 * Like the projector, tf variable names carry a prefix (tfjs registers names globally); `params` maps stable names to
 * variables and `names` maps tf names back.
 */
import * as tf from "@tensorflow/tfjs"
import { readFloat32 } from "../backend/read.ts"
import { Effect } from "effect"
import { CheckpointError } from "./errors.ts"
import type { EmbeddingOverrides } from "./llama.ts"
import type { Projector } from "./projector.ts"
import { forward as projectorForward, gelu } from "./projector.ts"
import { deriveSeed, fillUniform, makeRng } from "./rng.ts"
import type { HostTensor } from "./safetensors.ts"
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors.ts"
import { describeError } from "../errors/describe.ts"

export type ScaleInitRule = "median-embedding-norm" | "one"

export interface SlotConfig {
  /** d: the decoder's hidden size (= the projector's output size). */
  readonly dim: number
  /** K: slots per foreign vector (paper 8). */
  readonly slots: number
  /** Hidden width of the gated adapter (code: d). */
  readonly adapterHidden: number
  /** Initial value of the gate parameter g (code 0.5; the gate is clamp(tanh g, 0, gateMax)). */
  readonly gateInit: number
  /** Upper clamp of the gate (code 0.7). */
  readonly gateMax: number
  /** Epsilon of every LayerNorm here (PyTorch default 1e-5). */
  readonly lnEps: number
  /** The initial value of the learned scale (see `resolveScaleInit`). */
  readonly scaleInit: number
}

/** A config with the code's defaults for everything but d, K and the initial scale. */
export const makeSlotConfig = (
  dim: number,
  slots: number,
  options?: { readonly adapterHidden?: number; readonly gateInit?: number; readonly gateMax?: number; readonly lnEps?: number; readonly scaleInit?: number }
): SlotConfig => ({
  dim,
  slots,
  adapterHidden: options?.adapterHidden !== undefined && options.adapterHidden > 0 ? options.adapterHidden : dim,
  gateInit: options?.gateInit ?? 0.5,
  gateMax: options?.gateMax ?? 0.7,
  lnEps: options?.lnEps ?? 1e-5,
  scaleInit: options?.scaleInit ?? 1
})

export const SLOT_PARAM_NAMES = [
  "scale.scale",
  "adapter.ln.weight",
  "adapter.ln.bias",
  "adapter.w1.weight",
  "adapter.w1.bias",
  "adapter.w2.weight",
  "adapter.w2.bias",
  "adapter.g",
  "expander.net.0.weight",
  "expander.net.0.bias",
  "expander.net.2.weight",
  "expander.net.2.bias",
  "expander.ln.weight",
  "expander.ln.bias"
] as const
export type SlotParamName = (typeof SLOT_PARAM_NAMES)[number]

/** The shape of every parameter. */
export const slotParamShapes = (c: SlotConfig): Record<SlotParamName, ReadonlyArray<number>> => {
  const d = c.dim
  const h = c.adapterHidden
  return {
    "scale.scale": [],
    "adapter.ln.weight": [d],
    "adapter.ln.bias": [d],
    "adapter.w1.weight": [h, d],
    "adapter.w1.bias": [h],
    "adapter.w2.weight": [d, h],
    "adapter.w2.bias": [d],
    "adapter.g": [],
    "expander.net.0.weight": [2 * d, d],
    "expander.net.0.bias": [2 * d],
    "expander.net.2.weight": [c.slots * d, 2 * d],
    "expander.net.2.bias": [c.slots * d],
    "expander.ln.weight": [d],
    "expander.ln.bias": [d]
  }
}

const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** The number of trainable values. */
export const slotParamCount = (c: SlotConfig): number => SLOT_PARAM_NAMES.reduce((n, name) => n + size(slotParamShapes(c)[name]), 0)

const validate = (c: SlotConfig): void => {
  for (const [k, v] of [["dim", c.dim], ["slots", c.slots], ["adapterHidden", c.adapterHidden]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`slots: ${k} must be a positive integer (got ${v})`)
  }
  if (!(c.gateMax >= 0)) throw new Error(`slots: gateMax must be ≥ 0 (got ${c.gateMax})`)
  if (!Number.isFinite(c.scaleInit)) throw new Error(`slots: scaleInit must be finite (got ${c.scaleInit})`)
}

// ---------------------------------------------------------------------------------------------------------------
// The initial scale

/** The median L2 norm of the rows of x [rows, dim] (mean of the two middle values for an even count). */
export const medianRowNorm = (x: Float32Array, rows: number, dim: number): number => {
  if (rows <= 0) throw new Error("medianRowNorm: no rows")
  if (x.length < rows * dim) throw new Error(`medianRowNorm: ${x.length} values cannot hold ${rows} × ${dim}`)
  const norms = new Float64Array(rows)
  for (let r = 0; r < rows; r++) {
    let s = 0
    const o = r * dim
    for (let k = 0; k < dim; k++) s += x[o + k] * x[o + k]
    norms[r] = Math.sqrt(s)
  }
  norms.sort()
  const mid = rows >> 1
  return rows % 2 === 1 ? norms[mid] : (norms[mid - 1] + norms[mid]) / 2
}

/**
 * The initial scale for `rule`: 1.0, or the median row norm of the first `rows` rows of the embedding matrix
 * (pass the base vocabulary, so rows added for the reserved tokens do not count).
 */
export const resolveScaleInit = (
  rule: ScaleInitRule,
  embedding?: { readonly data: Float32Array; readonly rows: number; readonly dim: number }
): number => {
  if (rule === "one") return 1
  if (embedding === undefined) throw new Error("slots: the median-embedding-norm scale needs the embedding matrix")
  return medianRowNorm(embedding.data, embedding.rows, embedding.dim)
}

// ---------------------------------------------------------------------------------------------------------------
// Parameters

/** xavier_uniform_: U(−b, b) with b = gain·√(6/(fan_in + fan_out)) for a [out, in] weight. */
const xavier = (seed: number, name: string, out: number, inp: number, gain: number): Float32Array => {
  const b = gain * Math.sqrt(6 / (inp + out))
  return fillUniform(makeRng(deriveSeed(seed, `slots/${name}`)), out * inp, -b, b)
}

/** Fresh parameters on the host (the code's initialisation), seeded. */
export const initSlotHost = (c: SlotConfig, seed: number): Map<string, HostTensor> => {
  validate(c)
  const shapes = slotParamShapes(c)
  const d = c.dim
  const h = c.adapterHidden
  const K = c.slots
  const out = new Map<string, HostTensor>()
  const put = (name: SlotParamName, data: Float32Array): void => {
    out.set(name, { shape: shapes[name], data })
  }
  const fill = (n: number, v: number): Float32Array => new Float32Array(n).fill(v)
  put("scale.scale", Float32Array.of(c.scaleInit))
  put("adapter.ln.weight", fill(d, 1))
  put("adapter.ln.bias", fill(d, 0))
  put("adapter.w1.weight", xavier(seed, "adapter.w1.weight", h, d, 0.5))
  put("adapter.w1.bias", fill(h, 0))
  put("adapter.w2.weight", xavier(seed, "adapter.w2.weight", d, h, 0.5))
  put("adapter.w2.bias", fill(d, 0))
  put("adapter.g", Float32Array.of(c.gateInit))
  put("expander.net.0.weight", xavier(seed, "expander.net.0.weight", 2 * d, d, 0.1))
  put("expander.net.0.bias", fill(2 * d, 0))
  put("expander.net.2.weight", xavier(seed, "expander.net.2.weight", K * d, 2 * d, 0.1))
  put("expander.net.2.bias", fill(K * d, 0))
  put("expander.ln.weight", fill(d, 1))
  put("expander.ln.bias", fill(d, 0))
  return out
}

/** Throws (naming the parameter) when `host` lacks a parameter or has a wrong shape. */
export const checkSlotHost = (c: SlotConfig, host: ReadonlyMap<string, HostTensor>): void => {
  const shapes = slotParamShapes(c)
  for (const name of SLOT_PARAM_NAMES) {
    const t = host.get(name)
    if (t === undefined) throw new Error(`slots: missing parameter ${name}`)
    const want = shapes[name]
    if (t.shape.length !== want.length || t.shape.some((v, i) => v !== want[i]) || t.data.length !== size(want)) {
      throw new Error(`slots: ${name} has shape [${t.shape.join(",")}] (${t.data.length} values), expected [${want.join(",")}]`)
    }
  }
}

export interface SlotModule {
  readonly config: SlotConfig
  readonly params: ReadonlyMap<SlotParamName, tf.Variable>
  /** In `SLOT_PARAM_NAMES` order (for optimizers and `tf.variableGrads`). */
  readonly variables: ReadonlyArray<tf.Variable>
  /** tf variable name (prefixed) → stable name. */
  readonly names: ReadonlyMap<string, SlotParamName>
}

let instanceCounter = 0

/** A slot module whose variables hold copies of `host` (validated against `config`). */
export const slotsFromHost = (
  config: SlotConfig,
  host: ReadonlyMap<string, HostTensor>,
  options?: { readonly prefix?: string; readonly trainable?: boolean }
): SlotModule => {
  validate(config)
  checkSlotHost(config, host)
  const prefix = options?.prefix ?? `slots${instanceCounter++}/`
  for (const name of SLOT_PARAM_NAMES) {
    if (tf.engine().registeredVariables[prefix + name] !== undefined) {
      throw new Error(`slots: a live tf variable is already named ${prefix + name} (dispose it or use another prefix)`)
    }
  }
  const params = new Map<SlotParamName, tf.Variable>()
  const names = new Map<string, SlotParamName>()
  for (const name of SLOT_PARAM_NAMES) {
    const t = host.get(name)!
    const init = tf.tensor(Float32Array.from(t.data), [...t.shape], "float32")
    const v = tf.variable(init, options?.trainable ?? true, prefix + name)
    init.dispose()
    params.set(name, v)
    names.set(v.name, name)
  }
  return { config, params, names, variables: SLOT_PARAM_NAMES.map((n) => params.get(n)!) }
}

/** A freshly initialised slot module. */
export const initSlots = (config: SlotConfig, seed: number, options?: { readonly prefix?: string }): SlotModule =>
  slotsFromHost(config, initSlotHost(config, seed), options)

const param = (m: SlotModule, name: SlotParamName): tf.Variable => {
  const v = m.params.get(name)
  if (v === undefined) throw new Error(`slots: missing variable ${name}`)
  return v
}

/** Copies of the current weights (stable names, `SLOT_PARAM_NAMES` order). */
export const slotsToHost = async (m: SlotModule): Promise<Map<string, HostTensor>> => {
  const out = new Map<string, HostTensor>()
  for (const name of SLOT_PARAM_NAMES) {
    const v = param(m, name)
    out.set(name, { shape: [...v.shape], data: await readFloat32(v) })
  }
  return out
}

/** Overwrites the variables with `host` (validated). */
export const assignSlots = (m: SlotModule, host: ReadonlyMap<string, HostTensor>): void => {
  checkSlotHost(m.config, host)
  for (const name of SLOT_PARAM_NAMES) {
    const t = host.get(name)!
    tf.tidy(() => param(m, name).assign(tf.tensor(Float32Array.from(t.data), [...t.shape], "float32")))
  }
}

export const disposeSlots = (m: SlotModule): void => {
  for (const v of m.variables) v.dispose()
}

// ---------------------------------------------------------------------------------------------------------------
// Forward (intermediates are not tidied: call inside tf.tidy / tf.variableGrads)

const NORMALIZE_EPS = 1e-12

/** LayerNorm over the last axis with biased variance, no affine transform. */
const layerNormPlain = (x: tf.Tensor, eps: number): tf.Tensor => {
  const { mean, variance } = tf.moments(x, -1, true)
  return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)))
}

const linear = (x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D =>
  tf.add(tf.matMul(x, w as tf.Tensor2D, false, true), b) as tf.Tensor2D

/** ForeignScale: v [B, d] → LN₀(v/‖v‖)·scale. */
export const foreignScale = (m: SlotModule, v: tf.Tensor2D): tf.Tensor2D => {
  const unit = tf.div(v, tf.maximum(tf.norm(v, 2, -1, true), NORMALIZE_EPS))
  return tf.mul(layerNormPlain(unit, m.config.lnEps), param(m, "scale.scale")) as tf.Tensor2D
}

/** The adapter gate clamp(tanh g, 0, gateMax) (a scalar). */
export const adapterGate = (m: SlotModule): tf.Scalar =>
  tf.clipByValue(tf.tanh(param(m, "adapter.g")), 0, m.config.gateMax) as tf.Scalar

/** The gated adapter x + gate·W2(GELU(W1(LN x))) on x [B, d]. */
export const gatedAdapter = (m: SlotModule, x: tf.Tensor2D): tf.Tensor2D => {
  const normed = tf.add(tf.mul(layerNormPlain(x, m.config.lnEps), param(m, "adapter.ln.weight")), param(m, "adapter.ln.bias")) as tf.Tensor2D
  const hidden = gelu(linear(normed, param(m, "adapter.w1.weight"), param(m, "adapter.w1.bias"))) as tf.Tensor2D
  const residual = linear(hidden, param(m, "adapter.w2.weight"), param(m, "adapter.w2.bias"))
  return tf.add(x, tf.mul(adapterGate(m), residual)) as tf.Tensor2D
}

/** The expander: x [B, d] → K slots [B, K, d] (after the per-slot LayerNorm). */
export const expandSlots = (m: SlotModule, x: tf.Tensor2D): tf.Tensor3D => {
  const { dim, slots } = m.config
  const B = x.shape[0]
  const h = gelu(linear(x, param(m, "expander.net.0.weight"), param(m, "expander.net.0.bias"))) as tf.Tensor2D
  const e = tf.reshape(linear(h, param(m, "expander.net.2.weight"), param(m, "expander.net.2.bias")), [B, slots, dim])
  return tf.add(tf.mul(layerNormPlain(e, m.config.lnEps), param(m, "expander.ln.weight")), param(m, "expander.ln.bias")) as tf.Tensor3D
}

/** The slot vectors [B, K, d] of projector outputs v [B, d]: ForeignScale → adapter → expander. */
export const slotForward = (m: SlotModule, v: tf.Tensor2D): tf.Tensor3D => {
  if (v.shape[1] !== m.config.dim) throw new Error(`slots: input has width ${v.shape[1]}, expected ${m.config.dim}`)
  return expandSlots(m, gatedAdapter(m, foreignScale(m, v)))
}

/** Slots straight from encoder vectors z [B, dIn] through the frozen projector (evaluation mode, no dropout). */
export const slotsFromZ = (proj: Projector, m: SlotModule, z: tf.Tensor2D): tf.Tensor3D =>
  slotForward(m, projectorForward(proj, z, null))

/**
 * Embedding overrides placing slot k of row b at `positions[b][k]`: vectors [Σ_b K_b, d] (row-major over (b, k)), so
 * gradients flow back into `slots`. A row with K_b < K positions takes the first K_b of its K slots (a per-example K,
 * `stageB.slotPolicy`); when every row has all K the vectors are `slots` reshaped, as they always were.
 */
export const slotOverrides = (slots: tf.Tensor3D, positions: ReadonlyArray<ReadonlyArray<number>>): EmbeddingOverrides => {
  const [B, K, d] = slots.shape
  if (positions.length !== B) throw new Error(`slots: ${positions.length} position rows for ${B} slot rows`)
  const batch: Array<number> = []
  const position: Array<number> = []
  const take: Array<number> = []
  positions.forEach((row, b) => {
    if (row.length < 1 || row.length > K) throw new Error(`slots: row ${b} has ${row.length} slot positions, expected 1 to ${K}`)
    row.forEach((p, k) => {
      batch.push(b)
      position.push(p)
      take.push(b * K + k)
    })
  })
  const flat = tf.reshape(slots, [B * K, d]) as tf.Tensor2D
  return { batch, position, vectors: take.length === B * K ? flat : tf.gather(flat, take) }
}

/**
 * The mean of the first `counts[b]` slots of each row of slots [B, K, d] → [B, d]; without counts (or when every
 * count is K) the plain mean over K, as it always was.
 */
export const meanOfSlots = (slots: tf.Tensor3D, counts?: ReadonlyArray<number>): tf.Tensor2D => {
  const [B, K] = slots.shape
  if (counts === undefined || counts.every((c) => c === K)) return tf.mean(slots, 1) as tf.Tensor2D
  if (counts.length !== B || counts.some((c) => !Number.isInteger(c) || c < 1 || c > K)) {
    throw new Error(`slots: ${counts.length} slot counts for ${B} rows of ${K} slots (each 1 to ${K})`)
  }
  const mask = new Float32Array(B * K)
  counts.forEach((c, b) => mask.fill(1 / c, b * K, b * K + c))
  return tf.sum(tf.mul(slots, tf.tensor3d(mask, [B, K, 1])), 1) as tf.Tensor2D
}

// ---------------------------------------------------------------------------------------------------------------
// Files

export const SLOTS_FILE = "slots.safetensors"

/** Writes the parameters (F32, stable names) with the config in the header metadata (`llink.slots`). */
export const saveSlots = (file: string, m: SlotModule): Effect.Effect<void, CheckpointError> =>
  Effect.tryPromise({
    try: () => slotsToHost(m),
    catch: (e) => new CheckpointError({ file, message: `cannot read the slot module's weights back: ${String(e)}` })
  }).pipe(Effect.flatMap((host) => writeSafetensorsFile(file, host, { metadata: { "llink.slots": JSON.stringify(m.config) } })))

/** Reads the parameters written by `saveSlots` and checks them against `config`. */
export const loadSlotHost = (file: string, config: SlotConfig): Effect.Effect<Map<string, HostTensor>, CheckpointError> =>
  Effect.flatMap(readSafetensorsFile(file), (host) =>
    Effect.try({
      try: () => {
        checkSlotHost(config, host)
        return host
      },
      catch: (e) => new CheckpointError({ file, message: describeError(e) })
    })
  )
