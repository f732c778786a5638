/**
 * XLM-RoBERTa encoder (the frozen foreign-language encoder of LLINK), on @tensorflow/tfjs.
 *
 * Read top to bottom: weights, embeddings (word + position + token type → LayerNorm), post-LN transformer blocks
 * (self-attention with an additive padding mask, GELU-erf MLP), masked-mean pooling, and loading from a Hugging Face
 * snapshot. Numerics follow `transformers`' `XLMRobertaModel` in float32:
 * - position ids are `cumsum(id != pad) * (id != pad) + pad`, so the first real token has position `pad + 1` (= 2);
 * - every block is post-LN: `x = LN(x + Attn(x))`, `x = LN(x + MLP(x))`;
 * - Hugging Face Linear weights are stored `[out, in]` and applied as `x · Wᵀ + b`.
 *
 * All forward functions are pure tensor programs: they allocate inside `tf.tidy` and return fresh tensors the
 * caller must dispose. The model's own tensors live until `disposeXlmr`.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readTidy } from "../backend/read.ts"
import { truncateCodePoints } from "../text/unicode.ts"
import { CheckpointError } from "./errors.ts"
import type { XlmRobertaConfig } from "./hfconfig.ts"
import { loadModelConfig } from "./hfconfig.ts"
import type { HostTensor } from "./safetensors.ts"
import type { TextTokenizer } from "./tokenizer.ts"
import { loadSafetensorsDir } from "./safetensors.ts"
import type { TensorSpec } from "./weights.ts"
import { checkpointTensorNames, checkTensors, toTensor } from "./weights.ts"

// ---------------------------------------------------------------------------------------------------------------
// Weights

/** A Linear layer in Hugging Face layout: `weight` is `[out, in]`. */
export interface Linear {
  readonly weight: tf.Tensor2D
  readonly bias: tf.Tensor1D
}

/** LayerNorm affine parameters. */
export interface Norm {
  readonly weight: tf.Tensor1D
  readonly bias: tf.Tensor1D
}

export interface XlmrLayer {
  readonly query: Linear
  readonly key: Linear
  readonly value: Linear
  readonly attnOut: Linear
  readonly attnNorm: Norm
  readonly intermediate: Linear
  readonly output: Linear
  readonly outNorm: Norm
}

export interface XlmrModel {
  readonly kind: "xlmr"
  readonly config: XlmRobertaConfig
  readonly wordEmbeddings: tf.Tensor2D
  readonly positionEmbeddings: tf.Tensor2D
  readonly tokenTypeEmbeddings: tf.Tensor2D
  readonly embNorm: Norm
  readonly layers: ReadonlyArray<XlmrLayer>
}

/** Input of one batch: rectangular token ids (already padded with `pad_token_id`) and optional masks. */
export interface EncoderInput {
  readonly ids: ReadonlyArray<ReadonlyArray<number>>
  /** 1 for real tokens, 0 for padding. Default: `id != pad_token_id`. */
  readonly attentionMask?: ReadonlyArray<ReadonlyArray<number>>
  /** Default: all zeros. */
  readonly tokenTypeIds?: ReadonlyArray<ReadonlyArray<number>>
}

/** Every tensor of an XLM-R encoder with its expected shape (names without the `roberta.` prefix). */
export const xlmrTensorSpecs = (config: XlmRobertaConfig): Array<TensorSpec> => {
  const H = config.hidden_size
  const I = config.intermediate_size
  const specs: Array<TensorSpec> = [
    ["embeddings.word_embeddings.weight", [config.vocab_size, H]],
    ["embeddings.position_embeddings.weight", [config.max_position_embeddings, H]],
    ["embeddings.token_type_embeddings.weight", [config.type_vocab_size, H]],
    ["embeddings.LayerNorm.weight", [H]],
    ["embeddings.LayerNorm.bias", [H]]
  ]
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`
    for (const m of ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]) {
      specs.push([`${p}.${m}.weight`, [H, H]], [`${p}.${m}.bias`, [H]])
    }
    specs.push([`${p}.attention.output.LayerNorm.weight`, [H]], [`${p}.attention.output.LayerNorm.bias`, [H]])
    specs.push([`${p}.intermediate.dense.weight`, [I, H]], [`${p}.intermediate.dense.bias`, [I]])
    specs.push([`${p}.output.dense.weight`, [H, I]], [`${p}.output.dense.bias`, [H]])
    specs.push([`${p}.output.LayerNorm.weight`, [H]], [`${p}.output.LayerNorm.bias`, [H]])
  }
  return specs
}

/** The Hugging Face tensor names of an XLM-R encoder (without the optional `roberta.` prefix). */
export const xlmrTensorNames = (config: XlmRobertaConfig): Array<string> => xlmrTensorSpecs(config).map(([n]) => n)

/**
 * Builds the model from host tensors keyed by Hugging Face names, with or without the `roberta.` prefix. Fails
 * with a `CheckpointError` naming the missing or mis-shaped tensor and `source` (the checkpoint directory).
 * The tensors may share the host buffers.
 */
export const xlmrFromWeights = (
  config: XlmRobertaConfig,
  weights: ReadonlyMap<string, HostTensor>,
  source: string
): Effect.Effect<XlmrModel, CheckpointError> =>
  Effect.gen(function*() {
    const H = config.hidden_size
    if (H % config.num_attention_heads !== 0) {
      return yield* new CheckpointError({
        file: source,
        message: `hidden_size ${H} is not divisible by num_attention_heads ${config.num_attention_heads}`
      })
    }
    const host = new Map<string, HostTensor>()
    for (const [name, t] of weights) host.set(name.startsWith("roberta.") ? name.slice("roberta.".length) : name, t)
    // Validate every tensor first, so no tfjs memory is allocated for a broken checkpoint.
    yield* checkTensors(host, xlmrTensorSpecs(config), source)
    const t2 = (name: string): tf.Tensor2D => toTensor(host.get(name)!) as tf.Tensor2D
    const t1 = (name: string): tf.Tensor1D => toTensor(host.get(name)!) as tf.Tensor1D
    return xlmrFromTensors(config, t2, t1, t2("embeddings.token_type_embeddings.weight"))
  })

/** The model from a tensor per Hugging Face name (`t2`/`t1`: plain tensors, or variables when training). */
export const xlmrFromTensors = (
  config: XlmRobertaConfig,
  t2: (name: string) => tf.Tensor2D,
  t1: (name: string) => tf.Tensor1D,
  tokenTypeEmbeddings: tf.Tensor2D
): XlmrModel => {
  const lin = (name: string): Linear => ({ weight: t2(`${name}.weight`), bias: t1(`${name}.bias`) })
  const norm = (name: string): Norm => ({ weight: t1(`${name}.weight`), bias: t1(`${name}.bias`) })
  const layers: Array<XlmrLayer> = []
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`
    layers.push({
      query: lin(`${p}.attention.self.query`),
      key: lin(`${p}.attention.self.key`),
      value: lin(`${p}.attention.self.value`),
      attnOut: lin(`${p}.attention.output.dense`),
      attnNorm: norm(`${p}.attention.output.LayerNorm`),
      intermediate: lin(`${p}.intermediate.dense`),
      output: lin(`${p}.output.dense`),
      outNorm: norm(`${p}.output.LayerNorm`)
    })
  }
  return {
    kind: "xlmr" as const,
    config,
    wordEmbeddings: t2("embeddings.word_embeddings.weight"),
    positionEmbeddings: t2("embeddings.position_embeddings.weight"),
    tokenTypeEmbeddings,
    embNorm: norm("embeddings.LayerNorm"),
    layers
  }
}

/** Releases every tensor of the model. */
export const disposeXlmr = (model: XlmrModel): void => {
  const all: Array<tf.Tensor> = [
    model.wordEmbeddings,
    model.positionEmbeddings,
    model.tokenTypeEmbeddings,
    model.embNorm.weight,
    model.embNorm.bias
  ]
  for (const l of model.layers) {
    for (const lin of [l.query, l.key, l.value, l.attnOut, l.intermediate, l.output]) all.push(lin.weight, lin.bias)
    for (const n of [l.attnNorm, l.outNorm]) all.push(n.weight, n.bias)
  }
  tf.dispose(all)
}

// ---------------------------------------------------------------------------------------------------------------
// Blocks

/** `cumsum(id != pad) * (id != pad) + pad` per row (RoBERTa's `create_position_ids_from_input_ids`). */
export const xlmrPositionIds = (
  ids: ReadonlyArray<ReadonlyArray<number>>,
  padId: number
): Array<Array<number>> =>
  ids.map((row) => {
    let count = 0
    return row.map((id) => {
      if (id === padId) return padId
      count++
      return count + padId
    })
  })

const linear = (x: tf.Tensor2D, lin: Linear): tf.Tensor2D => tf.add(tf.matMul(x, lin.weight, false, true), lin.bias)

export const layerNorm = (x: tf.Tensor2D, norm: Norm, eps: number): tf.Tensor2D => {
  const { mean, variance } = tf.moments(x, -1, true)
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), norm.weight), norm.bias)
}

/** GELU with the exact erf form: `0.5·x·(1 + erf(x/√2))`. */
export const geluErf = (x: tf.Tensor): tf.Tensor => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1))

/** Self-attention over `x` [B·T, H] with the additive key mask `maskAdd` [B, 1, 1, T]. */
const selfAttention = (
  model: XlmrModel,
  layer: XlmrLayer,
  x: tf.Tensor2D,
  B: number,
  T: number,
  maskAdd: tf.Tensor4D
): tf.Tensor2D => {
  const H = model.config.hidden_size
  const nH = model.config.num_attention_heads
  const hd = H / nH
  const heads = (t: tf.Tensor2D): tf.Tensor4D => tf.transpose(tf.reshape(t, [B, T, nH, hd]), [0, 2, 1, 3])
  const q = heads(tf.mul(linear(x, layer.query), 1 / Math.sqrt(hd)))
  const k = heads(linear(x, layer.key))
  const v = heads(linear(x, layer.value))
  const scores = tf.add(tf.matMul(q, k, false, true), maskAdd)
  const probs = tf.softmax(scores, -1)
  const ctx = tf.matMul(probs, v) // [B, nH, T, hd]
  return tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [B * T, H])
}

const block = (
  model: XlmrModel,
  layer: XlmrLayer,
  x: tf.Tensor2D,
  B: number,
  T: number,
  maskAdd: tf.Tensor4D
): tf.Tensor2D => {
  const eps = model.config.layer_norm_eps
  const attn = linear(selfAttention(model, layer, x, B, T, maskAdd), layer.attnOut)
  const h = layerNorm(tf.add(attn, x), layer.attnNorm, eps)
  const mlp = linear(geluErf(linear(h, layer.intermediate)) as tf.Tensor2D, layer.output)
  return layerNorm(tf.add(mlp, h), layer.outNorm, eps)
}

const checkRect = (ids: ReadonlyArray<ReadonlyArray<number>>, what: string): readonly [number, number] => {
  const B = ids.length
  if (B === 0) throw new Error(`${what}: empty batch`)
  const T = ids[0].length
  for (const row of ids) if (row.length !== T) throw new Error(`${what}: rows have different lengths (pad them first)`)
  if (T === 0) throw new Error(`${what}: empty sequences`)
  return [B, T]
}

/** The default attention mask: 1 where `id != pad_token_id`. */
export const xlmrAttentionMask = (
  ids: ReadonlyArray<ReadonlyArray<number>>,
  padId: number
): Array<Array<number>> => ids.map((row) => row.map((id) => (id === padId ? 0 : 1)))

/** The last hidden states [B, T, H] of a padded batch. The caller disposes the result. */
export const encode = (model: XlmrModel, input: EncoderInput): tf.Tensor3D => {
  const cfg = model.config
  const [B, T] = checkRect(input.ids, "xlmr.encode")
  if (T > cfg.max_position_embeddings - cfg.pad_token_id - 1) {
    throw new Error(`xlmr.encode: sequence length ${T} exceeds ${cfg.max_position_embeddings - cfg.pad_token_id - 1}`)
  }
  for (const row of input.ids) {
    for (const id of row) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocab_size) throw new Error(`xlmr.encode: token id ${id} is outside [0, ${cfg.vocab_size})`)
    }
  }
  const mask = input.attentionMask ?? xlmrAttentionMask(input.ids, cfg.pad_token_id)
  if (mask.length !== B || mask.some((r) => r.length !== T)) throw new Error("xlmr.encode: attentionMask shape differs from ids")
  const pos = xlmrPositionIds(input.ids, cfg.pad_token_id)
  return tf.tidy(() => {
    const idT = tf.tensor1d(input.ids.flat(), "int32")
    const posT = tf.tensor1d(pos.flat(), "int32")
    const ttT = tf.tensor1d(input.tokenTypeIds?.flat() ?? new Array<number>(B * T).fill(0), "int32")
    const emb = tf.add(
      tf.add(tf.gather(model.wordEmbeddings, idT), tf.gather(model.positionEmbeddings, posT)),
      tf.gather(model.tokenTypeEmbeddings, ttT)
    ) as tf.Tensor2D
    let x = layerNorm(emb, model.embNorm, cfg.layer_norm_eps)
    const maskData = new Float32Array(B * T)
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) maskData[b * T + t] = mask[b][t] ? 0 : -1e9
    const maskAdd = tf.tensor4d(maskData, [B, 1, 1, T])
    for (const layer of model.layers) x = block(model, layer, x, B, T, maskAdd)
    return tf.reshape(x, [B, T, cfg.hidden_size])
  })
}

/**
 * The attention-mask-weighted mean of `hidden` [B, T, H] over positions (special tokens included): z_F.
 * `mask` is [B][T] (1 real, 0 pad). The caller disposes the result [B, H].
 */
export const pool = (hidden: tf.Tensor3D, mask: ReadonlyArray<ReadonlyArray<number>>): tf.Tensor2D =>
  tf.tidy(() => {
    const [B, T] = hidden.shape
    const m = tf.tensor3d(mask.flat(), [B, T, 1], "float32")
    const sum = tf.sum(tf.mul(hidden, m), 1)
    const count = tf.maximum(tf.sum(m, 1), 1e-9)
    return tf.div(sum, count) as tf.Tensor2D
  })

/** Sentence vectors z_F [B, H] of a padded batch: `pool(encode(...))`. The caller disposes the result. */
export const embedSentences = (model: XlmrModel, input: EncoderInput): tf.Tensor2D =>
  tf.tidy(() => {
    const mask = input.attentionMask ?? xlmrAttentionMask(input.ids, model.config.pad_token_id)
    return pool(encode(model, input), mask)
  })

/**
 * Pads variable-length token id lists on the right with `pad_token_id` into a rectangular batch and its mask.
 */
export const padBatch = (
  seqs: ReadonlyArray<ReadonlyArray<number>>,
  padId: number
): { ids: Array<Array<number>>; attentionMask: Array<Array<number>> } => {
  const T = Math.max(...seqs.map((s) => s.length))
  return {
    ids: seqs.map((s) => [...s, ...new Array<number>(T - s.length).fill(padId)]),
    attentionMask: seqs.map((s) => [...new Array<number>(s.length).fill(1), ...new Array<number>(T - s.length).fill(0)])
  }
}

/** z_F [n, hidden] of already tokenised sentences (`encoderTokenIds`), one forward pass; tensors are freed. */
export const embedTokenized = (model: XlmrModel, seqs: ReadonlyArray<ReadonlyArray<number>>): Promise<Float32Array> => {
  const input = padBatch(seqs, model.config.pad_token_id)
  return readTidy(() => embedSentences(model, input))
}

/** The cuts applied to a sentence before the encoder (config section `encode`). */
export interface EncoderCut {
  readonly maxChars: number
  readonly maxTokens: number
}

/** Token ids of one sentence: cut to `maxChars` code points, `<s> … </s>`, at most `maxTokens` ids (the closing
 *  `</s>` kept, as Hugging Face truncation). */
export const encoderTokenIds = (tok: TextTokenizer, text: string, eosId: number, o: EncoderCut): Array<number> => {
  const ids = [...tok.encode(truncateCodePoints(text, o.maxChars), { addSpecialTokens: true })]
  if (ids.length <= o.maxTokens) return ids
  return [...ids.slice(0, o.maxTokens - 1), eosId]
}

/**
 * The last hidden states of every real token of each sequence (`encoderTokenIds`), in batches of `batchSize`
 * sequences of similar length: `states[i]` is [seqs[i].length, hidden], row-major. Tensors are freed.
 */
export const tokenStates = async (
  model: XlmrModel,
  seqs: ReadonlyArray<ReadonlyArray<number>>,
  batchSize: number
): Promise<Array<Float32Array>> => {
  const H = model.config.hidden_size
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length || a - b)
  const out: Array<Float32Array> = new Array(seqs.length)
  for (let s = 0; s < order.length; s += batchSize) {
    const rows = order.slice(s, s + batchSize)
    const { ids, attentionMask } = padBatch(rows.map((i) => seqs[i]), model.config.pad_token_id)
    const T = ids[0].length
    const hidden = await readTidy(() => encode(model, { ids, attentionMask }))
    rows.forEach((i, b) => {
      const n = seqs[i].length
      out[i] = hidden.slice(b * T * H, (b * T + n) * H)
    })
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

/**
 * Loads an XLM-R encoder from a Hugging Face snapshot directory (config.json + model.safetensors or shards). Tensor
 * names may carry the `roberta.` prefix (MaskedLM checkpoints); only the encoder's tensors are read.
 */
export const loadEncoder = Effect.fn("Xlmr.loadEncoder")(function*(dir: string) {
  const loaded = yield* loadModelConfig(dir)
  if (loaded.kind !== "xlmr") {
    return yield* new CheckpointError({
      file: dir,
      message: `${dir} holds a ${loaded.kind} model, not an XLM-RoBERTa encoder`
    })
  }
  const config = loaded.config
  const present = yield* checkpointTensorNames(dir)
  const prefix = present.has("roberta.embeddings.word_embeddings.weight") ? "roberta." : ""
  for (const name of xlmrTensorNames(config)) {
    if (!present.has(prefix + name)) {
      return yield* new CheckpointError({
        file: dir,
        tensor: prefix + name,
        message: `checkpoint ${dir} has no tensor ${prefix + name}${prefix === "" ? " (nor roberta." + name + ")" : ""}`
      })
    }
  }
  const weights = yield* loadSafetensorsDir(dir, { names: xlmrTensorNames(config).map((n) => prefix + n) })
  return yield* xlmrFromWeights(config, weights, dir)
})
