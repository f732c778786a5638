/**
 * The memory plan behind `llink doctor --model`, against counts made another way: the parameters of every tensor a
 * checkpoint holds (llamaTensorSpecs), the LoRA and slot variables llink actually creates, the published parameter
 * counts of Llama-3.2-1B and xlm-roberta-base, and a hand count of the documented activation accounting.
 */
import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { tinyLlamaConfig, tinyXlmrConfig, type LlamaConfig, type XlmRobertaConfig } from "../../src/models/hfconfig.ts"
import { llamaTensorSpecs } from "../../src/models/llama.ts"
import { createLora, disposeLora, loraVariables } from "../../src/models/lora.ts"
import { decoderPlan, encoderPlan } from "../../src/models/memoryPlan.ts"
import * as Projector from "../../src/models/projector.ts"
import { disposeSlots, initSlots, makeSlotConfig } from "../../src/models/slots.ts"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const ALL = ["q", "k", "v", "o", "gate", "up", "down"] as const

/** Llama-3.2-1B's config.json (the paper's decoder): 1,235,814,400 parameters, tied. */
const llama1B: LlamaConfig = {
  ...tinyLlamaConfig,
  vocab_size: 128256,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  tie_word_embeddings: true
}

/** xlm-roberta-base: 278,043,648 parameters with its pooler, which llink does not hold (768·768 + 768). */
const xlmrBase: XlmRobertaConfig = {
  ...tinyXlmrConfig,
  vocab_size: 250002,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 514,
  type_vocab_size: 1
}

const line = (plan: ReturnType<typeof decoderPlan>, prefix: string): number => {
  const l = plan.lines.find((x) => x.what.startsWith(prefix))
  if (l === undefined) throw new Error(`no line starting "${prefix}" in ${plan.lines.map((x) => x.what).join("; ")}`)
  return l.bytes
}

const numel = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)

describe("memory plan", () => {
  it("decoder weights: the checkpoint's own tensors (tiny, untied) and Llama-3.2-1B's published 1,235,814,400", () => {
    const tiny: LlamaConfig = { ...tinyLlamaConfig, tie_word_embeddings: false }
    const specs = llamaTensorSpecs(tiny).reduce((a, [, shape]) => a + numel(shape), 0)
    const shape = { batch: 2, seqLen: 8, loraRank: 4, loraTargets: ALL, slots: 4, encoderDim: 16 }
    expect(line(decoderPlan(tiny, shape), "decoder weights") / 4).toBe(specs)
    expect(line(decoderPlan(llama1B, { ...shape, loraRank: 16 }), "decoder weights") / 4).toBe(1_235_814_400)
  })

  it("LoRA: the variables createLora makes, and PEFT's 11,272,192 for r = 16 on all seven projections of the 1B", () => {
    const shape = { batch: 2, seqLen: 8, loraRank: 4, loraTargets: ["q", "v", "down"] as const, slots: 4, encoderDim: 16 }
    const adapters = createLora(tinyLlamaConfig, { rank: 4, alpha: 8, dropout: 0, targets: ["q", "v", "down"] }, 1)
    const made = loraVariables(adapters).reduce((a, v) => a + v.size, 0)
    disposeLora(adapters)
    // weights + gradients + AdamW m and v
    expect(line(decoderPlan(tinyLlamaConfig, shape), "LoRA") / 4).toBe(4 * made)
    expect(line(decoderPlan(llama1B, { ...shape, loraRank: 16, loraTargets: ALL }), "LoRA") / 4).toBe(4 * 11_272_192)
  })

  it("slot module (four copies: weights, gradients, m, v) and the frozen projector: the variables llink makes", () => {
    const H = tinyLlamaConfig.hidden_size
    const K = 4
    const slots = initSlots(makeSlotConfig(H, K), 3)
    const slotCount = slots.variables.reduce((a, v) => a + v.size, 0)
    disposeSlots(slots)
    const projCount = [...Projector.initHost(Projector.makeConfig(16, H), 3).values()].reduce((a, t) => a + t.data.length, 0)
    const plan = decoderPlan(tinyLlamaConfig, { batch: 2, seqLen: 8, loraRank: 4, loraTargets: ALL, slots: K, encoderDim: 16 })
    expect(line(plan, "slot module") / 4).toBe(4 * slotCount + projCount)
  })

  it("activations and target logits: the documented accounting, counted by hand on a small shape", () => {
    // H 8, I 16, 2 heads of 4, 1 KV head, 1 layer, 2 × 5 tokens, 3 targets each, vocabulary 30
    const c: LlamaConfig = {
      ...tinyLlamaConfig,
      vocab_size: 30,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 4
    }
    const plan = decoderPlan(c, { batch: 2, seqLen: 5, targetTokens: 3, loraRank: 2, loraTargets: ALL, slots: 2, encoderDim: 4 })
    // per token: normed input twice 16, q/k/v 8 + 4 + 4, attention out + projection 16, residuals 16, MLP 4·16 = 64,
    // probabilities 2 heads × 5 = 10 → 138 floats; × 10 tokens × 1 layer
    expect(line(plan, "activations") / 4).toBe(1380)
    // logits and their gradient at 2 × 3 targets × 30
    expect(line(plan, "logits") / 4).toBe(2 * 6 * 30)
    expect(plan.totalBytes).toBe(plan.lines.reduce((a, l) => a + l.bytes, 0))
  })

  it("the largest tensor of a paper-size step is the target logits", () => {
    const plan = decoderPlan(llama1B, { batch: 8, seqLen: 768, loraRank: 16, loraTargets: ALL, slots: 8, encoderDim: 768 })
    // 8 × 384 targets × 128,256 vocabulary × 4 bytes (the embedding is 128,256 × 2048, attention 8 × 32 × 768²)
    expect(plan.largestTensor.bytes).toBe(8 * 384 * 128256 * 4)
    expect(plan.largestTensor.what).toContain("target logits")
  })

  it("encoder weights: xlm-roberta-base's published count without the pooler", () => {
    const plan = encoderPlan(xlmrBase, 4, 128)
    expect(plan.lines[0].bytes / 4).toBe(278_043_648 - (768 * 768 + 768))
    // one layer's activations: 4 × 128 tokens × (4·768 + 3072 + 12 heads × 128)
    expect(plan.lines[1].bytes / 4).toBe(4 * 128 * (4 * 768 + 3072 + 12 * 128))
  })
})
