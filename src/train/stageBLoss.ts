/**
 * The Stage B objective (paper §4.2; authors' code `sft/training_loop.py`, `sft/modeling.py`):
 *
 *   total = L_SFT + L_contrast + λcos·L_cos + λnce·L_nce
 *
 * - L_SFT: next-token cross-entropy over the target tokens only, averaged over every target token of the micro-batch
 *   (the `labels=-100` convention of `transformers`), with the K slot vectors overwriting the `<f_i>` input rows.
 * - L_contrast (only on contrast steps, every `contrastEvery`-th optimizer step, step 0 included, as the code's
 *   `step % 3 == 0`): L_zero is the same SFT loss with the slot rows restored to the ordinary `<f_i>` embeddings,
 *   i.e. a forward with no overrides. "paper": λ·max(0, L_SFT − L_zero) (penalise the model when removing the slots
 *   helps); "code": λ·max(0, L_zero − L_SFT) (the authors' code, a sign bug). λ = 0.05. Gradients flow through both
 *   losses (L_zero reaches the LoRA weights only), as in the code.
 * - L_cos: alignment of the mean slot m = mean_k slot_k to the teacher vector h_E. "one-minus-cos" (default):
 *   mean_b(1 − cos(m_b, h_b)); "mse": the code's `F.mse_loss(normalize(m), normalize(h))`, the mean over batch AND
 *   dims of the squared difference of the unit vectors (= mean_b (2 − 2cos)/d). Weight 0.05 (code).
 * - L_nce: InfoNCE of the normalised mean slots against the normalised teachers of the micro-batch, one direction
 *   (slots → teachers), positives on the diagonal, temperature τ = 0.07: mean_b[logsumexp_j(m̂_b·ĥ_j/τ) − m̂_b·ĥ_b/τ].
 *   Weight: paper 0.01, code 1e-3. (The code's `safe_info_nce` also clamps logits to ±32 and τ to ≥ 0.01; with unit
 *   vectors and τ ≥ 1/32 the clamp never acts, so it is left out.)
 * Teachers are constants (no gradient). Unit vectors are x / max(‖x‖, 1e-12) (PyTorch `F.normalize`).
 *
 * Every term is returned separately for logging. Intermediate tensors are not tidied: call inside `tf.variableGrads`
 * or `tf.tidy`.
 */
import * as tf from "@tensorflow/tfjs"
import { onHost } from "../backend/read.ts"
import type { DecoderInput, LlamaModel } from "../models/llama.ts"
import { forward } from "../models/llama.ts"
import { meanOfSlots, slotOverrides } from "../models/slots.ts"

export type ContrastSign = "paper" | "code"
export type CosForm = "one-minus-cos" | "mse"

export interface StageBLossConfig {
  readonly contrastWeight: number
  /** L_zero and the contrast are computed on optimizer steps with step % contrastEvery == 0 (0 = never). */
  readonly contrastEvery: number
  readonly contrastSign: ContrastSign
  readonly cosWeight: number
  readonly cosForm: CosForm
  readonly nceWeight: number
  readonly nceTau: number
}

/** The paper's objective (the code's cosine weight, which the paper does not state). */
export const defaultStageBLossConfig: StageBLossConfig = {
  contrastWeight: 0.05,
  contrastEvery: 3,
  contrastSign: "paper",
  cosWeight: 0.05,
  cosForm: "one-minus-cos",
  nceWeight: 0.01,
  nceTau: 0.07
}

/** Whether optimizer step `step` (0-based) computes L_zero and the contrast. */
export const isContrastStep = (step: number, every: number): boolean => every > 0 && step % every === 0

// ---------------------------------------------------------------------------------------------------------------
// Language-model loss over target tokens

/** Next-token targets: the final hidden state at (batch[i], position[i]) predicts `tokens[i]`. */
export interface LmTargets {
  readonly batch: ReadonlyArray<number>
  readonly position: ReadonlyArray<number>
  readonly tokens: ReadonlyArray<number>
}

/** The targets of a label grid [B][T] (−100 = no loss): the hidden state at (b, p−1) predicts labels[b][p]. */
export const lmTargets = (labels: ReadonlyArray<ReadonlyArray<number>>, ignoreIndex = -100): LmTargets => {
  const batch: Array<number> = []
  const position: Array<number> = []
  const tokens: Array<number> = []
  labels.forEach((row, b) => {
    for (let p = 1; p < row.length; p++) {
      if (row[p] === ignoreIndex) continue
      batch.push(b)
      position.push(p - 1)
      tokens.push(row[p])
    }
  })
  return { batch, position, tokens }
}

/**
 * Row-wise cross-entropy [N] of logits [N, V] against `targets` (class ids): logsumexp(row) − row[target], with the
 * gradient (softmax − onehot)·dy. On the backends that compute in this process's memory (`cpu`, `cpu-blas`, `wasm`:
 * `onHost`) forward and backward are one host loop each over the logits (the composed tf ops cost ~10× more at
 * V = 128k, on wasm too); elsewhere they are tf ops. The two paths
 * agree to float32 rounding.
 */
export const crossEntropyRows = (logits: tf.Tensor2D, targets: ReadonlyArray<number>): tf.Tensor1D => {
  const [N, V] = logits.shape
  if (targets.length !== N) throw new Error(`cross-entropy: ${targets.length} targets for ${N} rows`)
  for (const t of targets) if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`cross-entropy: target ${t} is outside [0, ${V})`)
  if (!onHost()) {
    const picked = tf.sum(tf.mul(logits, tf.oneHot(tf.tensor1d(Int32Array.from(targets), "int32"), V)), -1)
    return tf.sub(tf.logSumExp(logits, -1), picked) as tf.Tensor1D
  }
  const f = tf.customGrad((...args: Array<tf.Tensor | ((save: Array<tf.Tensor>) => void)>) => {
    const x = args[0]
    if (!(x instanceof tf.Tensor)) throw new Error("cross-entropy: expected a tensor input")
    const host = x.dataSync() as Float32Array
    const probs = new Float32Array(N * V)
    const nll = new Float32Array(N)
    for (let i = 0; i < N; i++) {
      const o = i * V
      let max = -Infinity
      for (let j = 0; j < V; j++) if (host[o + j] > max) max = host[o + j]
      let sum = 0
      for (let j = 0; j < V; j++) {
        const e = Math.exp(host[o + j] - max)
        probs[o + j] = e
        sum += e
      }
      const inv = 1 / sum
      for (let j = 0; j < V; j++) probs[o + j] *= inv
      nll[i] = max + Math.log(sum) - host[o + targets[i]]
    }
    return {
      value: tf.tensor1d(nll) as tf.Tensor,
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync()
        const grad = new Float32Array(N * V)
        for (let i = 0; i < N; i++) {
          const o = i * V
          const gi = g[i]
          for (let j = 0; j < V; j++) grad[o + j] = probs[o + j] * gi
          grad[o + targets[i]] -= gi
        }
        return tf.tensor2d(grad, [N, V])
      }
    }
  })
  return f(logits) as tf.Tensor1D
}

/**
 * Per-target cross-entropy [N] = logsumexp(logits) − logit[target], with logits computed only at the target
 * coordinates (never [B, T, V]).
 */
export const targetNll = (model: LlamaModel, input: DecoderInput, targets: LmTargets, training: boolean): tf.Tensor1D => {
  const N = targets.tokens.length
  if (N === 0) throw new Error("lm loss: no target tokens")
  const hidden = forward(model, input, { training }).hidden as tf.Tensor3D
  const [B, T, H] = hidden.shape
  // Select the target rows with a one-hot matrix product rather than `gather`: the gradient of a gather is an
  // UnsortedSegmentSum, whose stock CPU kernel costs O(segments × rows).
  const sel = new Float32Array(N * B * T)
  for (let i = 0; i < N; i++) {
    const b = targets.batch[i]
    const p = targets.position[i]
    if (!(b >= 0 && b < B && p >= 0 && p < T)) throw new Error(`lm loss: target coordinate (${b}, ${p}) is outside [${B}, ${T}]`)
    sel[i * B * T + b * T + p] = 1
  }
  const rows = tf.matMul(tf.tensor2d(sel, [N, B * T]), tf.reshape(hidden, [B * T, H]) as tf.Tensor2D)
  const head = model.headRows
  if (head === undefined) return crossEntropyRows(tf.matMul(rows, model.lmHead, false, true) as tf.Tensor2D, targets.tokens)
  // Exact over the whole vocabulary: the zero rows' logits are all 0, so they enter as one column log(zeroCount);
  // a target that is a zero row has logit 0, i.e. its column's value minus log(zeroCount).
  const S = head.ids.length
  const logZ = Math.log(head.zeroCount)
  const compact = tf.matMul(rows, head.compact, false, true) as tf.Tensor2D
  const logits = tf.concat([compact, tf.fill([N, 1], logZ)], 1) as tf.Tensor2D
  const mapped = targets.tokens.map((t) => {
    if (!(t >= 0 && t < head.index.length)) throw new Error(`cross-entropy: target ${t} is outside [0, ${head.index.length})`)
    return head.index[t] >= 0 ? head.index[t] : S
  })
  const nll = crossEntropyRows(logits, mapped)
  if (!mapped.includes(S)) return nll
  return tf.add(nll, tf.tensor1d(mapped.map((m) => (m === S ? logZ : 0)))) as tf.Tensor1D
}

/** The mean cross-entropy over all target tokens. */
export const lmLoss = (model: LlamaModel, input: DecoderInput, targets: LmTargets, training: boolean): tf.Scalar =>
  tf.mean(targetNll(model, input, targets, training)) as tf.Scalar

// ---------------------------------------------------------------------------------------------------------------
// Terms

/** weight·max(0, L_SFT − L_zero) ("paper") or weight·max(0, L_zero − L_SFT) ("code"). */
export const contrastTerm = (lsft: tf.Scalar, lzero: tf.Scalar, sign: ContrastSign, weight: number): tf.Scalar =>
  tf.mul(tf.relu(sign === "paper" ? tf.sub(lsft, lzero) : tf.sub(lzero, lsft)), weight) as tf.Scalar

const unitRows = (x: tf.Tensor2D): tf.Tensor2D => tf.div(x, tf.maximum(tf.norm(x, 2, -1, true), 1e-12)) as tf.Tensor2D

/** L_cos of mean slots m [B, d] against teachers h [B, d] (see the module comment for the two forms). */
export const cosAlignLoss = (m: tf.Tensor2D, h: tf.Tensor2D, form: CosForm): tf.Scalar => {
  const mu = unitRows(m)
  const hu = unitRows(h)
  if (form === "mse") return tf.mean(tf.square(tf.sub(mu, hu))) as tf.Scalar
  return tf.mean(tf.sub(1, tf.sum(tf.mul(mu, hu), -1))) as tf.Scalar
}

/** L_nce: in-batch InfoNCE of normalised mean slots against normalised teachers (diagonal positives). */
export const slotInfoNce = (m: tf.Tensor2D, h: tf.Tensor2D, tau: number): tf.Scalar => {
  const logits = tf.div(tf.matMul(unitRows(m), unitRows(h), false, true), tau) as tf.Tensor2D
  const B = logits.shape[0]
  const diag = tf.sum(tf.mul(logits, tf.eye(B)), -1)
  return tf.mean(tf.sub(tf.logSumExp(logits, -1), diag)) as tf.Scalar
}

// ---------------------------------------------------------------------------------------------------------------
// The whole objective

export interface StageBLossInputs {
  /** The decoder (with LoRA) for the slot forward. */
  readonly model: LlamaModel
  /** The decoder for the L_zero forward (the same weights; may carry its own dropout stream). Default `model`. */
  readonly zeroModel?: LlamaModel
  /** Token ids and attention mask [B][T] (the `<f_i>` tokens at the slot positions). */
  readonly input: Omit<DecoderInput, "overrides">
  /** [B][K_b] positions of `<f0>` … `<f{K_b−1}>` (K_b = K, or an example's own K under `stageB.slotPolicy`). */
  readonly slotPositions: ReadonlyArray<ReadonlyArray<number>>
  readonly targets: LmTargets
  /** The slot vectors [B, K, d]. */
  readonly slots: tf.Tensor3D
  /** Teacher vectors h_E [B, d]; null skips L_cos and L_nce (they are then 0). */
  readonly teacher: tf.Tensor2D | null
  /** Compute L_zero and the contrast (a contrast step). */
  readonly withZero: boolean
  /** LoRA dropout on. */
  readonly training: boolean
}

export interface StageBLossTerms {
  readonly total: tf.Scalar
  readonly lsft: tf.Scalar
  /** null when not a contrast step. */
  readonly lzero: tf.Scalar | null
  /** The weighted contrast (0 when not a contrast step). */
  readonly contrast: tf.Scalar
  /** Unweighted L_cos and L_nce (0 without teachers). */
  readonly cos: tf.Scalar
  readonly nce: tf.Scalar
}

export const stageBLoss = (inputs: StageBLossInputs, config: StageBLossConfig): StageBLossTerms => {
  const overrides = slotOverrides(inputs.slots, inputs.slotPositions)
  const lsft = lmLoss(inputs.model, { ...inputs.input, overrides }, inputs.targets, inputs.training)
  let lzero: tf.Scalar | null = null
  let contrast: tf.Scalar = tf.scalar(0)
  if (inputs.withZero) {
    lzero = lmLoss(inputs.zeroModel ?? inputs.model, { ...inputs.input }, inputs.targets, inputs.training)
    contrast = contrastTerm(lsft, lzero, config.contrastSign, config.contrastWeight)
  }
  let cos: tf.Scalar = tf.scalar(0)
  let nce: tf.Scalar = tf.scalar(0)
  if (inputs.teacher !== null) {
    const m = meanOfSlots(inputs.slots, inputs.slotPositions.map((row) => row.length))
    cos = cosAlignLoss(m, inputs.teacher, config.cosForm)
    nce = slotInfoNce(m, inputs.teacher, config.nceTau)
  }
  const total = tf.addN([lsft, contrast, tf.mul(cos, config.cosWeight), tf.mul(nce, config.nceWeight)]) as tf.Scalar
  return { total, lsft, lzero, contrast, cos, nce }
}
