/** Small configs and random weights for the model tests (seeded; weights larger than the init std so attention,
 *  norms and nonlinearities all do visible work). */
import * as tf from "@tensorflow/tfjs"
import type { LlamaConfig, XlmRobertaConfig } from "../../src/models/hfconfig.ts"
import { tinyLlamaConfig, tinyXlmrConfig } from "../../src/models/hfconfig.ts"
import { initLlamaWeights, initXlmrWeights } from "../../src/models/init.ts"
import { deriveSeed, makeRng } from "../../src/models/rng.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"
import type { Mat } from "./reference.ts"

export const setupCpu = async (): Promise<void> => {
  await tf.setBackend("cpu")
  await tf.ready()
}

/** GQA (4 heads over 2 KV heads), head_dim 8 (rope frequencies in all three llama3 regimes), tied, vocab 61. */
export const smallLlama: LlamaConfig = {
  ...tinyLlamaConfig,
  vocab_size: 61,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  bos_token_id: 1,
  eos_token_id: [2, 3]
}

/** One KV head, head_dim 12 ≠ hidden/heads (q_proj out 48), untied head, no rope scaling. */
export const oddLlama: LlamaConfig = {
  ...smallLlama,
  num_key_value_heads: 1,
  head_dim: 12,
  tie_word_embeddings: false,
  rope_theta: 10000,
  rope_scaling: null,
  num_hidden_layers: 1
}

export const smallXlmr: XlmRobertaConfig = { ...tinyXlmrConfig, vocab_size: 50, hidden_size: 24, num_attention_heads: 3, intermediate_size: 40, max_position_embeddings: 40 }

/** Norm weights/biases get random values too, so a model that ignored them would be caught. */
const perturbNorms = (weights: Map<string, HostTensor>, seed: number): Map<string, HostTensor> => {
  const rng = makeRng(deriveSeed(seed, "norms"))
  for (const [name, t] of weights) {
    if (/norm\.(weight|bias)$/i.test(name) || name.endsWith(".bias")) {
      const isWeight = name.endsWith("weight")
      for (let i = 0; i < t.data.length; i++) t.data[i] = (isWeight ? 1 : 0) + 0.2 * rng.normal()
    }
  }
  return weights
}

export const randomLlamaWeights = (config: LlamaConfig, seed: number, std = 0.25): Map<string, HostTensor> =>
  perturbNorms(initLlamaWeights(config, seed, std), seed)

export const randomXlmrWeights = (config: XlmRobertaConfig, seed: number, std = 0.25): Map<string, HostTensor> =>
  perturbNorms(initXlmrWeights(config, seed, std), seed)

/** A tensor [B, T, H] as nested float64 rows. */
export const toMats = (t: tf.Tensor): Array<Mat> => {
  const [B, T, H] = t.shape
  const d = t.dataSync()
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: T }, (_, s) => Float64Array.from(d.subarray((b * T + s) * H, (b * T + s + 1) * H)))
  )
}

/** Max |a − b| over the positions where `mask` is 1. */
export const maskedMaxDiff = (a: Array<Mat>, b: Array<Mat>, mask: ReadonlyArray<ReadonlyArray<number>>): number => {
  let m = 0
  a.forEach((rows, bi) =>
    rows.forEach((r, t) => {
      if (!mask[bi][t]) return
      for (let i = 0; i < r.length; i++) m = Math.max(m, Math.abs(r[i] - b[bi][t][i]))
    })
  )
  return m
}

export const randomIds = (seed: number, B: number, T: number, vocab: number, lo = 4): Array<Array<number>> => {
  const rng = makeRng(seed)
  return Array.from({ length: B }, () => Array.from({ length: T }, () => lo + (rng.nextU32() % (vocab - lo))))
}
