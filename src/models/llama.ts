/**
 * Llama decoder (Llama-3.2-1B-Instruct and its tiny test twin), on @tensorflow/tfjs.
 *
 * Read top to bottom: weights, rotary frequencies (llama3 scaling), one block (RMSNorm → GQA self-attention with
 * rotate-half RoPE → residual; RMSNorm → SwiGLU MLP → residual), the forward pass (with input embeddings that can be
 * overwritten at chosen positions, differentiably), the LM head, greedy generation with a KV cache, and loading from
 * a Hugging Face snapshot (optionally with extra vocabulary rows and LoRA adapters).
 *
 * Conventions, as in `transformers`' `LlamaForCausalLM` (float32):
 * - Linear weights are `[out, in]`, applied as `x·Wᵀ`; no biases.
 * - Position ids are `max(cumsum(mask) − 1, 0)` per row, so left- and right-padded rows put their real tokens at
 *   positions 0, 1, 2, …; the attention mask is causal AND hides padded keys.
 * - Query head `h` reads key/value head `h / (heads / kv_heads)` (`repeat_kv`); the grouping is done by reshaping the
 *   queries, so the key/value tensors are never copied.
 *
 * Every function that returns tensors allocates inside `tf.tidy`; the caller disposes what it gets back. Base
 * weights are plain tensors (never trainable); only LoRA adapters (see lora.ts) hold `tf.Variable`s.
 */
import * as tf from "@tensorflow/tfjs"
import { onHost, readTidy } from "../backend/read.ts"
import { rmsNorm as fusedRmsNorm, swiglu } from "../backend/ops.ts"
import { Effect } from "effect"
import { CheckpointError } from "./errors.ts"
import type { LlamaConfig } from "./hfconfig.ts"
import { llamaEosIds, loadModelConfig } from "./hfconfig.ts"
import type { LoraAdapters, LoraConfig, LoraTarget } from "./lora.ts"
import { createLora, loadLora, loraDelta } from "./lora.ts"
import type { HostTensor } from "./safetensors.ts"
import { loadSafetensorsDir } from "./safetensors.ts"
import { extendEmbeddingRows, loadTokenizer } from "./tokenizer.ts"
import type { EmbeddingInitRule } from "../schemas/fields.ts"
import type { TensorSpec } from "./weights.ts"
import { checkpointTensorNames, checkTensors, toTensor } from "./weights.ts"

// ---------------------------------------------------------------------------------------------------------------
// Weights

export interface LlamaLayer {
  readonly inputNorm: tf.Tensor1D
  readonly q: tf.Tensor2D
  readonly k: tf.Tensor2D
  readonly v: tf.Tensor2D
  readonly o: tf.Tensor2D
  readonly postNorm: tf.Tensor1D
  readonly gate: tf.Tensor2D
  readonly up: tf.Tensor2D
  readonly down: tf.Tensor2D
}

export interface LlamaModel {
  readonly kind: "llama"
  /** The checkpoint's config, with `vocab_size` set to the embedding rows actually held (after any extension). */
  readonly config: LlamaConfig
  readonly headDim: number
  /** [vocab, hidden] */
  readonly embed: tf.Tensor2D
  /** [vocab, hidden]; the same tensor as `embed` when embeddings are tied. */
  readonly lmHead: tf.Tensor2D
  readonly tied: boolean
  readonly layers: ReadonlyArray<LlamaLayer>
  readonly norm: tf.Tensor1D
  /** Rotary inverse frequencies (llama3-scaled when configured), length head_dim / 2, float32 values. */
  readonly invFreq: Float64Array
  /** LoRA adapters applied on top of the frozen projections, if any. */
  readonly lora: LoraAdapters | undefined
  /** The head's non-zero rows, when most rows are exactly zero (see `HeadRows`); undefined otherwise. */
  readonly headRows?: HeadRows
}

/**
 * A frozen LM head most of whose rows are exactly zero (the pretrained miniature decoder: rows of tokens it never
 * produced in pretraining are zero), held compactly. Every zero row has logit exactly 0, so the full-vocabulary
 * log-sum-exp is logsumexp(compact logits ∪ {log zeroCount}): the loss over `compact` alone plus that one constant
 * column is the full cross-entropy, exactly, at a fraction of the cost (`targetNll`). A real checkpoint has no zero
 * rows and never gets one.
 */
export interface HeadRows {
  /** Vocabulary ids of the non-zero rows, ascending. */
  readonly ids: Int32Array
  /** [ids.length, hidden]: those rows. */
  readonly compact: tf.Tensor2D
  /** Vocabulary id → index in `compact`, or −1 for a zero row. */
  readonly index: Int32Array
  /** How many rows are zero. */
  readonly zeroCount: number
}

/** `HeadRows` of a host head [V, H] when at least half its rows are all zero; undefined otherwise. */
export const compactHeadRows = (head: HostTensor): HeadRows | undefined => {
  const [V, H] = head.shape
  const data = head.data
  const index = new Int32Array(V).fill(-1)
  const ids: Array<number> = []
  for (let r = 0; r < V; r++) {
    const o = r * H
    for (let j = 0; j < H; j++) {
      if (data[o + j] !== 0) {
        index[r] = ids.length
        ids.push(r)
        break
      }
    }
  }
  const zeroCount = V - ids.length
  if (zeroCount * 2 < V || ids.length === 0) return undefined
  const rows = new Float32Array(ids.length * H)
  ids.forEach((r, i) => rows.set(data.subarray(r * H, (r + 1) * H), i * H))
  return { ids: Int32Array.from(ids), compact: tf.tensor2d(rows, [ids.length, H]), index, zeroCount }
}

const headDimOf = (config: LlamaConfig): number => config.head_dim ?? config.hidden_size / config.num_attention_heads

/** Every tensor of a Llama checkpoint with its expected shape (`lm_head.weight` only when not tied). */
export const llamaTensorSpecs = (config: LlamaConfig): Array<TensorSpec> => {
  const H = config.hidden_size
  const hd = headDimOf(config)
  const I = config.intermediate_size
  const qOut = config.num_attention_heads * hd
  const kvOut = config.num_key_value_heads * hd
  const specs: Array<TensorSpec> = [["model.embed_tokens.weight", [config.vocab_size, H]]]
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}`
    specs.push(
      [`${p}.input_layernorm.weight`, [H]],
      [`${p}.self_attn.q_proj.weight`, [qOut, H]],
      [`${p}.self_attn.k_proj.weight`, [kvOut, H]],
      [`${p}.self_attn.v_proj.weight`, [kvOut, H]],
      [`${p}.self_attn.o_proj.weight`, [H, qOut]],
      [`${p}.post_attention_layernorm.weight`, [H]],
      [`${p}.mlp.gate_proj.weight`, [I, H]],
      [`${p}.mlp.up_proj.weight`, [I, H]],
      [`${p}.mlp.down_proj.weight`, [H, I]]
    )
  }
  specs.push(["model.norm.weight", [H]])
  if (!config.tie_word_embeddings) specs.push(["lm_head.weight", [config.vocab_size, H]])
  return specs
}


export interface LlamaBuildOptions {
  /** Rows appended to the embedding matrix (and to an untied head) for added tokens. Default 0. */
  readonly extraRows?: number
  readonly embeddingInit?: EmbeddingInitRule
  readonly embeddingSeed?: number
  readonly lora?: LoraAdapters
}

/** The decoder layers from a tensor per Hugging Face name (`t2`/`t1`: plain tensors, or variables when training). */
export const llamaLayers = (
  config: LlamaConfig,
  t2: (name: string) => tf.Tensor2D,
  t1: (name: string) => tf.Tensor1D
): Array<LlamaLayer> =>
  Array.from({ length: config.num_hidden_layers }, (_, l) => {
    const p = `model.layers.${l}`
    return {
      inputNorm: t1(`${p}.input_layernorm.weight`),
      q: t2(`${p}.self_attn.q_proj.weight`),
      k: t2(`${p}.self_attn.k_proj.weight`),
      v: t2(`${p}.self_attn.v_proj.weight`),
      o: t2(`${p}.self_attn.o_proj.weight`),
      postNorm: t1(`${p}.post_attention_layernorm.weight`),
      gate: t2(`${p}.mlp.gate_proj.weight`),
      up: t2(`${p}.mlp.up_proj.weight`),
      down: t2(`${p}.mlp.down_proj.weight`)
    }
  })

/**
 * Builds the model from host tensors keyed by Hugging Face names. Fails with a `CheckpointError` naming the missing
 * or mis-shaped tensor and `source`. The tensors may share the host buffers.
 */
export const llamaFromWeights = (
  config: LlamaConfig,
  weights: ReadonlyMap<string, HostTensor>,
  source: string,
  options?: LlamaBuildOptions
): Effect.Effect<LlamaModel, CheckpointError> =>
  Effect.gen(function*() {
    const hd = headDimOf(config)
    if (!Number.isInteger(hd) || hd % 2 !== 0) {
      return yield* new CheckpointError({ file: source, message: `head_dim ${hd} must be an even integer` })
    }
    if (config.num_attention_heads % config.num_key_value_heads !== 0) {
      return yield* new CheckpointError({
        file: source,
        message: `num_attention_heads ${config.num_attention_heads} is not a multiple of num_key_value_heads ${config.num_key_value_heads}`
      })
    }
    yield* checkTensors(weights, llamaTensorSpecs(config), source)
    const extra = options?.extraRows ?? 0
    const rule = options?.embeddingInit ?? "mean"
    const seed = options?.embeddingSeed ?? 0
    let embedHost = weights.get("model.embed_tokens.weight")!
    let headHost = config.tie_word_embeddings ? undefined : weights.get("lm_head.weight")!
    if (extra > 0) {
      embedHost = extendEmbeddingRows(embedHost, extra, rule, seed)
      if (headHost !== undefined) headHost = extendEmbeddingRows(headHost, extra, rule, seed + 1)
    }
    const t2 = (name: string): tf.Tensor2D => toTensor(weights.get(name)!) as tf.Tensor2D
    const t1 = (name: string): tf.Tensor1D => toTensor(weights.get(name)!) as tf.Tensor1D
    const layers = llamaLayers(config, t2, t1)
    const embed = toTensor(embedHost) as tf.Tensor2D
    const lmHead = headHost === undefined ? embed : (toTensor(headHost) as tf.Tensor2D)
    const headRows = compactHeadRows(headHost ?? embedHost)
    return {
      kind: "llama" as const,
      config: { ...config, vocab_size: embedHost.shape[0] },
      headDim: hd,
      embed,
      lmHead,
      tied: headHost === undefined,
      layers,
      norm: t1("model.norm.weight"),
      invFreq: ropeInvFreq(config),
      lora: options?.lora,
      ...(headRows === undefined ? {} : { headRows })
    }
  })

/** The same model with `lora` applied (weights shared, not copied). */
export const withLora = (model: LlamaModel, lora: LoraAdapters | undefined): LlamaModel => ({ ...model, lora })

/** Releases the base weights (not the LoRA adapters: see `disposeLora`). */
export const disposeLlama = (model: LlamaModel): void => {
  const all: Array<tf.Tensor> = [model.embed, model.norm]
  if (!model.tied) all.push(model.lmHead)
  if (model.headRows !== undefined) {
    all.push(model.headRows.compact)
    const spread = spreadIndex.get(model.headRows)
    if (spread !== undefined) all.push(spread)
    spreadIndex.delete(model.headRows)
  }
  for (const l of model.layers) all.push(l.inputNorm, l.q, l.k, l.v, l.o, l.postNorm, l.gate, l.up, l.down)
  tf.dispose(all)
}

// ---------------------------------------------------------------------------------------------------------------
// Rotary embeddings

/**
 * Rotary inverse frequencies `1/θ^(2i/d)`, with llama3 scaling when `rope_scaling.rope_type == "llama3"`: with
 * wavelength w = 2π/f, w > L/low → f/factor; w < L/high → f; otherwise s = (L/w − low)/(high − low) and
 * f' = (1−s)·f/factor + s·f (L = original_max_position_embeddings). Rounded to float32, as `transformers` keeps it.
 */
export const ropeInvFreq = (config: LlamaConfig): Float64Array => {
  const hd = headDimOf(config)
  const half = hd / 2
  const out = new Float64Array(half)
  const scaling = config.rope_scaling
  for (let i = 0; i < half; i++) {
    let f = 1 / Math.pow(config.rope_theta, (2 * i) / hd)
    if (scaling !== null && scaling !== undefined) {
      if (scaling.rope_type !== "llama3") throw new Error(`unsupported rope_scaling type ${String(scaling.rope_type)}`)
      const L = scaling.original_max_position_embeddings
      const lowWavelen = L / scaling.low_freq_factor
      const highWavelen = L / scaling.high_freq_factor
      const w = (2 * Math.PI) / f
      if (w > lowWavelen) f = f / scaling.factor
      else if (w >= highWavelen) {
        const s = (L / w - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        f = ((1 - s) * f) / scaling.factor + s * f
      }
    }
    out[i] = Math.fround(f)
  }
  return out
}

/** cos and sin [B, 1, T, head_dim/2] for per-row position ids. */
const rotaryTables = (
  invFreq: Float64Array,
  positions: ReadonlyArray<ReadonlyArray<number>>
): { cos: tf.Tensor4D; sin: tf.Tensor4D } => {
  const B = positions.length
  const T = positions[0].length
  const half = invFreq.length
  const c = new Float32Array(B * T * half)
  const s = new Float32Array(B * T * half)
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const p = positions[b][t]
      const o = (b * T + t) * half
      for (let i = 0; i < half; i++) {
        const a = Math.fround(p * invFreq[i])
        c[o + i] = Math.cos(a)
        s[o + i] = Math.sin(a)
      }
    }
  }
  return { cos: tf.tensor4d(c, [B, 1, T, half]), sin: tf.tensor4d(s, [B, 1, T, half]) }
}

/** Rotate-half RoPE applied to x [B, heads, T, d] at per-row `positions` [B][T] (for tests and tools). */
export const rope = (x: tf.Tensor4D, positions: ReadonlyArray<ReadonlyArray<number>>, invFreq: Float64Array): tf.Tensor4D =>
  tf.tidy(() => {
    const { cos, sin } = rotaryTables(invFreq, positions)
    return applyRope(x, cos, sin)
  })

/** Rotate-half RoPE on x [B, heads, T, d]: (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin). */
const applyRope = (x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D => {
  const [B, n, T, d] = x.shape
  const h = d / 2
  const x1 = tf.slice(x, [0, 0, 0, 0], [B, n, T, h])
  const x2 = tf.slice(x, [0, 0, 0, h], [B, n, T, h])
  return tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x2, cos), tf.mul(x1, sin))], 3)
}

// ---------------------------------------------------------------------------------------------------------------
// Blocks

/** RMSNorm: `x / sqrt(mean(x²) + eps) · w` (one fused kernel each way on cpu-blas, `src/backend/ops.ts`). */
export const rmsNorm = (x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D => fusedRmsNorm(x, weight, eps)

/** One projection `x·Wᵀ` plus its LoRA term when adapted. */
const project = (
  model: LlamaModel,
  layer: number,
  target: LoraTarget,
  weight: tf.Tensor2D,
  x: tf.Tensor2D,
  training: boolean
): tf.Tensor2D => {
  const base: tf.Tensor2D = tf.matMul(x, weight, false, true)
  if (model.lora === undefined) return base
  const delta = loraDelta(model.lora, layer, target, x, training)
  return delta === undefined ? base : (tf.add(base, delta) as tf.Tensor2D)
}

/** Keys and values of one layer, rotary already applied: [B, kv_heads, S, head_dim]. */
export type LayerKv = {
  readonly k: tf.Tensor4D
  readonly v: tf.Tensor4D
}

/** Everything a block needs besides its weights. */
interface BlockContext {
  readonly B: number
  readonly T: number
  readonly cos: tf.Tensor4D
  readonly sin: tf.Tensor4D
  /** Additive mask [B, 1, T, S] (0 allowed, −1e9 hidden), S = past + T. */
  readonly maskAdd: tf.Tensor4D
  readonly training: boolean
}

/**
 * Grouped-query attention: q [B, heads, T, d] (already scaled by 1/√d), k and v [B, kv_heads, S, d], additive mask
 * [B, 1, T, S]. Query head h reads kv head ⌊h / (heads/kv_heads)⌋ (`repeat_kv`), done by folding each group of query
 * heads into the row axis, so keys and values are never copied. Returns [B, heads, T, d].
 */
export const groupedAttention = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, maskAdd: tf.Tensor4D): tf.Tensor4D =>
  tf.tidy(() => {
    const [B, nH, T, hd] = q.shape
    const nKV = k.shape[1]
    const S = k.shape[2]
    const g = nH / nKV
    const qg = tf.reshape(q, [B, nKV, g * T, hd])
    const scores = tf.add(tf.reshape(tf.matMul(qg, k, false, true), [B, nH, T, S]), maskAdd)
    const probs = tf.reshape(tf.softmax(scores, -1), [B, nKV, g * T, S])
    return tf.reshape(tf.matMul(probs, v), [B, nH, T, hd]) as tf.Tensor4D
  })

const attention = (
  model: LlamaModel,
  l: number,
  x: tf.Tensor2D,
  ctx: BlockContext,
  past: LayerKv | undefined
): { out: tf.Tensor2D; kv: LayerKv } => {
  const cfg = model.config
  const layer = model.layers[l]
  const { B, T } = ctx
  const hd = model.headDim
  const nH = cfg.num_attention_heads
  const nKV = cfg.num_key_value_heads
  const heads = (t: tf.Tensor2D, n: number): tf.Tensor4D => tf.transpose(tf.reshape(t, [B, T, n, hd]), [0, 2, 1, 3])
  const q = applyRope(heads(project(model, l, "q", layer.q, x, ctx.training), nH), ctx.cos, ctx.sin)
  let k = applyRope(heads(project(model, l, "k", layer.k, x, ctx.training), nKV), ctx.cos, ctx.sin)
  let v = heads(project(model, l, "v", layer.v, x, ctx.training), nKV)
  if (past !== undefined) {
    k = tf.concat([past.k, k], 2)
    v = tf.concat([past.v, v], 2)
  }
  const ctxOut = groupedAttention(tf.mul(q, 1 / Math.sqrt(hd)), k, v, ctx.maskAdd)
  const out = tf.reshape(tf.transpose(ctxOut, [0, 2, 1, 3]), [B * T, nH * hd]) as tf.Tensor2D
  return { out: project(model, l, "o", layer.o, out, ctx.training), kv: { k, v } }
}

const mlp = (model: LlamaModel, l: number, x: tf.Tensor2D, training: boolean): tf.Tensor2D => {
  const layer = model.layers[l]
  const gate = project(model, l, "gate", layer.gate, x, training)
  const up = project(model, l, "up", layer.up, x, training)
  return project(model, l, "down", layer.down, swiglu(gate, up), training)
}

const block = (
  model: LlamaModel,
  l: number,
  x: tf.Tensor2D,
  ctx: BlockContext,
  past: LayerKv | undefined
): { x: tf.Tensor2D; kv: LayerKv } => {
  const eps = model.config.rms_norm_eps
  const layer = model.layers[l]
  const a = attention(model, l, rmsNorm(x, layer.inputNorm, eps), ctx, past)
  const h: tf.Tensor2D = tf.add(x, a.out)
  return { x: tf.add(h, mlp(model, l, rmsNorm(h, layer.postNorm, eps), ctx.training)) as tf.Tensor2D, kv: a.kv }
}

// ---------------------------------------------------------------------------------------------------------------
// Forward

/** (batch, position) coordinates. */
export interface Positions {
  readonly batch: ReadonlyArray<number>
  readonly position: ReadonlyArray<number>
}

/**
 * Vectors that replace the input embeddings at (batch[i], position[i]) — the `<foreign_emb>` / `<f_i>` slots.
 * `vectors` is [N, hidden]; gradients flow into it (the replacement is a gather over [embeddings; vectors]).
 */
export interface EmbeddingOverrides extends Positions {
  readonly vectors: tf.Tensor2D
}

export interface DecoderInput {
  /** Rectangular token ids [B][T] (left- or right-padded). */
  readonly ids: ReadonlyArray<ReadonlyArray<number>>
  /** 1 real, 0 padding. Default: all ones. */
  readonly attentionMask?: ReadonlyArray<ReadonlyArray<number>>
  readonly overrides?: EmbeddingOverrides
}

export interface ForwardOptions {
  /** Training mode: LoRA dropout is active. Default false. */
  readonly training?: boolean
  /** Return hidden states (and logits) only at these coordinates: [N, hidden] instead of [B, T, hidden]. */
  readonly gather?: Positions
  /** Also compute logits over the vocabulary (at the gathered coordinates, or everywhere). Default false. */
  readonly logits?: boolean
}

export interface DecoderOutput {
  /** Final hidden states after the final RMSNorm: [B, T, H], or [N, H] with `gather`. */
  readonly hidden: tf.Tensor
  /** [B, T, V] or [N, V], when asked for. */
  readonly logits?: tf.Tensor
}

const rect = (ids: ReadonlyArray<ReadonlyArray<number>>): readonly [number, number] => {
  const B = ids.length
  if (B === 0) throw new Error("llama: empty batch")
  const T = ids[0].length
  if (T === 0) throw new Error("llama: empty sequences")
  for (const row of ids) if (row.length !== T) throw new Error("llama: rows have different lengths (pad them first)")
  return [B, T]
}

/** `max(cumsum(mask) − 1, 0)` per row, offset by the real tokens already seen (`offsets[b]`). */
export const llamaPositionIds = (
  mask: ReadonlyArray<ReadonlyArray<number>>,
  offsets?: ReadonlyArray<number>
): Array<Array<number>> =>
  mask.map((row, b) => {
    let c = offsets?.[b] ?? 0
    return row.map((m) => {
      c += m ? 1 : 0
      return Math.max(c - 1, 0)
    })
  })

/** Token embeddings [B·T, H] with the overrides blended in (a differentiable gather). */
const embedTokens = (
  model: LlamaModel,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  B: number,
  T: number,
  overrides: EmbeddingOverrides | undefined
): tf.Tensor2D => {
  const V = model.config.vocab_size
  const flat = ids.flat()
  for (const id of flat) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`llama: token id ${id} is outside [0, ${V})`)
  const emb = tf.gather(model.embed, tf.tensor1d(flat, "int32"))
  if (overrides === undefined || overrides.batch.length === 0) return emb
  const n = overrides.batch.length
  if (overrides.position.length !== n || overrides.vectors.shape[0] !== n) {
    throw new Error(`llama: ${n} override coordinates but ${overrides.position.length} positions / ${overrides.vectors.shape[0]} vectors`)
  }
  if (overrides.vectors.shape[1] !== model.config.hidden_size) {
    throw new Error(`llama: override vectors have width ${overrides.vectors.shape[1]}, expected ${model.config.hidden_size}`)
  }
  const index = new Int32Array(B * T)
  for (let i = 0; i < B * T; i++) index[i] = i
  for (let i = 0; i < n; i++) {
    const b = overrides.batch[i]
    const p = overrides.position[i]
    if (!(b >= 0 && b < B && p >= 0 && p < T)) throw new Error(`llama: override coordinate (${b}, ${p}) is outside [${B}, ${T}]`)
    if (index[b * T + p] !== b * T + p) throw new Error(`llama: override coordinate (${b}, ${p}) given twice`)
    index[b * T + p] = B * T + i
  }
  return tf.gather(tf.concat([emb, overrides.vectors], 0), tf.tensor1d(index, "int32"))
}

/** The additive mask [B, 1, T, S]: query t (absolute index past+t) sees key j iff j ≤ past+t and keyMask[b][j]. */
export const additiveMask = (keyMask: ReadonlyArray<ReadonlyArray<number>>, T: number): tf.Tensor4D => {
  const B = keyMask.length
  const S = keyMask[0].length
  const past = S - T
  const data = new Float32Array(B * T * S)
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * S
      for (let j = 0; j < S; j++) data[o + j] = j <= past + t && keyMask[b][j] ? 0 : -1e9
    }
  }
  return tf.tensor4d(data, [B, 1, T, S])
}

/**
 * Runs the blocks over embeddings x [B·T, H] and returns the normed hidden states [B·T, H] and each layer's
 * keys/values (past + new). `keyMask` covers past + new keys.
 */
const runBlocks = (
  model: LlamaModel,
  x0: tf.Tensor2D,
  B: number,
  T: number,
  positions: ReadonlyArray<ReadonlyArray<number>>,
  keyMask: ReadonlyArray<ReadonlyArray<number>>,
  past: ReadonlyArray<LayerKv> | undefined,
  training: boolean
): { hidden: tf.Tensor2D; kv: Array<LayerKv> } => {
  const { cos, sin } = rotaryTables(model.invFreq, positions)
  const ctx: BlockContext = { B, T, cos, sin, maskAdd: additiveMask(keyMask, T), training }
  let x = x0
  const kv: Array<LayerKv> = []
  for (let l = 0; l < model.layers.length; l++) {
    const r = block(model, l, x, ctx, past?.[l])
    x = r.x
    kv.push(r.kv)
  }
  return { hidden: rmsNorm(x, model.norm, model.config.rms_norm_eps), kv }
}

const flatIndex = (gather: Positions, B: number, T: number): tf.Tensor1D => {
  const n = gather.batch.length
  if (gather.position.length !== n) throw new Error("llama: gather batch and position lists differ in length")
  const idx = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const b = gather.batch[i]
    const p = gather.position[i]
    if (!(b >= 0 && b < B && p >= 0 && p < T)) throw new Error(`llama: gather coordinate (${b}, ${p}) is outside [${B}, ${T}]`)
    idx[i] = b * T + p
  }
  return tf.tensor1d(idx, "int32")
}

/** Per compact head, the column map that spreads its logits over the whole vocabulary (a zero row → the appended
 *  zero column). Made once per model; `disposeLlama` releases it. */
const spreadIndex = new WeakMap<HeadRows, tf.Tensor1D>()
const spreadOf = (h: HeadRows): tf.Tensor1D => {
  const known = spreadIndex.get(h)
  if (known !== undefined) return known
  const map = new Int32Array(h.index.length)
  for (let v = 0; v < map.length; v++) map[v] = h.index[v] >= 0 ? h.index[v] : h.ids.length
  const t = tf.keep(tf.tensor1d(map, "int32"))
  spreadIndex.set(h, t)
  return t
}

/**
 * Logits `hidden · lm_headᵀ` over the (possibly extended) vocabulary, for hidden [..., H]. With a compact head
 * (`HeadRows`) only its non-zero rows are multiplied, and the zero rows' logits are exact zeros spread in by a gather:
 * the same values as the full product at a fraction of its work (the miniature's head has ~900 non-zero rows of
 * 128,256; each greedy step of generation paid for all of them).
 */
export const lmLogits = (model: LlamaModel, hidden: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    const H = model.config.hidden_size
    const lead = hidden.shape.slice(0, -1)
    const flat = tf.reshape(hidden, [-1, H]) as tf.Tensor2D
    const rows = model.headRows
    if (rows !== undefined) {
      const compact = tf.matMul(flat, rows.compact, false, true)
      const withZero = tf.concat([compact, tf.zeros([flat.shape[0], 1])], 1)
      return tf.reshape(tf.gather(withZero, spreadOf(rows), 1), [...lead, model.config.vocab_size])
    }
    return tf.reshape(tf.matMul(flat, model.lmHead, false, true), [...lead, model.config.vocab_size])
  })

/**
 * The decoder's forward pass: final hidden states after the final RMSNorm (all positions or the gathered ones) and,
 * optionally, logits. Differentiable w.r.t. LoRA variables and override vectors. The caller disposes the outputs.
 */
export const forward = (model: LlamaModel, input: DecoderInput, options?: ForwardOptions): DecoderOutput => {
  const [B, T] = rect(input.ids)
  const mask = input.attentionMask ?? input.ids.map((row) => row.map(() => 1))
  if (mask.length !== B || mask.some((r) => r.length !== T)) throw new Error("llama: attentionMask shape differs from ids")
  return tf.tidy(() => {
    const x0 = embedTokens(model, input.ids, B, T, input.overrides)
    const { hidden } = runBlocks(model, x0, B, T, llamaPositionIds(mask), mask, undefined, options?.training ?? false)
    const H = model.config.hidden_size
    const out = options?.gather !== undefined ? tf.gather(hidden, flatIndex(options.gather, B, T)) : tf.reshape(hidden, [B, T, H])
    return options?.logits ? { hidden: out, logits: lmLogits(model, out) } : { hidden: out }
  })
}

/** Final hidden states [B, T, H] (after the final norm). Shorthand for `forward(...).hidden`. */
export const decoderHidden = (model: LlamaModel, input: DecoderInput, options?: { training?: boolean }): tf.Tensor3D =>
  forward(model, input, options).hidden as tf.Tensor3D

// ---------------------------------------------------------------------------------------------------------------
// KV cache and generation

/** Keys/values of every layer for the tokens seen so far, plus the host-side mask and next positions. */
export interface KvCache {
  readonly layers: ReadonlyArray<LayerKv>
  /** [B][S]: 1 real, 0 padding, for every cached key. */
  readonly mask: ReadonlyArray<ReadonlyArray<number>>
  /** Real tokens seen per row (= the position id of the next token). */
  readonly seen: ReadonlyArray<number>
}

export const disposeCache = (cache: KvCache): void => {
  for (const l of cache.layers) tf.dispose([l.k, l.v])
}

/**
 * Runs `input` (appended after `cache`, if given) and returns the logits at each row's last position [B, V] and the
 * extended cache. The old cache is left to the caller (dispose it unless it is reused).
 */
export const decodeStep = (
  model: LlamaModel,
  input: DecoderInput,
  cache: KvCache | undefined
): { logits: tf.Tensor2D; cache: KvCache } => {
  const [B, T] = rect(input.ids)
  const mask = input.attentionMask ?? input.ids.map((row) => row.map(() => 1))
  const fullMask = cache === undefined ? mask.map((row) => [...row]) : cache.mask.map((row, b) => [...row, ...mask[b]])
  const positions = llamaPositionIds(mask, cache?.seen)
  const seen = mask.map((row, b) => (cache?.seen[b] ?? 0) + row.reduce((a, m) => a + (m ? 1 : 0), 0))
  const out = tf.tidy(() => {
    const x0 = embedTokens(model, input.ids, B, T, input.overrides)
    const r = runBlocks(model, x0, B, T, positions, fullMask, cache?.layers, false)
    const last = tf.gather(r.hidden, tf.tensor1d(Array.from({ length: B }, (_, b) => b * T + T - 1), "int32"))
    return { logits: lmLogits(model, last) as tf.Tensor2D, kv: r.kv }
  })
  return { logits: out.logits, cache: { layers: out.kv, mask: fullMask, seen } }
}

export interface GenerateOptions {
  readonly maxNewTokens: number
  /** Generation of a row stops after one of these ids (which is not included in the output). Default: eos ids. */
  readonly stopIds?: ReadonlyArray<number>
  /** Ban any token that would repeat an n-gram of this size (prompt + generated, padding excluded). 0 = off. */
  readonly noRepeatNgramSize?: number
  /** Id used for left padding and for rows that have stopped. Default: the first stop id. */
  readonly padId?: number
  /** Use the KV cache (default true); false recomputes the whole sequence every step (for checking). */
  readonly useCache?: boolean
  /** Overrides at positions relative to each row's unpadded prompt (shifted by the left padding here). */
  readonly overrides?: EmbeddingOverrides
  /** Per row, a rule that may replace each greedy pick (after the n-gram ban), called once per generated token of
   *  that row, in order (e.g. the number pointer, src/text/numberPointer.ts). The replacement is fed back as usual. */
  readonly steer?: ReadonlyArray<((picked: number) => number) | undefined>
}

export interface GenerateResult {
  /** New tokens per row, without the stop token. */
  readonly tokens: ReadonlyArray<ReadonlyArray<number>>
  /** Whether each row ended on a stop id (else it ran out of `maxNewTokens`). */
  readonly stopped: ReadonlyArray<boolean>
}

/** Tokens banned for the next step by the no-repeat-n-gram rule (HF `NoRepeatNGramLogitsProcessor`). */
export const bannedNgramTokens = (tokens: ReadonlyArray<number>, n: number): Set<number> => {
  const banned = new Set<number>()
  if (n <= 0 || tokens.length + 1 < n) return banned
  const start = tokens.length - (n - 1)
  for (let i = 0; i + n <= tokens.length; i++) {
    let match = true
    for (let j = 0; j < n - 1; j++) {
      if (tokens[i + j] !== tokens[start + j]) {
        match = false
        break
      }
    }
    if (match) banned.add(tokens[i + n - 1])
  }
  return banned
}

/**
 * The next token of every row: the highest logit that the no-repeat-n-gram rule allows (ties: the lowest id; every
 * token banned or NaN logits: `padId`). On a host backend the logits are scanned in memory; on a device backend the
 * bans become a −Infinity mask and the arg-max runs there, so only B ids come back per step instead of B × vocab
 * logits.
 */
const pickNext = async (
  logits: tf.Tensor2D,
  banned: ReadonlyArray<ReadonlySet<number>>,
  skip: ReadonlyArray<boolean>,
  padId: number
): Promise<Array<number>> => {
  const [B, V] = logits.shape
  if (onHost()) {
    const host = logits.dataSync() as Float32Array
    return banned.map((ban, b) => {
      if (skip[b]) return padId
      let best = -1
      let bestVal = -Infinity
      for (let v = 0; v < V; v++) {
        const val = host[b * V + v]
        if (val > bestVal && !ban.has(v)) {
          best = v
          bestVal = val
        }
      }
      return best < 0 ? padId : best
    })
  }
  const flat: Array<number> = []
  banned.forEach((ban, b) => ban.forEach((v) => flat.push(b * V + v)))
  const best = tf.tidy(() => {
    let x: tf.Tensor2D = logits
    if (flat.length > 0) {
      const mask = tf.scatterND(tf.tensor2d(flat, [flat.length, 1], "int32"), tf.fill([flat.length], -Infinity), [B * V])
      x = tf.add(x, tf.reshape(mask, [B, V])) as tf.Tensor2D
    }
    // a row with no finite logit left has nothing sensible to emit
    return tf.stack([tf.cast(tf.argMax(x, 1), "float32"), tf.max(x, 1)], 1)
  })
  const values = await best.data()
  best.dispose()
  return banned.map((_, b) => (skip[b] || !(values[2 * b + 1] > -Infinity) ? padId : values[2 * b]))
}

/**
 * Greedy decoding of a batch of prompts (unpadded id lists; rows are left-padded here). Finished rows keep being fed
 * the pad id until every row stops or `maxNewTokens` is reached. Ties go to the lowest id.
 */
export const generate = async (
  model: LlamaModel,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: GenerateOptions
): Promise<GenerateResult> => {
  const B = prompts.length
  if (B === 0) return { tokens: [], stopped: [] }
  if (prompts.some((p) => p.length === 0)) throw new Error("llama.generate: empty prompt")
  const stopIds = new Set(options.stopIds ?? llamaEosIds(model.config))
  const padId = options.padId ?? [...stopIds][0] ?? 0
  const L = Math.max(...prompts.map((p) => p.length))
  const ids = prompts.map((p) => [...new Array<number>(L - p.length).fill(padId), ...p])
  const mask = prompts.map((p) => [...new Array<number>(L - p.length).fill(0), ...new Array<number>(p.length).fill(1)])
  const overrides: EmbeddingOverrides | undefined =
    options.overrides === undefined
      ? undefined
      : {
        batch: options.overrides.batch,
        position: options.overrides.position.map((p, i) => p + L - prompts[options.overrides!.batch[i]].length),
        vectors: options.overrides.vectors
      }
  const history = prompts.map((p) => [...p])
  const tokens: Array<Array<number>> = prompts.map(() => [])
  const stopped = prompts.map(() => false)
  const useCache = options.useCache ?? true
  let cache: KvCache | undefined
  let logits: tf.Tensor2D | undefined
  try {
    if (useCache) {
      const r = decodeStep(model, { ids, attentionMask: mask, overrides }, undefined)
      logits = r.logits
      cache = r.cache
    } else {
      logits = lastLogits(model, ids, mask, overrides)
    }
    for (let n = 0; n < options.maxNewTokens && logits !== undefined; n++) {
      const bans = history.map((h, b) => (stopped[b] ? new Set<number>() : bannedNgramTokens(h, options.noRepeatNgramSize ?? 0)))
      const picked = await pickNext(logits, bans, stopped, padId)
      logits.dispose()
      logits = undefined
      const next: Array<number> = []
      for (let b = 0; b < B; b++) {
        if (stopped[b]) {
          next.push(padId)
          continue
        }
        const rule = options.steer?.[b]
        const best = rule === undefined ? picked[b] : rule(picked[b])
        history[b].push(best)
        if (stopIds.has(best)) stopped[b] = true
        else tokens[b].push(best)
        next.push(best)
      }
      if (stopped.every((s) => s) || n + 1 === options.maxNewTokens) break
      for (let b = 0; b < B; b++) {
        ids[b].push(next[b])
        mask[b].push(1)
      }
      if (useCache) {
        const r = decodeStep(model, { ids: next.map((t) => [t]) }, cache)
        disposeCache(cache!)
        cache = r.cache
        logits = r.logits
      } else {
        logits = lastLogits(model, ids, mask, overrides)
      }
    }
  } finally {
    if (cache !== undefined) disposeCache(cache)
    if (logits !== undefined) logits.dispose()
  }
  return { tokens, stopped }
}

/** Logits at the last position of every row, recomputing the whole sequence. */
const lastLogits = (
  model: LlamaModel,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  mask: ReadonlyArray<ReadonlyArray<number>>,
  overrides: EmbeddingOverrides | undefined
): tf.Tensor2D => {
  const T = ids[0].length
  const out = forward(
    model,
    { ids, attentionMask: mask, overrides },
    { gather: { batch: ids.map((_, b) => b), position: ids.map(() => T - 1) }, logits: true }
  )
  out.hidden.dispose()
  return out.logits as tf.Tensor2D
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

export interface LoadDecoderOptions {
  /** Tokens added after the base vocabulary (e.g. `reservedTokens(8)`); the embedding gains a row for each new one. */
  readonly addedTokens?: ReadonlyArray<string>
  /** Initialisation of the new rows (default "mean"). */
  readonly embeddingInit?: EmbeddingInitRule
  readonly embeddingSeed?: number
  /** Fresh LoRA adapters (`{ config, seed }`) or saved ones (`{ dir }`). */
  readonly lora?: { readonly config: LoraConfig; readonly seed: number } | { readonly dir: string; readonly seed?: number }
}

/**
 * Loads a Llama decoder from a Hugging Face snapshot directory. With `addedTokens`, the snapshot's tokenizer is
 * loaded with them and the embedding matrix (and an untied head) gains `tokenizer.vocabSize − vocab_size` rows, so
 * the ids `loadTokenizer(dir, { addedTokens })` gives are all valid; a tied head covers the new rows too.
 */
export const loadDecoder = Effect.fn("Llama.loadDecoder")(function*(dir: string, options?: LoadDecoderOptions) {
  const loaded = yield* loadModelConfig(dir)
  if (loaded.kind !== "llama") {
    return yield* new CheckpointError({ file: dir, message: `${dir} holds a ${loaded.kind} model, not a Llama decoder` })
  }
  const config = loaded.config
  const names = llamaTensorSpecs(config).map(([n]) => n)
  const present = yield* checkpointTensorNames(dir)
  for (const name of names) {
    if (!present.has(name)) {
      return yield* new CheckpointError({ file: dir, tensor: name, message: `checkpoint ${dir} has no tensor ${name}` })
    }
  }
  let extraRows = 0
  if (options?.addedTokens !== undefined && options.addedTokens.length > 0) {
    const tok = yield* loadTokenizer(dir, { addedTokens: options.addedTokens })
    extraRows = Math.max(0, tok.vocabSize - config.vocab_size)
  }
  const weights = yield* loadSafetensorsDir(dir, { names })
  let lora: LoraAdapters | undefined
  if (options?.lora !== undefined) {
    const spec = options.lora
    lora = "dir" in spec ? yield* loadLora(spec.dir, config, { seed: spec.seed ?? 0 }) : createLora(config, spec.config, spec.seed)
  }
  return yield* llamaFromWeights(config, weights, dir, {
    extraRows,
    embeddingInit: options?.embeddingInit ?? "mean",
    embeddingSeed: options?.embeddingSeed ?? 0,
    lora
  })
})

/** Left-pads prompts with `padId`: rectangular ids and the matching attention mask. */
export const leftPad = (
  seqs: ReadonlyArray<ReadonlyArray<number>>,
  padId: number
): { readonly ids: Array<Array<number>>; readonly attentionMask: Array<Array<number>> } => {
  const T = Math.max(...seqs.map((s) => s.length))
  return {
    ids: seqs.map((s) => [...new Array<number>(T - s.length).fill(padId), ...s]),
    attentionMask: seqs.map((s) => [...new Array<number>(T - s.length).fill(0), ...new Array<number>(s.length).fill(1)])
  }
}

/** Final hidden states (after the final norm) at the last token of each prompt [n, hidden], one forward pass over
 *  the prompts left-padded with `padId` (masked out); tensors are freed. The teacher's h_E at `<foreign_emb>` and
 *  the fine-tune's retrieval vector are read this way. */
export const promptEndStates = (model: LlamaModel, prompts: ReadonlyArray<ReadonlyArray<number>>, padId: number): Promise<Float32Array> => {
  const { ids, attentionMask } = leftPad(prompts, padId)
  const T = ids[0].length
  return readTidy(() => forward(model, { ids, attentionMask }, { gather: { batch: ids.map((_, b) => b), position: ids.map(() => T - 1) } }).hidden)
}
