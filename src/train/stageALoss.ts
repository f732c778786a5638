/**
 * The Stage A objective (paper §4.1; authors' code `projection/trainer.py`):
 *
 *   L = ½[NCE(p→h) + NCE(h→p)] + λdir·L_dir + λnorm·L_norm
 *
 * with p = p_F = g(z_F) (unnormalised projector output, [B, d]) and h = h_E (teacher, [B, d]); p̂, ĥ are the rows
 * divided by max(‖row‖, 1e-12) (PyTorch `F.normalize`).
 *
 * - NCE(p→h): logits_i = [p̂_i·ĥ_1 … p̂_i·ĥ_B, p̂_i·n_1 … p̂_i·n_K] / τ, the positive is ĥ_i (the diagonal);
 *   mean over rows of the cross-entropy. Hard negatives n come from the queue (already L2-normalised, constants):
 *   either one shared pool [K, d] for the whole batch (the code's "shared-mean" rule) or one pool per row
 *   [B, K, d] ("per-row" rule).
 * - NCE(h→p): logits = ĥ·p̂ᵀ / τ, in-batch negatives only (as the code does).
 * - L_dir: the squared error between p̂ and ĥ. `dirReduction: "mse"` (default) = mean over batch AND dims, which is
 *   the code's `F.mse_loss(pN, hN)` and the notes' "mean squared error"; `"sum"` = mean over the batch of
 *   ‖p̂ − ĥ‖² (summed over dims), the literal reading of the paper's ‖p_F − h_E‖². They differ by a factor d
 *   (2048), i.e. in effect the weight λdir.
 * - L_norm = mean over the batch of (log(‖p_F‖ + 1e-8) − log(‖h_E‖ + 1e-8))² (the code adds 1e-8 to the norms).
 *
 * Defaults λdir = 0.05, λnorm = 0.02. τ is passed per step (see `schedule.ts`). All terms are differentiable
 * w.r.t. p (h and the negatives are treated as constants: gradients w.r.t. h are not meaningful for training and
 * should not be requested). Intermediate tensors are not tidied: call inside `tf.variableGrads`/`tf.tidy`.
 */
import * as tf from "@tensorflow/tfjs"
import type { HardNegativeSelection, TeacherQueue } from "./queue.ts"

export type DirReduction = "mse" | "sum"

export interface StageALossConfig {
  readonly lambdaDir: number
  readonly lambdaNorm: number
  readonly dirReduction: DirReduction
}

export const defaultLossConfig: StageALossConfig = { lambdaDir: 0.05, lambdaNorm: 0.02, dirReduction: "mse" }

/**
 * Hard negatives for NCE(p→h): a shared pool [K, d] or a per-row pool [B, K, d]; unit rows, no gradient. `bias`
 * ([K] or [B, K]) is added to their logits: −1e9 removes a negative exactly (the device queue's exclusions).
 */
export type HardNegatives =
  | { readonly kind: "shared"; readonly vectors: tf.Tensor2D; readonly bias?: tf.Tensor1D }
  | { readonly kind: "per-row"; readonly vectors: tf.Tensor3D; readonly bias?: tf.Tensor2D }

/**
 * The hard-negative tensor of a queue selection (decoded fp16 rows, as stored): [k, d] for "shared-mean",
 * [rows, k, d] for "per-row"; null when k = 0 (an empty queue). Call before the queue's next `enqueue`.
 */
export const hardNegativesFromQueue = (queue: TeacherQueue, sel: HardNegativeSelection): HardNegatives | null => {
  if (sel.k === 0) return null
  const rows = queue.gather(sel.indices)
  return sel.rule === "shared-mean"
    ? { kind: "shared", vectors: tf.tensor2d(rows, [sel.k, queue.dim]) }
    : { kind: "per-row", vectors: tf.tensor3d(rows, [sel.rows, sel.k, queue.dim]) }
}

export interface StageALossInputs {
  /** p_F, the unnormalised projector output [B, d]. */
  readonly p: tf.Tensor2D
  /** h_E, the teacher vectors [B, d] (unnormalised). */
  readonly h: tf.Tensor2D
  /** Hard negatives from the queue; absent/null = in-batch negatives only (e.g. while the queue is empty). */
  readonly negatives?: HardNegatives | null
  /** Temperature τ of this step. */
  readonly tau: number
}

export interface StageALoss {
  readonly total: tf.Scalar
  /** ½[NCE(p→h) + NCE(h→p)]. */
  readonly nce: tf.Scalar
  readonly ncePH: tf.Scalar
  readonly nceHP: tf.Scalar
  readonly dir: tf.Scalar
  readonly norm: tf.Scalar
}

const NORMALIZE_EPS = 1e-12
const LOGNORM_EPS = 1e-8

/** ‖row‖ of each row of x [B, d] → [B, 1]. */
const rowNorm = (x: tf.Tensor2D): tf.Tensor2D => tf.sqrt(tf.sum(tf.square(x), -1, true)) as tf.Tensor2D

/** x / max(‖x‖, 1e-12) per row (PyTorch `F.normalize`). */
export const l2Normalize = (x: tf.Tensor2D): tf.Tensor2D =>
  tf.div(x, tf.maximum(rowNorm(x), NORMALIZE_EPS)) as tf.Tensor2D

/** mean over rows of logsumexp(logits_i) − positive_i. */
const crossEntropy = (logits: tf.Tensor2D, positive: tf.Tensor1D): tf.Scalar =>
  tf.mean(tf.sub(tf.logSumExp(logits, -1), positive)) as tf.Scalar

/**
 * NCE(p→h) on normalised inputs: in-batch teachers plus optional hard negatives in the denominator.
 * `pn`, `hn` [B, d] unit rows.
 */
export const ncePToH = (pn: tf.Tensor2D, hn: tf.Tensor2D, tau: number, negatives?: HardNegatives | null): tf.Scalar => {
  const inBatch = tf.div(tf.matMul(pn, hn, false, true), tau) as tf.Tensor2D // [B, B]
  const positive = tf.div(tf.sum(tf.mul(pn, hn), -1), tau) as tf.Tensor1D // the diagonal
  let logits: tf.Tensor2D = inBatch
  if (negatives !== undefined && negatives !== null) {
    const [b, d] = pn.shape
    let neg: tf.Tensor2D
    if (negatives.kind === "shared") {
      const [k, dn] = negatives.vectors.shape
      if (dn !== d) throw new Error(`stageALoss: negatives have dim ${dn}, expected ${d}`)
      if (k === 0) return crossEntropy(inBatch, positive)
      neg = tf.div(tf.matMul(pn, negatives.vectors, false, true), tau) as tf.Tensor2D // [B, K]
      if (negatives.bias !== undefined) neg = tf.add(neg, negatives.bias) as tf.Tensor2D
    } else {
      const [bn, k, dn] = negatives.vectors.shape
      if (bn !== b || dn !== d) {
        throw new Error(`stageALoss: per-row negatives have shape [${bn},${k},${dn}], expected [${b},K,${d}]`)
      }
      if (k === 0) return crossEntropy(inBatch, positive)
      // [B, 1, d] × [B, d, K] → [B, 1, K]
      const prod = tf.matMul(tf.reshape(pn, [b, 1, d]) as tf.Tensor3D, negatives.vectors, false, true)
      neg = tf.div(tf.reshape(prod, [b, k]), tau) as tf.Tensor2D
      if (negatives.bias !== undefined) neg = tf.add(neg, negatives.bias) as tf.Tensor2D
    }
    logits = tf.concat([inBatch, neg], 1)
  }
  return crossEntropy(logits, positive)
}

/** NCE(h→p) on normalised inputs: in-batch only. */
export const nceHToP = (pn: tf.Tensor2D, hn: tf.Tensor2D, tau: number): tf.Scalar => {
  const logits = tf.div(tf.matMul(hn, pn, false, true), tau) as tf.Tensor2D
  const positive = tf.div(tf.sum(tf.mul(pn, hn), -1), tau) as tf.Tensor1D
  return crossEntropy(logits, positive)
}

/** L_dir on normalised inputs (see the module doc for the two reductions). */
export const dirLoss = (pn: tf.Tensor2D, hn: tf.Tensor2D, reduction: DirReduction): tf.Scalar => {
  const sq = tf.square(tf.sub(pn, hn))
  return (reduction === "mse" ? tf.mean(sq) : tf.mean(tf.sum(sq, -1))) as tf.Scalar
}

/** L_norm on the unnormalised vectors: mean (log(‖p‖+1e-8) − log(‖h‖+1e-8))². */
export const logNormLoss = (p: tf.Tensor2D, h: tf.Tensor2D): tf.Scalar => {
  const lp = tf.log(tf.add(rowNorm(p), LOGNORM_EPS))
  const lh = tf.log(tf.add(rowNorm(h), LOGNORM_EPS))
  return tf.mean(tf.square(tf.sub(lp, lh))) as tf.Scalar
}

/** The full Stage A loss with each component (all scalars; differentiable w.r.t. `inputs.p`). */
export const stageALoss = (inputs: StageALossInputs, config: StageALossConfig = defaultLossConfig): StageALoss => {
  const { p, h, tau } = inputs
  if (p.shape[0] !== h.shape[0] || p.shape[1] !== h.shape[1]) {
    throw new Error(`stageALoss: p is [${p.shape.join(",")}] but h is [${h.shape.join(",")}]`)
  }
  if (!(tau > 0)) throw new Error(`stageALoss: temperature must be > 0, got ${tau}`)
  const pn = l2Normalize(p)
  const hn = l2Normalize(h)
  const ncePH = ncePToH(pn, hn, tau, inputs.negatives)
  const nceHP = nceHToP(pn, hn, tau)
  const nce = tf.mul(tf.add(ncePH, nceHP), 0.5) as tf.Scalar
  const dir = dirLoss(pn, hn, config.dirReduction)
  const norm = logNormLoss(p, h)
  const total = tf.addN([nce, tf.mul(dir, config.lambdaDir), tf.mul(norm, config.lambdaNorm)]) as tf.Scalar
  return { total, nce, ncePH, nceHP, dir, norm }
}
