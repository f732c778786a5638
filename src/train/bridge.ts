/**
 * Data and training of the peer baselines that feed every encoder token state to the frozen decoder (LangBridge,
 * MindMerger; the bridge modules are in src/models/bridge.ts). Shared by the `langbridge` and `mindmerger` stages
 * (and MindMerger's two phases) and by `generate`.
 *
 * One example's decoder sequence (right-padded in a batch):
 *
 *   [BOS, s₁ … s_n, e, p₁ … p_m, t₁ … t_k]
 *
 * s_i: the bridge's map of the frozen encoder's last hidden state of encoder token i (all n tokens of the encoder
 * input, `<s>` and `</s>` included, as both papers' code); e: the learned end vector (LangBridge `enc_eos`,
 * MindMerger `end_boundary`); p: the decoder's own embeddings of an optional text prompt (MindMerger's second
 * phase: the task prompt with the original text; empty otherwise); t: the target tokens, the only ones with loss.
 * Soft rows sit at placeholder ids (the pad id) whose embeddings are overwritten (llama.ts overrides), so the
 * decoder's forward, loss and `generate` are the ones LLINK uses. The encoder's padding never reaches the decoder
 * (MindMerger's `squeeze_pad`; LangBridge masks it).
 *
 * Training (`trainBridge`): only the bridge's parameters learn (decoder and encoder frozen, no LoRA, as in both
 * papers); loss = mean cross-entropy over target tokens; the loop, schedule, clipping and exact resume are
 * src/train/sftLoop.ts. Validation logs `valLoss` and `valLzero`, the same loss with the mapped states replaced by
 * zeros (the end vector kept), which shows whether the decoder reads the states.
 */
import * as tf from "@tensorflow/tfjs"
import type { Effect } from "effect"
import { readTidy } from "../backend/read.ts"
import type { BridgeModule, SoftSpan } from "../models/bridge.ts"
import { bridgeOverrides } from "../models/bridge.ts"
import type { DecoderInput, LlamaModel } from "../models/llama.ts"
import type { TextTokenizer } from "../models/tokenizer.ts"
import type { EncoderCut } from "../models/xlmr.ts"
import { encoderTokenIds } from "../models/xlmr.ts"
import type { StageError } from "../pipeline/errors.ts"
import type { Progress } from "../pipeline/stage.ts"
import type { EncodedExample } from "../prompts/slots.ts"
import { encodeOnPrompt, padBatch } from "../prompts/slots.ts"
import type { LmTargets } from "./stageBLoss.ts"
import { lmLoss, lmTargets, targetNll } from "./stageBLoss.ts"
import type { LoopResult, LoopSettings } from "./sftLoop.ts"
import { runLoop } from "./sftLoop.ts"

/** What one example puts where: the encoder's text, the decoder's own text prompt (empty: none), the target. */
export interface BridgeText {
  readonly row: number
  readonly encoderText: string
  readonly llmPrompt: string
  readonly target: string
}

/** An example with its encoder token ids, before the encoder ran. */
export interface BridgeTokens {
  readonly row: number
  readonly encoderIds: ReadonlyArray<number>
  /** Decoder ids and labels (placeholders at 1 … n+1). */
  readonly example: EncodedExample
}

/** An example ready to train or generate on: `states` is [length, d] (length = its encoder token count). */
export interface BridgeExample extends BridgeTokens {
  readonly states: Float32Array
}

export interface BridgeEncodeSettings {
  readonly maxSeqLen: number
  readonly appendEos: boolean
  readonly cut: EncoderCut
}

/** Decoder prompt ids: BOS, n+1 placeholders (n states and the end vector), the text prompt's tokens. */
export const bridgePromptIds = (decoder: TextTokenizer, placeholder: number, nStates: number, llmPrompt: string): Array<number> => {
  const bos = decoder.bosId
  if (bos === undefined) throw new Error("the decoder tokenizer has no BOS token")
  const suffix = llmPrompt.length === 0 ? [] : decoder.encode(llmPrompt, { addSpecialTokens: false })
  return [bos, ...new Array<number>(nStates + 1).fill(placeholder), ...suffix]
}

/** Tokenises the rows (empty targets and over-long prompts skipped, counted by reason). */
export const encodeBridgeRows = (
  decoder: TextTokenizer,
  encoder: TextTokenizer,
  encoderEos: number,
  placeholder: number,
  rows: ReadonlyArray<BridgeText>,
  s: BridgeEncodeSettings,
  limit = 0
): { readonly examples: Array<BridgeTokens>; readonly skipped: Record<string, number> } => {
  const examples: Array<BridgeTokens> = []
  const skipped: Record<string, number> = {}
  for (const r of rows) {
    if (limit > 0 && examples.length >= limit) break
    const encoderIds = encoderTokenIds(encoder, r.encoderText, encoderEos, s.cut)
    const res = encodeOnPrompt(decoder, bridgePromptIds(decoder, placeholder, encoderIds.length, r.llmPrompt), r.target, {
      maxLen: s.maxSeqLen,
      appendEos: s.appendEos
    })
    if (!res.ok) {
      const reason = res.reason.startsWith("prompt has") ? "prompt longer than maxSeqLen" : res.reason
      skipped[reason] = (skipped[reason] ?? 0) + 1
      continue
    }
    examples.push({ row: r.row, encoderIds, example: res.example })
  }
  return { examples, skipped }
}

/** Attaches each example's encoder states (`states[i]` for `tokens[i]`, as `tokenStates` returns them). */
export const withStates = (tokens: ReadonlyArray<BridgeTokens>, states: ReadonlyArray<Float32Array>, dim: number): Array<BridgeExample> =>
  tokens.map((t, i) => {
    const s = states[i]
    if (s === undefined || s.length !== t.encoderIds.length * dim) {
      throw new Error(`example ${i}: ${s === undefined ? "no" : s.length / dim} encoder states for ${t.encoderIds.length} tokens`)
    }
    return { ...t, states: s }
  })

/** The soft spans and stacked states [Σ n, d] of a batch. */
export const batchStates = (exs: ReadonlyArray<Pick<BridgeExample, "encoderIds" | "states">>, dim: number): { readonly spans: Array<SoftSpan>; readonly data: Float32Array } => {
  const total = exs.reduce((a, e) => a + e.encoderIds.length, 0)
  const data = new Float32Array(total * dim)
  const spans: Array<SoftSpan> = []
  let at = 0
  exs.forEach((e, b) => {
    data.set(e.states, at * dim)
    spans.push({ batch: b, start: 1, length: e.encoderIds.length })
    at += e.encoderIds.length
  })
  return { spans, data }
}

/** Decoder input (with the soft rows) and targets of a batch. Not tidied: call inside tf.tidy / variableGrads. */
export const bridgeBatch = (
  m: BridgeModule,
  exs: ReadonlyArray<BridgeExample>,
  padId: number,
  options?: { readonly zeroStates?: boolean }
): { readonly input: DecoderInput; readonly targets: LmTargets } => {
  const padded = padBatch(exs.map((e) => e.example), padId)
  const { spans, data } = batchStates(exs, m.config.dIn)
  const overrides = bridgeOverrides(m, tf.tensor2d(data, [data.length / m.config.dIn, m.config.dIn]), spans, options)
  return { input: { ids: padded.ids, attentionMask: padded.attentionMask, overrides }, targets: lmTargets(padded.labels) }
}

/** Mean target-token loss over `exs` in batches of `batch` (no gradient), with or without the mapped states. */
export const bridgeEvalLoss = async (
  model: LlamaModel,
  m: BridgeModule,
  exs: ReadonlyArray<BridgeExample>,
  padId: number,
  batch: number,
  options?: { readonly zeroStates?: boolean }
): Promise<number> => {
  let sum = 0
  let n = 0
  for (let s = 0; s < exs.length; s += batch) {
    let tokens = 0
    const v = await readTidy(() => {
      const b = bridgeBatch(m, exs.slice(s, s + batch), padId, options)
      tokens = b.targets.tokens.length
      return tf.sum(targetNll(model, b.input, b.targets, false))
    })
    sum += v[0]
    n += tokens
  }
  return sum / n
}

export interface BridgeTrainSpec {
  readonly stage: string
  readonly model: LlamaModel
  readonly bridge: BridgeModule
  readonly train: ReadonlyArray<BridgeExample>
  readonly val: ReadonlyArray<BridgeExample>
  readonly padId: number
  readonly settings: LoopSettings
  readonly lr: number
  readonly weightDecay: number
  readonly identity: string
  readonly checkpointRoot: string
  readonly log: (message: string) => void
  readonly progress: (label: string, total?: number) => Progress
  readonly haltAfter?: number
}

/** The bridge's variables under stable names `bridge/<name>`. */
export const bridgeVariables = (m: BridgeModule): Map<string, tf.Variable> =>
  new Map([...m.params].map(([name, v]) => [`bridge/${name}`, v]))

/** Trains the bridge alone (see the module comment); rows carry `loss`, `lr`, `gradNorm`, `valLoss`, `valLzero`. */
export const trainBridge = (spec: BridgeTrainSpec): Effect.Effect<LoopResult, StageError> =>
  runLoop({
    stage: spec.stage,
    settings: spec.settings,
    groups: [{ name: "bridge", variables: bridgeVariables(spec.bridge), lr: spec.lr, weightDecay: spec.weightDecay }],
    logKeys: ["loss"],
    evalKeys: ["valLoss", "valLzero"],
    identity: spec.identity,
    checkpointRoot: spec.checkpointRoot,
    log: spec.log,
    progress: spec.progress,
    ...(spec.haltAfter === undefined ? {} : { haltAfter: spec.haltAfter }),
    hooks: {
      micro: (_step, _micro, indices) => {
        const b = bridgeBatch(spec.bridge, Array.from(indices, (i) => spec.train[i]), spec.padId)
        const loss = lmLoss(spec.model, b.input, b.targets, true)
        return { loss, logs: { loss } }
      },
      evaluate: async () => {
        if (spec.val.length === 0) return { valLoss: null, valLzero: null }
        const mb = spec.settings.microBatch
        return {
          valLoss: await bridgeEvalLoss(spec.model, spec.bridge, spec.val, spec.padId, mb),
          valLzero: await bridgeEvalLoss(spec.model, spec.bridge, spec.val, spec.padId, mb, { zeroStates: true })
        }
      }
    }
  })
