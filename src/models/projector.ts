/**
 * The Stage A projector g: Linear(dIn→dHidden) → GELU (erf) → Dropout(p) → Linear(dHidden→dOut) → LayerNorm(dOut).
 * p_F = g(z_F). Paper sizes: 768 → 3072 → 2048, dropout 0.10 (dHidden defaults to 4·dIn).
 *
 * Weights live in tf.Variables under stable names with the PyTorch/Hugging Face layout
 * (`fc1.weight` [dHidden, dIn], `fc1.bias`, `fc2.weight` [dOut, dHidden], `fc2.bias`, `ln.weight`, `ln.bias`),
 * and move to and from a host map `Map<name, HostTensor>` (the shape safetensors files hold).
 *
 * Initialisation follows PyTorch's defaults, drawn from the seeded generator of `src/models/rng.ts`:
 * nn.Linear weight and bias ~ U(−1/√fan_in, 1/√fan_in) (kaiming-uniform with a = √5); LayerNorm weight 1, bias 0.
 * Draw order: fc1.weight, fc1.bias, fc2.weight, fc2.bias (row-major), from `makeRng(deriveSeed(seed, "projector"))`.
 *
 * Dropout is inverted dropout (kept units scaled by 1/(1−p), as in PyTorch). Its mask is drawn on the host from a
 * generator the caller passes, so a training run repeats exactly; `dropoutSeed(seed, step, micro)` derives a fresh
 * per-micro-batch stream, which makes the mask a pure function of (seed, step, micro) — nothing to checkpoint.
 *
 * tfjs registers variable names globally, so the tf.Variable names carry a prefix: `options.prefix` (e.g.
 * "stageA.projector/") or, by default, a unique `projector<n>/`. `tf.variableGrads` and the AdamW optimizer key by
 * that tf name; `params` (stable name → variable) and `names` (tf name → stable name) translate, so checkpoints
 * store stable names only.
 */
import * as tf from "@tensorflow/tfjs"
import { readFloat32 } from "../backend/read.ts"
import { gelu as fusedGelu, layerNorm as fusedLayerNorm } from "../backend/ops.ts"
import { deriveSeed, fillUniform, makeRng } from "./rng.ts"
import type { Rng } from "./rng.ts"
import type { HostTensor } from "./safetensors.ts"

export interface ProjectorConfig {
  readonly dIn: number
  readonly dHidden: number
  readonly dOut: number
  /** Dropout probability after the GELU (paper 0.10). */
  readonly dropout: number
  /** LayerNorm epsilon (PyTorch default 1e-5). */
  readonly lnEps: number
}

/** A config with the paper's defaults: dHidden = 4·dIn, dropout 0.10, LayerNorm eps 1e-5. */
export const makeConfig = (
  dIn: number,
  dOut: number,
  options?: { readonly dHidden?: number; readonly dropout?: number; readonly lnEps?: number }
): ProjectorConfig => ({
  dIn,
  dOut,
  dHidden: options?.dHidden ?? 4 * dIn,
  dropout: options?.dropout ?? 0.1,
  lnEps: options?.lnEps ?? 1e-5
})

export const PARAM_NAMES = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "ln.weight", "ln.bias"] as const
export type ParamName = (typeof PARAM_NAMES)[number]

/** The shape of each parameter (PyTorch layout: Linear weights are [out, in]). */
export const paramShapes = (c: ProjectorConfig): Record<ParamName, ReadonlyArray<number>> => ({
  "fc1.weight": [c.dHidden, c.dIn],
  "fc1.bias": [c.dHidden],
  "fc2.weight": [c.dOut, c.dHidden],
  "fc2.bias": [c.dOut],
  "ln.weight": [c.dOut],
  "ln.bias": [c.dOut]
})

/** The total number of parameters. */
export const paramCount = (c: ProjectorConfig): number =>
  PARAM_NAMES.reduce((n, name) => n + paramShapes(c)[name].reduce((a, b) => a * b, 1), 0)

export interface Projector {
  readonly config: ProjectorConfig
  /** The trainable variables by stable name. */
  readonly params: ReadonlyMap<ParamName, tf.Variable>
  /** The variables in `PARAM_NAMES` order (for optimizers and `tf.variableGrads`). */
  readonly variables: ReadonlyArray<tf.Variable>
  /** tf variable name (prefixed) → stable name. */
  readonly names: ReadonlyMap<string, ParamName>
}

export interface ProjectorOptions {
  /** Whether the variables train (default true). */
  readonly trainable?: boolean
  /** Prefix of the tf variable names (must be unused among live tf variables); default a unique `projector<n>/`. */
  readonly prefix?: string
}

const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** Fresh PyTorch-default parameters on the host, seeded. */
export const initHost = (config: ProjectorConfig, seed: number): Map<string, HostTensor> => {
  const rng = makeRng(deriveSeed(seed, "projector"))
  const shapes = paramShapes(config)
  const b1 = 1 / Math.sqrt(config.dIn)
  const b2 = 1 / Math.sqrt(config.dHidden)
  const out = new Map<string, HostTensor>()
  out.set("fc1.weight", { shape: shapes["fc1.weight"], data: fillUniform(rng, config.dHidden * config.dIn, -b1, b1) })
  out.set("fc1.bias", { shape: shapes["fc1.bias"], data: fillUniform(rng, config.dHidden, -b1, b1) })
  out.set("fc2.weight", { shape: shapes["fc2.weight"], data: fillUniform(rng, config.dOut * config.dHidden, -b2, b2) })
  out.set("fc2.bias", { shape: shapes["fc2.bias"], data: fillUniform(rng, config.dOut, -b2, b2) })
  out.set("ln.weight", { shape: shapes["ln.weight"], data: new Float32Array(config.dOut).fill(1) })
  out.set("ln.bias", { shape: shapes["ln.bias"], data: new Float32Array(config.dOut) })
  return out
}

/** Throws (with the parameter name) when `host` lacks a parameter or has a wrong shape. */
export const checkHost = (config: ProjectorConfig, host: ReadonlyMap<string, HostTensor>): void => {
  const shapes = paramShapes(config)
  for (const name of PARAM_NAMES) {
    const t = host.get(name)
    if (t === undefined) throw new Error(`projector: missing parameter ${name}`)
    const want = shapes[name]
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new Error(`projector: ${name} has shape [${t.shape.join(",")}], expected [${want.join(",")}]`)
    }
    if (t.data.length !== size(want)) {
      throw new Error(`projector: ${name} has ${t.data.length} values, expected ${size(want)}`)
    }
  }
}

let instanceCounter = 0

/** A projector whose variables hold copies of `host` (validated against `config`). */
export const fromHost = (
  config: ProjectorConfig,
  host: ReadonlyMap<string, HostTensor>,
  options?: ProjectorOptions
): Projector => {
  checkHost(config, host)
  const prefix = options?.prefix ?? `projector${instanceCounter++}/`
  const trainable = options?.trainable ?? true
  for (const name of PARAM_NAMES) {
    if (tf.engine().registeredVariables[prefix + name] !== undefined) {
      throw new Error(`projector: a live tf variable is already named ${prefix + name} (dispose it or use another prefix)`)
    }
  }
  const params = new Map<ParamName, tf.Variable>()
  const names = new Map<string, ParamName>()
  for (const name of PARAM_NAMES) {
    const t = host.get(name)
    if (t === undefined) throw new Error(`projector: missing parameter ${name}`)
    const init = tf.tensor(Float32Array.from(t.data), [...t.shape], "float32")
    const v = tf.variable(init, trainable, prefix + name)
    init.dispose()
    params.set(name, v)
    names.set(v.name, name)
  }
  return { config, params, names, variables: PARAM_NAMES.map((n) => getParam(params, n)) }
}

/** A freshly initialised projector (PyTorch defaults, seeded). */
export const init = (config: ProjectorConfig, seed: number, options?: ProjectorOptions): Projector =>
  fromHost(config, initHost(config, seed), options)

const getParam = (params: ReadonlyMap<ParamName, tf.Variable>, name: ParamName): tf.Variable => {
  const v = params.get(name)
  if (v === undefined) throw new Error(`projector: missing variable ${name}`)
  return v
}

/** Copies of the current weights on the host (keyed by the stable names, `PARAM_NAMES` order). */
export const toHost = async (proj: Projector): Promise<Map<string, HostTensor>> => {
  const out = new Map<string, HostTensor>()
  for (const name of PARAM_NAMES) {
    const v = getParam(proj.params, name)
    out.set(name, { shape: [...v.shape], data: await readFloat32(v) })
  }
  return out
}

/** Overwrites the variables with `host` (validated). */
export const assign = (proj: Projector, host: ReadonlyMap<string, HostTensor>): void => {
  checkHost(proj.config, host)
  for (const name of PARAM_NAMES) {
    const t = host.get(name)
    if (t === undefined) throw new Error(`projector: missing parameter ${name}`)
    const v = getParam(proj.params, name)
    tf.tidy(() => v.assign(tf.tensor(Float32Array.from(t.data), [...t.shape], "float32")))
  }
}

/** Frees the variables. */
export const dispose = (proj: Projector): void => {
  for (const v of proj.variables) v.dispose()
}

/** The seed of the dropout stream of one micro-batch: a pure function of (run seed, optimizer step, micro index). */
export const dropoutSeed = (seed: number, step: number, micro: number): number =>
  deriveSeed(seed, `dropout:${step}:${micro}`)

/**
 * An inverted-dropout mask [rows, cols], row-major: each entry is 0 with probability p (uniform u < p) and
 * 1/(1−p) otherwise. Draws rows·cols uniforms from `rng` in row-major order.
 */
export const dropoutMask = (rng: Rng, rows: number, cols: number, p: number): Float32Array => {
  const out = new Float32Array(rows * cols)
  if (p <= 0) return out.fill(1)
  if (p >= 1) return out
  const keep = 1 / (1 - p)
  // rng.uniform() in bulk: each uniform is (hi >>> 5)·2^26 + (lo >>> 6), over 2^53, from two consecutive draws.
  const n = out.length
  const bits = new Uint32Array(2 * Math.min(n, 8192))
  for (let start = 0; start < n; start += bits.length / 2) {
    const m = Math.min(bits.length / 2, n - start)
    const chunk = 2 * m === bits.length ? bits : bits.subarray(0, 2 * m)
    rng.fillU32(chunk)
    for (let i = 0; i < m; i++) {
      const u = ((chunk[2 * i] >>> 5) * 67108864 + (chunk[2 * i + 1] >>> 6)) / 9007199254740992
      out[start + i] = u < p ? 0 : keep
    }
  }
  return out
}

/** Exact GELU: 0.5·x·(1 + erf(x/√2)); one fused kernel on cpu-blas, composite tf ops elsewhere. */
export const gelu = (x: tf.Tensor): tf.Tensor => fusedGelu(x)

/** LayerNorm over the last axis with biased variance (PyTorch), then the affine transform (fused on cpu-blas). */
export const layerNorm = (x: tf.Tensor2D, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor2D =>
  fusedLayerNorm(x, weight, bias, eps)

/**
 * How dropout is applied in `forward`: `null`/absent = evaluation (no dropout); `{ rng }` = draw a mask from `rng`;
 * `{ mask }` = use the given [rows, dHidden] inverted-dropout mask.
 */
export type DropoutSpec = { readonly rng: Rng } | { readonly mask: Float32Array } | null

/**
 * p = g(z) for a batch z [rows, dIn] → [rows, dOut]. Differentiable with respect to the variables (call inside
 * `tf.variableGrads` / `tf.tidy`; intermediate tensors are not tidied here).
 */
export const forward = (proj: Projector, z: tf.Tensor2D, dropout?: DropoutSpec): tf.Tensor2D => {
  const c = proj.config
  const [rows, dIn] = z.shape
  if (dIn !== c.dIn) throw new Error(`projector: input has ${dIn} columns, expected ${c.dIn}`)
  const h1 = tf.add(tf.matMul(z, getParam(proj.params, "fc1.weight"), false, true), getParam(proj.params, "fc1.bias"))
  let a = gelu(h1)
  if (dropout !== undefined && dropout !== null && c.dropout > 0) {
    const mask = "mask" in dropout ? dropout.mask : dropoutMask(dropout.rng, rows, c.dHidden, c.dropout)
    if (mask.length !== rows * c.dHidden) {
      throw new Error(`projector: dropout mask has ${mask.length} values, expected ${rows * c.dHidden}`)
    }
    a = tf.mul(a, tf.tensor2d(mask, [rows, c.dHidden]))
  }
  const h2 = tf.add(
    tf.matMul(a as tf.Tensor2D, getParam(proj.params, "fc2.weight"), false, true),
    getParam(proj.params, "fc2.bias")
  ) as tf.Tensor2D
  return layerNorm(h2, getParam(proj.params, "ln.weight"), getParam(proj.params, "ln.bias"), c.lnEps)
}

/** Evaluation-mode projection of host rows z [rows, dIn] → host [rows, dOut]. */
export const projectHost = async (proj: Projector, z: Float32Array, rows: number): Promise<Float32Array> => {
  const out = tf.tidy(() => forward(proj, tf.tensor2d(z, [rows, proj.config.dIn]), null))
  try {
    return await readFloat32(out)
  } finally {
    out.dispose()
  }
}
