/**
 * Fused transformer ops with gradients: `gelu` (erf form), `layerNorm` over the last axis (XLM-R's), `swiglu` and
 * `rmsNorm` (Llama's).
 *
 * On `cpu-blas` each is one kernel forward and one kernel backward (instead of ~5 and ~20 element-wise kernels
 * when written with tf ops); on every other backend they are the same composite tf ops a model would write,
 * so results agree across backends (within float32 rounding). Both work inside `tf.grad`/`tf.variableGrads`.
 */
import * as tf from "@tensorflow/tfjs"
import { FUSED_KERNELS } from "./cpuBlas/fused.ts"

const fusedAvailable = (kernelName: string, ...xs: ReadonlyArray<tf.Tensor>): boolean =>
  xs.every((x) => x.dtype === "float32") && tf.getKernel(kernelName, tf.getBackend()) !== undefined

/** GELU with the exact (erf) form, as PyTorch's `nn.GELU()` default: ½·x·(1 + erf(x/√2)). */
export const gelu = <T extends tf.Tensor>(x: T): T => {
  if (fusedAvailable(FUSED_KERNELS.gelu, x)) return tf.engine().runKernel<T>(FUSED_KERNELS.gelu, { x })
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)))
}

/**
 * LayerNorm over the last axis with biased variance (PyTorch `nn.LayerNorm`): (x − mean)/√(var + eps)·γ + β.
 * `gamma`/`beta` have shape [d] (d = last dim of x); omit them for the non-affine form (γ = 1, β = 0, no
 * parameters to train).
 */
export const layerNorm = <T extends tf.Tensor>(
  x: T,
  gamma?: tf.Tensor,
  beta?: tf.Tensor,
  epsilon = 1e-5
): T => {
  const d = x.shape[x.rank - 1]
  if (x.rank === 0) throw new Error("layerNorm: x must have at least one axis")
  for (const [name, p] of [["gamma", gamma], ["beta", beta]] as const) {
    if (p !== undefined && (p.rank !== 1 || p.shape[0] !== d)) {
      throw new Error(`layerNorm: ${name} must have shape [${d}], got [${p.shape}]`)
    }
  }
  return tf.tidy(() => {
    const g = gamma ?? tf.ones([d])
    const b = beta ?? tf.zeros([d])
    if (fusedAvailable(FUSED_KERNELS.layerNorm, x, g, b)) {
      return tf.engine().runKernel<T>(FUSED_KERNELS.layerNorm, { x, gamma: g, beta: b }, { epsilon })
    }
    const { mean, variance } = tf.moments(x, -1, true)
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon))), g), b)
  })
}

/** SwiGLU's gating, silu(gate)·up = gate·σ(gate)·up (Llama's MLP), element-wise over one shape. */
export const swiglu = <T extends tf.Tensor>(gate: T, up: T): T => {
  if (fusedAvailable(FUSED_KERNELS.swiglu, gate, up) && gate.size === up.size) {
    return tf.engine().runKernel<T>(FUSED_KERNELS.swiglu, { gate, up })
  }
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up))
}

/** RMSNorm over the last axis (Llama's): x / √(mean(x²) + eps) · w, with `weight` of shape [d]. */
export const rmsNorm = <T extends tf.Tensor>(x: T, weight: tf.Tensor, epsilon: number): T => {
  const d = x.shape[x.rank - 1]
  if (weight.rank !== 1 || weight.shape[0] !== d) throw new Error(`rmsNorm: weight must have shape [${d}], got [${weight.shape}]`)
  if (fusedAvailable(FUSED_KERNELS.rmsNorm, x, weight)) return tf.engine().runKernel<T>(FUSED_KERNELS.rmsNorm, { x, weight }, { epsilon })
  return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), epsilon))), weight))
}

/** Inputs per AddN on a device backend: a WebGPU kernel binds every input as a storage buffer, and adapters allow as
 *  few as 8 per shader stage (inputs + output). */
const ADDN_CHUNK = 6

/**
 * Σ xs (same shapes). `tf.addN` on the host backends (one kernel, the exact arithmetic llink's CPU runs always had);
 * on a device backend in chunks, since one AddN over more inputs than the adapter can bind is an invalid WebGPU
 * pipeline (a validation error, not an exception).
 */
export const sumAll = <T extends tf.Tensor>(xs: ReadonlyArray<T>): T => {
  if (xs.length === 0) throw new Error("sumAll: no tensors")
  if (xs.length <= ADDN_CHUNK || ["cpu", "cpu-blas", "wasm"].includes(tf.getBackend())) return tf.addN([...xs])
  return tf.tidy(() => {
    let level: Array<T> = [...xs]
    while (level.length > 1) {
      const next: Array<T> = []
      for (let i = 0; i < level.length; i += ADDN_CHUNK) {
        const chunk = level.slice(i, i + ADDN_CHUNK)
        next.push(chunk.length === 1 ? chunk[0] : tf.addN(chunk))
      }
      level = next
    }
    return level[0]
  })
}
