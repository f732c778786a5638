/**
 * LoRA adapters for the Llama decoder (Stage B and the direct fine-tune baseline), PEFT-compatible.
 *
 * A adapted projection computes `y = x·Wᵀ + (alpha/rank)·dropout(x)·Aᵀ·Bᵀ` with the base `W` frozen. `A` [rank, in]
 * starts kaiming-uniform (PEFT's `kaiming_uniform_(a=√5)`: U(−1/√in, 1/√in)) from a seeded RNG and `B` [out, rank]
 * starts at zero, so a fresh adapter leaves the model's output unchanged. Only `A` and `B` are `tf.Variable`s
 * (trainable); `loraVariables` lists them for the optimiser. Dropout acts only when the forward runs in training
 * mode; its masks come from the adapters' own seeded RNG, so a run repeats exactly.
 *
 * Adapters are saved on their own, the way PEFT does: `adapter_model.safetensors` with names such as
 * `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, plus `adapter_config.json`.
 */
import * as tf from "@tensorflow/tfjs"
import { readFloat32 } from "../backend/read.ts"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { CheckpointError } from "./errors.ts"
import type { LlamaConfig } from "./hfconfig.ts"
import type { Rng } from "./rng.ts"
import { deriveSeed, fillUniform, makeRng } from "./rng.ts"
import type { HostTensor } from "./safetensors.ts"
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors.ts"
import { describeError } from "../errors/describe.ts"

/** The projections LoRA can adapt: attention q/k/v/o and the MLP gate/up/down. */
export type LoraTarget = "q" | "k" | "v" | "o" | "gate" | "up" | "down"
export const LORA_TARGETS: ReadonlyArray<LoraTarget> = ["q", "k", "v", "o", "gate", "up", "down"]

export interface LoraConfig {
  readonly rank: number
  readonly alpha: number
  /** Dropout probability on the adapter input (training mode only). */
  readonly dropout: number
  readonly targets: ReadonlyArray<LoraTarget>
  /** rsLoRA scaling alpha/√rank instead of alpha/rank (PEFT `use_rslora`). Default false. */
  readonly useRslora?: boolean
}

/** The paper's setting: rank 16, alpha 16, dropout 0.05, attention and MLP projections. */
export const defaultLoraConfig: LoraConfig = {
  rank: 16,
  alpha: 16,
  dropout: 0.05,
  targets: ["q", "k", "v", "o", "gate", "up", "down"]
}

export interface LoraPair {
  /** [rank, in] */
  readonly a: tf.Variable
  /** [out, rank] */
  readonly b: tf.Variable
}

export interface LoraAdapters {
  readonly config: LoraConfig
  /** alpha / rank (or alpha / √rank with rsLoRA). */
  readonly scale: number
  /** One entry per decoder layer: the adapted projections of that layer. */
  readonly layers: ReadonlyArray<Readonly<Partial<Record<LoraTarget, LoraPair>>>>
  /** Source of dropout masks; advanced by every training-mode forward. */
  readonly dropoutRng: Rng
}

/** HF module path and `[in, out]` of each target in a Llama layer. */
export const loraModules = (
  config: LlamaConfig
): Record<LoraTarget, { readonly module: string; readonly inFeatures: number; readonly outFeatures: number }> => {
  const H = config.hidden_size
  const hd = config.head_dim ?? H / config.num_attention_heads
  const I = config.intermediate_size
  return {
    q: { module: "self_attn.q_proj", inFeatures: H, outFeatures: config.num_attention_heads * hd },
    k: { module: "self_attn.k_proj", inFeatures: H, outFeatures: config.num_key_value_heads * hd },
    v: { module: "self_attn.v_proj", inFeatures: H, outFeatures: config.num_key_value_heads * hd },
    o: { module: "self_attn.o_proj", inFeatures: config.num_attention_heads * hd, outFeatures: H },
    gate: { module: "mlp.gate_proj", inFeatures: H, outFeatures: I },
    up: { module: "mlp.up_proj", inFeatures: H, outFeatures: I },
    down: { module: "mlp.down_proj", inFeatures: I, outFeatures: H }
  }
}

const validate = (lora: LoraConfig): void => {
  if (!Number.isInteger(lora.rank) || lora.rank < 1) throw new Error(`LoRA rank must be a positive integer (got ${lora.rank})`)
  if (!(lora.dropout >= 0 && lora.dropout < 1)) throw new Error(`LoRA dropout must be in [0, 1) (got ${lora.dropout})`)
  for (const t of lora.targets) if (!LORA_TARGETS.includes(t)) throw new Error(`unknown LoRA target ${t}`)
}

const scaleOf = (lora: LoraConfig): number => (lora.useRslora ? lora.alpha / Math.sqrt(lora.rank) : lora.alpha / lora.rank)

const makePair = (a: HostTensor, b: HostTensor): LoraPair =>
  tf.tidy(() => ({
    a: tf.variable(tf.tensor2d(a.data, [a.shape[0], a.shape[1]], "float32"), true),
    b: tf.variable(tf.tensor2d(b.data, [b.shape[0], b.shape[1]], "float32"), true)
  }))

/**
 * Fresh adapters for every layer of a decoder with `config`: `A` kaiming-uniform from `seed`, `B` zero. The dropout
 * RNG is derived from the same seed. Throws on an invalid LoRA config.
 */
export const createLora = (config: LlamaConfig, lora: LoraConfig, seed: number): LoraAdapters => {
  validate(lora)
  const mods = loraModules(config)
  const rng = makeRng(deriveSeed(seed, "lora.init"))
  const layers: Array<Partial<Record<LoraTarget, LoraPair>>> = []
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const layer: Partial<Record<LoraTarget, LoraPair>> = {}
    for (const t of LORA_TARGETS) {
      if (!lora.targets.includes(t)) continue
      const { inFeatures, outFeatures } = mods[t]
      const bound = 1 / Math.sqrt(inFeatures)
      layer[t] = makePair(
        { shape: [lora.rank, inFeatures], data: fillUniform(rng, lora.rank * inFeatures, -bound, bound) },
        { shape: [outFeatures, lora.rank], data: new Float32Array(outFeatures * lora.rank) }
      )
    }
    layers.push(layer)
  }
  return { config: lora, scale: scaleOf(lora), layers, dropoutRng: makeRng(deriveSeed(seed, "lora.dropout")) }
}

/** An inverted-dropout mask (0 or 1/(1−p)) of `n` elements from `rng`. */
export const dropoutMask = (rng: Rng, n: number, p: number): Float32Array => {
  const out = new Float32Array(n)
  const keep = 1 / (1 - p)
  const threshold = p * 4294967296
  const bits = new Uint32Array(Math.min(n, 8192))
  for (let start = 0; start < n; start += bits.length) {
    const m = Math.min(bits.length, n - start)
    const chunk = m === bits.length ? bits : bits.subarray(0, m)
    rng.fillU32(chunk)
    for (let i = 0; i < m; i++) out[start + i] = chunk[i] >= threshold ? keep : 0
  }
  return out
}

/**
 * The LoRA term `scale·dropout(x)·Aᵀ·Bᵀ` [N, out] for `target` of `layer`, or undefined if that projection is not
 * adapted. `x` is [N, in]. Dropout applies only when `training` (and dropout > 0).
 */
export const loraDelta = (
  adapters: LoraAdapters,
  layer: number,
  target: LoraTarget,
  x: tf.Tensor2D,
  training: boolean
): tf.Tensor2D | undefined => {
  const pair = adapters.layers[layer]?.[target]
  if (pair === undefined) return undefined
  return tf.tidy(() => {
    let xin: tf.Tensor2D = x
    const p = adapters.config.dropout
    if (training && p > 0) {
      const [n, d] = x.shape
      xin = tf.mul(x, tf.tensor2d(dropoutMask(adapters.dropoutRng, n * d, p), [n, d]))
    }
    const low = tf.matMul(xin, pair.a as tf.Tensor2D, false, true)
    return tf.mul(tf.matMul(low, pair.b as tf.Tensor2D, false, true), adapters.scale) as tf.Tensor2D
  })
}

/** The trainable variables (every A and B, layer by layer, in target order). */
export const loraVariables = (adapters: LoraAdapters): Array<tf.Variable> => {
  const out: Array<tf.Variable> = []
  for (const layer of adapters.layers) {
    for (const t of LORA_TARGETS) {
      const pair = layer[t]
      if (pair !== undefined) out.push(pair.a, pair.b)
    }
  }
  return out
}

/** Releases every adapter variable. */
export const disposeLora = (adapters: LoraAdapters): void => {
  for (const v of loraVariables(adapters)) v.dispose()
}

/** PEFT tensor name of one adapter matrix. */
export const peftName = (config: LlamaConfig, layer: number, target: LoraTarget, which: "A" | "B"): string =>
  `base_model.model.model.layers.${layer}.${loraModules(config)[target].module}.lora_${which}.weight`

/** The adapter weights as host tensors under their PEFT names. */
export const loraToHost = async (config: LlamaConfig, adapters: LoraAdapters): Promise<Map<string, HostTensor>> => {
  const out = new Map<string, HostTensor>()
  for (const [l, layer] of adapters.layers.entries()) {
    for (const t of LORA_TARGETS) {
      const pair = layer[t]
      if (pair === undefined) continue
      out.set(peftName(config, l, t, "A"), { shape: pair.a.shape, data: await readFloat32(pair.a) })
      out.set(peftName(config, l, t, "B"), { shape: pair.b.shape, data: await readFloat32(pair.b) })
    }
  }
  return out
}

export const ADAPTER_WEIGHTS = "adapter_model.safetensors"
export const ADAPTER_CONFIG = "adapter_config.json"

/** The `adapter_config.json` PEFT writes for these adapters. */
export const peftAdapterConfig = (
  config: LlamaConfig,
  lora: LoraConfig,
  baseModel: string | null
): Record<string, unknown> => {
  const mods = loraModules(config)
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: lora.rank,
    rank_pattern: {},
    revision: null,
    target_modules: LORA_TARGETS.filter((t) => lora.targets.includes(t)).map((t) => mods[t].module.split(".")[1]),
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: lora.useRslora ?? false
  }
}

/** Writes `dir/adapter_model.safetensors` (F32) and `dir/adapter_config.json`. */
export const saveLora = Effect.fn("Lora.save")(function*(
  dir: string,
  config: LlamaConfig,
  adapters: LoraAdapters,
  options?: { readonly baseModel?: string }
) {
  yield* Effect.try({
    try: () => fs.mkdirSync(dir, { recursive: true }),
    catch: (e) => new CheckpointError({ file: dir, message: `cannot create adapter folder: ${String(e)}` })
  })
  const weights = yield* Effect.tryPromise({
    try: () => loraToHost(config, adapters),
    catch: (e) => new CheckpointError({ file: dir, message: `cannot read the adapter weights back: ${String(e)}` })
  })
  yield* writeSafetensorsFile(path.join(dir, ADAPTER_WEIGHTS), weights)
  const cfgPath = path.join(dir, ADAPTER_CONFIG)
  const json = `${JSON.stringify(peftAdapterConfig(config, adapters.config, options?.baseModel ?? null), null, 2)}\n`
  yield* Effect.try({
    try: () => fs.writeFileSync(cfgPath, json),
    catch: (e) => new CheckpointError({ file: cfgPath, message: `cannot write adapter config: ${String(e)}` })
  })
})

const TARGET_BY_MODULE: Readonly<Record<string, LoraTarget>> = {
  q_proj: "q",
  k_proj: "k",
  v_proj: "v",
  o_proj: "o",
  gate_proj: "gate",
  up_proj: "up",
  down_proj: "down"
}

/** Reads and checks `adapter_config.json` into a `LoraConfig`. */
export const readLoraConfig = (dir: string): Effect.Effect<LoraConfig, CheckpointError> =>
  Effect.gen(function*() {
    const cfgPath = path.join(dir, ADAPTER_CONFIG)
    const bad = (message: string) => new CheckpointError({ file: cfgPath, message })
    const raw = yield* Effect.try({
      try: (): unknown => JSON.parse(fs.readFileSync(cfgPath, "utf8")),
      catch: (e) => bad(`cannot read adapter config: ${describeError(e)}`)
    })
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return yield* bad("not a JSON object")
    const o = raw as Record<string, unknown>
    if (o.peft_type !== undefined && o.peft_type !== "LORA") return yield* bad(`peft_type ${String(o.peft_type)} is not LORA`)
    if (o.fan_in_fan_out === true) return yield* bad("fan_in_fan_out adapters are not supported")
    if (o.use_dora === true) return yield* bad("DoRA adapters are not supported")
    if (typeof o.r !== "number" || !Number.isInteger(o.r) || o.r < 1) return yield* bad("r must be a positive integer")
    if (typeof o.lora_alpha !== "number") return yield* bad("lora_alpha must be a number")
    const dropout = o.lora_dropout === undefined ? 0 : o.lora_dropout
    if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) return yield* bad("lora_dropout must be in [0, 1)")
    if (!Array.isArray(o.target_modules)) return yield* bad("target_modules must be a list of module names")
    const targets: Array<LoraTarget> = []
    for (const m of o.target_modules) {
      const t = typeof m === "string" ? TARGET_BY_MODULE[m] : undefined
      if (t === undefined) return yield* bad(`unsupported target module ${JSON.stringify(m)}`)
      targets.push(t)
    }
    return { rank: o.r, alpha: o.lora_alpha, dropout, targets, useRslora: o.use_rslora === true }
  })

/**
 * Loads adapters saved by `saveLora` (or by PEFT for a Llama model) for a decoder with `config`. Every expected
 * `lora_A`/`lora_B` tensor must be present with the right shape. `seed` seeds the dropout RNG (default 0).
 */
export const loadLora = Effect.fn("Lora.load")(function*(
  dir: string,
  config: LlamaConfig,
  options?: { readonly seed?: number }
) {
  const lora = yield* readLoraConfig(dir)
  const file = path.join(dir, ADAPTER_WEIGHTS)
  const mods = loraModules(config)
  const names: Array<string> = []
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const t of lora.targets) names.push(peftName(config, l, t, "A"), peftName(config, l, t, "B"))
  }
  const host = yield* readSafetensorsFile(file, { names })
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const t of lora.targets) {
      const expected: Record<"A" | "B", ReadonlyArray<number>> = {
        A: [lora.rank, mods[t].inFeatures],
        B: [mods[t].outFeatures, lora.rank]
      }
      for (const which of ["A", "B"] as const) {
        const name = peftName(config, l, t, which)
        const shape = host.get(name)!.shape
        const want = expected[which]
        if (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1]) {
          return yield* new CheckpointError({
            file,
            tensor: name,
            message: `adapter tensor ${name} has shape [${shape.join(", ")}], expected [${want.join(", ")}]`
          })
        }
      }
    }
  }
  const layers: Array<Partial<Record<LoraTarget, LoraPair>>> = []
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const layer: Partial<Record<LoraTarget, LoraPair>> = {}
    for (const t of lora.targets) {
      layer[t] = makePair(host.get(peftName(config, l, t, "A"))!, host.get(peftName(config, l, t, "B"))!)
    }
    layers.push(layer)
  }
  const adapters: LoraAdapters = {
    config: lora,
    scale: scaleOf(lora),
    layers,
    dropoutRng: makeRng(deriveSeed(options?.seed ?? 0, "lora.dropout"))
  }
  return adapters
})
