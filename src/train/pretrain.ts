/**
 * Pretraining of the miniature checkpoints, so the embedded default starts from models that know something, as the
 * paper starts from xlm-roberta-base and Llama-3.2-1B-Instruct:
 *
 * - **Decoder** (`pretrainDecoder`): next-token cross-entropy on English only (plain sentences, and instruction
 *   examples whose inputs are English), every weight trained. It trains a *compact* twin whose vocabulary is the
 *   shortlist S of token ids its data contains, then writes the full-vocabulary checkpoint back: input-embedding rows
 *   of S trained, the other rows random at the trained rows' median norm ("never seen", as Khmer is to
 *   Llama-3.2-1B); the (untied) LM head rows of S trained and every other row exactly zero. Over the full vocabulary
 *   the zero rows all have logit 0, and the compact loss here includes them exactly (a column log(V − |S|)), so the
 *   compact model's loss is the full checkpoint's loss, and later stages compute it the same way
 *   (`HeadRows` in llama.ts).
 * - **Encoder** (`pretrainEncoder`): XLM-R's masked-LM (15% of the non-special tokens chosen; of those 80% `<mask>`,
 *   10% a random token, 10% kept) on monolingual sentences of both languages, shuffled together, with no parallel
 *   signal. The MLM head (dense → GELU → LayerNorm → tied decoder + bias, as `XLMRobertaForMaskedLM`) is used only
 *   here; the checkpoint keeps the `XLMRobertaModel` weights.
 *
 * Both: AdamW, linear warmup then cosine to 10% of the peak, gradient clipping at 1, seeded batches, plain
 * synchronous steps (yielding to the event loop between steps), so a run repeats byte for byte on one backend.
 * The decoder's batch may be cut into micro-batches (`DecoderSettings.microBatches`; the embedded default: 2) whose
 * gradients are summed in order; they run side by side on worker threads (`decoderWorkers.ts`), and the bytes depend
 * on how many parts there are, not on how many threads computed them.
 */
import * as tf from "@tensorflow/tfjs"
import { AdamW, clipCoefficient, gradNorm } from "../backend/adamw.ts"
import type { LlamaConfig, XlmRobertaConfig } from "../models/hfconfig.ts"
import type { LlamaModel } from "../models/llama.ts"
import { llamaLayers, ropeInvFreq } from "../models/llama.ts"
import { deriveSeed, fillNormal, makeRng } from "../models/rng.ts"
import type { HostTensor } from "../models/safetensors.ts"
import type { Norm, XlmrModel } from "../models/xlmr.ts"
import { encode, geluErf, layerNorm, xlmrFromTensors } from "../models/xlmr.ts"
import { warmupCosine } from "./schedule.ts"
import { DecoderWorkers } from "./decoderWorkers.ts"
import { crossEntropyRows, lmLoss, lmTargets, targetNll } from "./stageBLoss.ts"
import { epochPermutation } from "./trainState.ts"

export interface PretrainSettings {
  readonly steps: number
  readonly batchSize: number
  readonly lr: number
  readonly warmupSteps: number
  readonly weightDecay: number
  readonly seed: number
}

/** The decoder's settings: `PretrainSettings` plus how each step's batch is computed. */
export interface DecoderSettings extends PretrainSettings {
  /**
   * Micro-batches per step (default 1). Above 1, each batch is cut into this many consecutive parts (`microBatchesOf`)
   * whose gradients of (sum of their token losses) / (the whole batch's target tokens) are summed in order: the whole
   * batch's mean-loss gradient up to float rounding. The bytes depend on this number, not on where the parts run.
   */
  readonly microBatches?: number
  /** Threads the micro-batches run on (default 1: this one; the others are worker threads, `DecoderWorkers`). */
  readonly threads?: number
}

export interface CurvePoint {
  readonly step: number
  readonly loss: number
}

export interface PretrainResult {
  /** The full checkpoint's tensors (Hugging Face names). */
  readonly weights: Map<string, HostTensor>
  /** Loss per step (1-based steps). */
  readonly curve: ReadonlyArray<CurvePoint>
}

/** One step's loss and gradients (keyed by tf variable name; the loop disposes them). */
type StepGrads = (indices: ReadonlyArray<number>, step: number) => Promise<{ readonly loss: number; readonly grads: Record<string, tf.Tensor> }>

/** Called after each step; may return a promise (the loop awaits it, so logs and progress get out). */
export type StepHook = (step: number, loss: number) => void | Promise<void>

/** One sequence: ids and next-token labels in the `transformers` convention (−100 = no loss; labels[p] is the
 *  target of the state at p − 1). */
export interface LmExample {
  readonly ids: ReadonlyArray<number>
  readonly labels: ReadonlyArray<number>
}

const host = (t: tf.Tensor): HostTensor => ({ shape: [...t.shape], data: Float32Array.from(t.dataSync()) })

let variableCounter = 0

/** Variables over host tensors, named uniquely in this process (tfjs keeps one global registry of names). */
export class VariableSet {
  readonly vars = new Map<string, tf.Variable>()
  private readonly prefix = `pretrain${variableCounter++}/`
  add(name: string, t: HostTensor): tf.Variable {
    const v = tf.variable(tf.tensor(t.data, [...t.shape], "float32"), true, this.prefix + name)
    this.vars.set(name, v)
    return v
  }
  hostOf(name: string): HostTensor {
    return host(this.vars.get(name)!)
  }
  dispose(): void {
    for (const v of this.vars.values()) v.dispose()
  }
}

/** The gradients of `lossOf` over every variable of `vars`, with the loss read out. */
const variableGrads = (vars: VariableSet, lossOf: (indices: ReadonlyArray<number>, step: number) => tf.Scalar): StepGrads =>
  async (indices, step) => {
    const { value, grads } = tf.variableGrads(() => lossOf(indices, step), [...vars.vars.values()])
    const loss = (await value.data())[0]
    value.dispose()
    return { loss, grads }
  }

/** `steps` of AdamW over `vars` with the gradients `gradsOf` gives: seeded batches of `n` examples, warmup + cosine,
 *  clip at 1; `afterStep` runs once the weights have moved. */
const trainLoop = async (
  vars: VariableSet,
  n: number,
  s: PretrainSettings,
  gradsOf: StepGrads,
  decays: (name: string) => boolean,
  onStep?: StepHook,
  afterStep?: () => void
): Promise<Array<CurvePoint>> => {
  const byVarName = new Map<string, string>()
  for (const [name, v] of vars.vars) byVarName.set(v.name, name)
  const opt = new AdamW([...vars.vars.values()], {
    lr: s.lr,
    weightDecay: s.weightDecay,
    decays: (varName) => decays(byVarName.get(varName) ?? varName)
  })
  const curve: Array<CurvePoint> = []
  const batch = Math.min(s.batchSize, n)
  let epoch = 0
  let perm = epochPermutation(s.seed, epoch, n)
  let at = 0
  for (let step = 0; step < s.steps; step++) {
    if (at + batch > n) {
      epoch++
      perm = epochPermutation(s.seed, epoch, n)
      at = 0
    }
    const indices = Array.from(perm.subarray(at, at + batch))
    at += batch
    const lr = warmupCosine(step, { peak: s.lr, warmupSteps: s.warmupSteps, totalSteps: s.steps, floor: s.lr / 10 })
    const { loss, grads } = await gradsOf(indices, step)
    const scale = clipCoefficient(gradNorm(grads), 1)
    opt.step(grads, { lr, gradScale: scale })
    tf.dispose(Object.values(grads))
    afterStep?.()
    curve.push({ step: step + 1, loss })
    if (onStep !== undefined) await onStep(step + 1, loss)
    else if (step % 8 === 7) await new Promise<void>((r) => setImmediate(r))
  }
  return curve
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder

/** The ids a decoder's pretraining data uses (inputs and targets), plus `always`, ascending. */
export const decoderShortlist = (examples: ReadonlyArray<LmExample>, always: ReadonlyArray<number>): Int32Array => {
  const seen = new Set<number>(always)
  for (const e of examples) for (const id of e.ids) seen.add(id)
  return Int32Array.from([...seen].sort((a, b) => a - b))
}

const rowsOf = (t: HostTensor, ids: Int32Array): HostTensor => {
  const H = t.shape[1]
  const out = new Float32Array(ids.length * H)
  ids.forEach((r, i) => out.set(t.data.subarray(r * H, (r + 1) * H), i * H))
  return { shape: [ids.length, H], data: out }
}

const rowNorm = (d: Float32Array, r: number, H: number): number => {
  let s = 0
  for (let j = 0; j < H; j++) s += d[r * H + j] * d[r * H + j]
  return Math.sqrt(s)
}

const median = (xs: Array<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]
}

/** The compact decoder over `vars` (added from `weights`): its head's zero rows as one column of `zeroCount` (every
 *  compact row is "non-zero"), so its loss is the full checkpoint's full-vocabulary loss. */
export const compactDecoderOnVariables = (
  config: LlamaConfig,
  vars: VariableSet,
  weights: ReadonlyMap<string, HostTensor>,
  zeroCount: number
): LlamaModel => {
  const w = (name: string) => vars.add(name, weights.get(name)!)
  // in this order (the variables' order is the order their gradients are summed in the clipping norm)
  const embed = w("model.embed_tokens.weight") as tf.Tensor2D
  const lmHead = w("lm_head.weight") as tf.Tensor2D
  const layers = llamaLayers(config, (n) => w(n) as tf.Tensor2D, (n) => w(n) as tf.Tensor1D)
  const norm = w("model.norm.weight") as tf.Tensor1D
  const identity = Int32Array.from({ length: config.vocab_size }, (_, i) => i)
  return {
    kind: "llama",
    config,
    headDim: config.head_dim ?? config.hidden_size / config.num_attention_heads,
    embed,
    lmHead,
    tied: false,
    layers,
    norm,
    invFreq: ropeInvFreq(config),
    lora: undefined,
    headRows: { ids: identity, compact: lmHead, index: identity, zeroCount }
  }
}

/** Decoder rows as one right-padded batch: the model input and the next-token targets. */
export const decoderBatch = (rows: ReadonlyArray<LmExample>) => {
  const T = Math.max(...rows.map((r) => r.ids.length))
  const ids = rows.map((r) => [...r.ids, ...new Array<number>(T - r.ids.length).fill(0)])
  const attentionMask = rows.map((r) => [...r.ids.map(() => 1), ...new Array<number>(T - r.ids.length).fill(0)])
  const labels = rows.map((r) => [...r.labels, ...new Array<number>(T - r.labels.length).fill(-100)])
  return { input: { ids, attentionMask }, targets: lmTargets(labels) }
}

/** How many next-token targets the rows hold (as `lmTargets` counts them). */
export const targetCount = (rows: ReadonlyArray<LmExample>): number => {
  let n = 0
  for (const r of rows) for (let p = 1; p < r.labels.length; p++) if (r.labels[p] !== -100) n++
  return n
}

/** One micro-batch's share of its batch's mean loss: (sum of its rows' token losses) / `total` (the whole batch's
 *  target count). The shares of a batch's micro-batches sum to its mean loss. */
export const microBatchLoss = (model: LlamaModel, rows: ReadonlyArray<LmExample>, total: number): tf.Scalar => {
  const b = decoderBatch(rows)
  return tf.div(tf.sum(targetNll(model, b.input, b.targets, false)), total) as tf.Scalar
}

/** `indices` cut into `m` consecutive parts whose sizes differ by at most one (the larger first); empty parts are
 *  left out. */
export const microBatchesOf = (indices: ReadonlyArray<number>, m: number): Array<Array<number>> => {
  const parts: Array<Array<number>> = []
  const base = Math.floor(indices.length / m)
  const extra = indices.length % m
  let at = 0
  for (let c = 0; c < m; c++) {
    const size = base + (c < extra ? 1 : 0)
    if (size > 0) parts.push(indices.slice(at, at + size))
    at += size
  }
  return parts
}

/** The backend choice a worker thread starts to compute as this thread does, or undefined when the backend's
 *  memory is not this process's (webgpu, tfjs-node), where the micro-batches run here one after another. */
const workerBackend = (): "blas" | "wasm" | "cpu" | undefined => {
  const name = tf.getBackend()
  return name === "cpu-blas" ? "blas" : name === "wasm" ? "wasm" : name === "cpu" ? "cpu" : undefined
}

/**
 * Pretrains an untied Llama (`config.tie_word_embeddings` must be false) from `init` (its full-vocabulary random
 * weights) on `examples`; `always`: ids that must stay producible (EOS). See the module comment.
 */
export const pretrainDecoder = async (
  config: LlamaConfig,
  init: ReadonlyMap<string, HostTensor>,
  examples: ReadonlyArray<LmExample>,
  always: ReadonlyArray<number>,
  s: DecoderSettings,
  onStep?: StepHook
): Promise<PretrainResult & { readonly shortlist: Int32Array; readonly threads: number }> => {
  if (config.tie_word_embeddings) throw new Error("pretrainDecoder: the miniature decoder must have an untied head")
  if (examples.length === 0) throw new Error("pretrainDecoder: no examples")
  const V = config.vocab_size
  const H = config.hidden_size
  const S = decoderShortlist(examples, always)
  if (S.length >= V) throw new Error("pretrainDecoder: the shortlist covers the whole vocabulary")
  const index = new Int32Array(V).fill(-1)
  S.forEach((id, i) => (index[id] = i))
  const remap = (ids: ReadonlyArray<number>): Array<number> => ids.map((id) => (id < 0 ? id : index[id]))
  const compact = examples.map((e) => ({ ids: remap(e.ids), labels: remap(e.labels) }))
  const compactConfig: LlamaConfig = { ...config, vocab_size: S.length }
  const weights = new Map(init)
  weights.set("model.embed_tokens.weight", rowsOf(init.get("model.embed_tokens.weight")!, S))
  weights.set("lm_head.weight", rowsOf(init.get("lm_head.weight")!, S))
  const vars = new VariableSet()
  const model = compactDecoderOnVariables(compactConfig, vars, weights, V - S.length)
  const m = Math.max(1, s.microBatches ?? 1)
  const backend = workerBackend()
  const threads = m === 1 || backend === undefined ? 1 : Math.max(1, Math.min(m, s.threads ?? 1))
  let workers: DecoderWorkers | undefined
  try {
    if (threads > 1 && backend !== undefined) {
      workers = await DecoderWorkers.start(threads - 1, { config: compactConfig, zeroCount: V - S.length, examples: compact, backend }, vars)
    }
    const pool = workers
    const gradsOf: StepGrads = m === 1
      ? variableGrads(vars, (indices) => {
        const b = decoderBatch(indices.map((i) => compact[i]))
        return lmLoss(model, b.input, b.targets, false)
      })
      : async (indices) => {
        const parts = microBatchesOf(indices, m)
        const total = targetCount(indices.map((i) => compact[i]))
        // part c runs on thread c mod `threads` (0: this one); the workers' parts are posted first
        const remote = pool === undefined ? [] : parts.map((part, c) => (c % threads === 0 ? undefined : pool.run(c % threads - 1, part, total)))
        // a worker's failure is raised where its part is awaited below; until then it must not count as unhandled
        for (const r of remote) void r?.then(undefined, () => undefined)
        const local = new Map<number, { readonly loss: number; readonly grads: Record<string, tf.Tensor> }>()
        for (let c = 0; c < parts.length; c++) {
          if (remote[c] !== undefined) continue
          const rows = parts[c].map((i) => compact[i])
          local.set(c, await variableGrads(vars, () => microBatchLoss(model, rows, total))(parts[c], 0))
        }
        let loss = 0
        const grads: Record<string, tf.Tensor> = {}
        for (let c = 0; c < parts.length; c++) {
          const g = local.get(c) ?? (await remote[c]!)
          loss += g.loss
          for (const [name, t] of Object.entries(g.grads)) {
            const sum = grads[name]
            grads[name] = sum === undefined ? t : tf.add(sum, t)
            if (sum !== undefined) tf.dispose([sum, t])
          }
        }
        return { loss, grads }
      }
    const curve = await trainLoop(vars, compact.length, s, gradsOf, (name) => !name.endsWith("norm.weight"), onStep, () => pool?.publish(vars))
    // Back to the full vocabulary.
    const out = new Map<string, HostTensor>()
    for (const name of vars.vars.keys()) out.set(name, vars.hostOf(name))
    const embC = out.get("model.embed_tokens.weight")!
    const headC = out.get("lm_head.weight")!
    const embed = Float32Array.from(init.get("model.embed_tokens.weight")!.data)
    const norms: Array<number> = []
    for (let i = 0; i < S.length; i++) norms.push(rowNorm(embC.data, i, H))
    const target = median(norms)
    for (let r = 0; r < V; r++) {
      if (index[r] >= 0) continue
      const n = rowNorm(embed, r, H)
      if (n > 0) for (let j = 0; j < H; j++) embed[r * H + j] *= target / n
    }
    const head = new Float32Array(V * H)
    S.forEach((id, i) => {
      embed.set(embC.data.subarray(i * H, (i + 1) * H), id * H)
      head.set(headC.data.subarray(i * H, (i + 1) * H), id * H)
    })
    out.set("model.embed_tokens.weight", { shape: [V, H], data: embed })
    out.set("lm_head.weight", { shape: [V, H], data: head })
    return { weights: out, curve, shortlist: S, threads }
  } finally {
    await workers?.close()
    vars.dispose()
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder

export interface MlmSettings extends PretrainSettings {
  /** Share of the non-special tokens chosen for prediction (XLM-R: 0.15). */
  readonly maskProb: number
}

const XLMR_SPECIAL = new Set([0, 1, 2, 3])

/** XLM-R over variables; token types are all 0 in XLM-R, so that row stays a plain tensor (the caller disposes it). */
const xlmrOnVariables = (config: XlmRobertaConfig, vars: VariableSet, weights: ReadonlyMap<string, HostTensor>): XlmrModel =>
  xlmrFromTensors(
    config,
    (name) => vars.add(name, weights.get(name)!) as tf.Tensor2D,
    (name) => vars.add(name, weights.get(name)!) as tf.Tensor1D,
    tf.tensor2d(weights.get("embeddings.token_type_embeddings.weight")!.data, [config.type_vocab_size, config.hidden_size])
  )

/** The masked positions and corrupted inputs of one batch (seeded by step). */
export const mlmCorrupt = (
  rows: ReadonlyArray<ReadonlyArray<number>>,
  vocab: number,
  maskId: number,
  maskProb: number,
  seed: number
): { readonly ids: Array<Array<number>>; readonly batch: Array<number>; readonly position: Array<number>; readonly targets: Array<number> } => {
  const rng = makeRng(seed)
  const ids = rows.map((r) => [...r])
  const batch: Array<number> = []
  const position: Array<number> = []
  const targets: Array<number> = []
  rows.forEach((r, b) => {
    const candidates = r.map((id, p) => (XLMR_SPECIAL.has(id) || id === maskId ? -1 : p)).filter((p) => p >= 0)
    for (const p of candidates) {
      if (rng.uniform() >= maskProb) continue
      batch.push(b)
      position.push(p)
      targets.push(r[p])
      const u = rng.uniform()
      if (u < 0.8) ids[b][p] = maskId
      else if (u < 0.9) ids[b][p] = 4 + Math.floor(rng.uniform() * (vocab - 5))
    }
    if (candidates.length > 0 && !batch.some((x) => x === b)) {
      const p = candidates[Math.floor(rng.uniform() * candidates.length)]
      batch.push(b)
      position.push(p)
      targets.push(r[p])
      ids[b][p] = maskId
    }
  })
  return { ids, batch, position, targets }
}

/**
 * Masked-LM pretraining of XLM-R from `init` on `sentences` (token ids with `<s>`/`</s>`, both languages mixed);
 * `maskId`: the `<mask>` token. Returns the `XLMRobertaModel` weights (the MLM head is dropped).
 */
export const pretrainEncoder = async (
  config: XlmRobertaConfig,
  init: ReadonlyMap<string, HostTensor>,
  sentences: ReadonlyArray<ReadonlyArray<number>>,
  maskId: number,
  s: MlmSettings,
  onStep?: StepHook
): Promise<PretrainResult> => {
  if (sentences.length === 0) throw new Error("pretrainEncoder: no sentences")
  const H = config.hidden_size
  const V = config.vocab_size
  const vars = new VariableSet()
  const model = xlmrOnVariables(config, vars, init)
  const rng = makeRng(deriveSeed(s.seed, "mlm-head"))
  const headDense = vars.add("mlm.dense.weight", { shape: [H, H], data: fillNormal(rng, H * H, 0.02) })
  const headBias = vars.add("mlm.dense.bias", { shape: [H], data: new Float32Array(H) })
  const headNorm: Norm = {
    weight: vars.add("mlm.layer_norm.weight", { shape: [H], data: new Float32Array(H).fill(1) }) as tf.Tensor1D,
    bias: vars.add("mlm.layer_norm.bias", { shape: [H], data: new Float32Array(H) }) as tf.Tensor1D
  }
  const vocabBias = vars.add("mlm.bias", { shape: [V], data: new Float32Array(V) })
  const pad = config.pad_token_id
  try {
    const curve = await trainLoop(vars, sentences.length, s, variableGrads(vars, (indices, step) => {
      const rows = indices.map((i) => sentences[i])
      const T = Math.max(...rows.map((r) => r.length))
      const padded = rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(pad)])
      const c = mlmCorrupt(padded, V, maskId, s.maskProb, deriveSeed(s.seed, `mlm:${step}`))
      const attentionMask = padded.map((r) => r.map((id) => (id === pad ? 0 : 1)))
      const hidden = tf.reshape(encode(model, { ids: c.ids, attentionMask }), [-1, H]) as tf.Tensor2D
      const at = tf.tensor1d(c.batch.map((b, i) => b * T + c.position[i]), "int32")
      const picked = tf.gather(hidden, at) as tf.Tensor2D
      const h = layerNorm(
        geluErf(tf.add(tf.matMul(picked, headDense, false, true), headBias)) as tf.Tensor2D,
        headNorm,
        config.layer_norm_eps
      )
      const logits = tf.add(tf.matMul(h, model.wordEmbeddings, false, true), vocabBias) as tf.Tensor2D
      return tf.mean(crossEntropyRows(logits, c.targets)) as tf.Scalar
    }), (name) => !(name.includes("LayerNorm") || name.includes("layer_norm") || name.endsWith("bias")), onStep)
    const out = new Map<string, HostTensor>(init)
    for (const name of vars.vars.keys()) if (!name.startsWith("mlm.")) out.set(name, vars.hostOf(name))
    return { weights: out, curve }
  } finally {
    model.tokenTypeEmbeddings.dispose()
    vars.dispose()
  }
}

/** Mean of the first and the last 10% of a curve's losses, and the curve averaged over windows (≤ 100 points). */
export const summariseCurve = (curve: ReadonlyArray<CurvePoint>) => {
  const n = curve.length
  const tenth = Math.max(1, Math.floor(n / 10))
  const mean = (xs: ReadonlyArray<CurvePoint>) => xs.reduce((a, p) => a + p.loss, 0) / Math.max(1, xs.length)
  if (n === 0) return { firstLoss: null, finalLoss: null, window: 1, curve: [] }
  const window = Math.max(1, Math.ceil(n / 100))
  const points: Array<{ step: number; loss: number }> = []
  for (let i = 0; i < n; i += window) {
    const part = curve.slice(i, i + window)
    points.push({ step: part[part.length - 1].step, loss: mean(part) })
  }
  return { firstLoss: mean(curve.slice(0, tenth)), finalLoss: mean(curve.slice(n - tenth)), window, curve: points }
}

/** A step hook that logs the mean loss of every tenth of the run, and lets the event loop breathe then. */
export const progressHook = (what: string, steps: number, log: (line: string) => void): StepHook => {
  let window = 0
  let count = 0
  const every = Math.max(1, Math.floor(steps / 10))
  return async (step, loss) => {
    window += loss
    count++
    if (step % every === 0 || step === steps) {
      log(`${what}: step ${step}/${steps}: loss ${(window / count).toFixed(4)}`)
      window = 0
      count = 0
      await new Promise<void>((r) => setImmediate(r))
    }
  }
}
