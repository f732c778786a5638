/**
 * What a model needs in device memory, from its `config.json` alone (no weights read): the weights as llink holds
 * them (float32, whatever the checkpoint's dtype), and for the Llama decoder the Stage B training state (LoRA
 * weights, their gradients and AdamW moments, the slot module) and the activations one micro-batch keeps for the
 * backward pass. `llink doctor --model DIR` prints it; the figures are estimates of what tfjs allocates (the
 * largest live tensors), not measurements.
 *
 * Activations per decoder layer, per token (floats): the normed input twice (H each), q/k/v (H + 2·kvH·hd), the
 * attention output and its projection (2H), the residuals (2H), the MLP's gate, up, SiLU(gate) and their product
 * (4I); plus the attention probabilities, heads·T per token. The loss keeps logits only at the target positions
 * (`targetNll`), targets × vocab.
 */
import type { LlamaConfig, XlmRobertaConfig } from "./hfconfig.ts"
import { makeConfig as makeProjectorConfig } from "./projector.ts"
import { makeSlotConfig, slotParamShapes } from "./slots.ts"

export interface MemoryLine {
  readonly what: string
  readonly bytes: number
}

export interface MemoryPlan {
  readonly lines: ReadonlyArray<MemoryLine>
  readonly totalBytes: number
  /** The largest single tensor (a WebGPU binding must hold it: compare with maxStorageBufferBindingSize). */
  readonly largestTensor: MemoryLine
}

const F32 = 4

export interface DecoderTrainingShape {
  /** Sequences per micro-batch and tokens per sequence (the paper: 8 × 768). */
  readonly batch: number
  readonly seqLen: number
  /** Target tokens per sequence whose logits the loss needs (default: half the sequence). */
  readonly targetTokens?: number
  readonly loraRank: number
  /** LoRA-adapted projections per layer (the paper: q, k, v, o, gate, up, down). */
  readonly loraTargets: ReadonlyArray<"q" | "k" | "v" | "o" | "gate" | "up" | "down">
  /** K slots (the slot module's expander size). */
  readonly slots: number
  /** The encoder width feeding the projector (xlm-roberta-base: 768) and the projector's hidden width. */
  readonly encoderDim: number
}

const sum = (lines: ReadonlyArray<MemoryLine>): number => lines.reduce((a, l) => a + l.bytes, 0)

/** The Llama decoder: frozen weights, Stage B training state and one micro-batch's activations. */
export const decoderPlan = (c: LlamaConfig, s: DecoderTrainingShape): MemoryPlan => {
  const H = c.hidden_size
  const I = c.intermediate_size
  const L = c.num_hidden_layers
  const heads = c.num_attention_heads
  const hd = c.head_dim ?? H / heads
  const kvH = c.num_key_value_heads ?? heads
  const V = c.vocab_size
  const embed = V * H
  const perLayer = H * heads * hd + 2 * H * kvH * hd + heads * hd * H + 3 * H * I + 2 * H
  const weights = embed * (c.tie_word_embeddings === false ? 2 : 1) + L * perLayer + H
  const shapes: Record<string, readonly [number, number]> = {
    q: [H, heads * hd],
    k: [H, kvH * hd],
    v: [H, kvH * hd],
    o: [heads * hd, H],
    gate: [H, I],
    up: [H, I],
    down: [I, H]
  }
  const loraPerLayer = s.loraTargets.reduce((a, t) => a + s.loraRank * (shapes[t][0] + shapes[t][1]), 0)
  const lora = L * loraPerLayer
  const count = (shapes: Record<string, ReadonlyArray<number>>): number =>
    Object.values(shapes).reduce((a, shape) => a + shape.reduce((x, y) => x * y, 1), 0)
  const slotModule = count(slotParamShapes(makeSlotConfig(H, s.slots)))
  const pc = makeProjectorConfig(s.encoderDim, H)
  const projector = pc.dIn * pc.dHidden + pc.dHidden + pc.dHidden * pc.dOut + 3 * pc.dOut
  const T = s.seqLen
  const tokens = s.batch * T
  const perTokenPerLayer = 2 * H + (H + 2 * kvH * hd) + 2 * H + 2 * H + 4 * I + heads * T
  const targets = s.batch * (s.targetTokens ?? Math.ceil(T / 2))
  const lines: Array<MemoryLine> = [
    { what: `decoder weights (float32, ${(weights / 1e9).toFixed(2)}B parameters)`, bytes: weights * F32 },
    { what: `LoRA r${s.loraRank} on ${s.loraTargets.join("/")}: weights + gradients + AdamW m, v`, bytes: 4 * lora * F32 },
    { what: `slot module (K = ${s.slots}) + frozen projector: weights; slot gradients + AdamW`, bytes: (4 * slotModule + projector) * F32 },
    { what: `activations kept for backward, ${s.batch} × ${T} tokens × ${L} layers`, bytes: tokens * L * perTokenPerLayer * F32 },
    { what: `logits at ${targets.toLocaleString("en-US")} target tokens × ${V.toLocaleString("en-US")} vocab (+ gradient)`, bytes: 2 * targets * V * F32 }
  ]
  const largest = [
    { what: `embedding matrix [${V}, ${H}]`, bytes: embed * F32 },
    { what: `target logits [${targets}, ${V}]`, bytes: targets * V * F32 },
    { what: `attention probabilities of one layer [${s.batch}, ${heads}, ${T}, ${T}]`, bytes: s.batch * heads * T * T * F32 }
  ].sort((a, b) => b.bytes - a.bytes)[0]
  return { lines, totalBytes: sum(lines), largestTensor: largest }
}

/** The XLM-R encoder: weights and one forward batch (no training). */
export const encoderPlan = (c: XlmRobertaConfig, batch: number, seqLen: number): MemoryPlan => {
  const H = c.hidden_size
  const I = c.intermediate_size
  const L = c.num_hidden_layers
  const V = c.vocab_size
  const weights = V * H + c.max_position_embeddings * H + c.type_vocab_size * H + L * (4 * H * H + 2 * H * I + 9 * H + I) + 2 * H
  const live = batch * seqLen * (4 * H + I + c.num_attention_heads * seqLen)
  const lines: Array<MemoryLine> = [
    { what: `encoder weights (float32, ${(weights / 1e6).toFixed(0)}M parameters)`, bytes: weights * F32 },
    { what: `one layer's activations, ${batch} × ${seqLen} tokens (inference)`, bytes: live * F32 }
  ]
  return { lines, totalBytes: sum(lines), largestTensor: { what: `embedding matrix [${V}, ${H}]`, bytes: V * H * F32 } }
}

export const formatBytes = (bytes: number): string =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`
