/** Fused kernels with no stock counterpart (GELU, layer norm, SwiGLU, RMS norm), their gradients, used through
 *  `ops.ts`. */
import * as tf from "@tensorflow/tfjs"
import { allocFor } from "./backend.ts"
import { cpuOf, f32, out, single, type Cpu } from "./shared.ts"
import { C3, C4, C5, C6, C7, ERF_A1, ERF_A2, ERF_A3, ERF_A4, ERF_A5, ERF_P, LN2_HI, LN2_LO, LOG2E, POW2 } from "./unary.ts"

/** Kernel names of the fused ops; registered on `cpu-blas` only (other backends use composite ops). */
export const FUSED_KERNELS = {
  gelu: "LlinkGelu",
  geluGrad: "LlinkGeluGrad",
  layerNorm: "LlinkLayerNorm",
  layerNormGrad: "LlinkLayerNormGrad",
  swiglu: "LlinkSwiglu",
  swigluGrad: "LlinkSwigluGrad",
  rmsNorm: "LlinkRmsNorm",
  rmsNormGrad: "LlinkRmsNormGrad"
} as const

const INV_SQRT2 = Math.SQRT1_2
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI)

const need = (be: Cpu, t: tf.TensorInfo | undefined, what: string): Float32Array => {
  const v = f32(be, t)
  if (v === undefined) throw new Error(`${what}: expected a float32 tensor`)
  return v
}

/** GELU(x) = ½x(1 + erf(x/√2)), erf as in the Erf kernel. With `dy`, writes dGELU/dx · dy instead. */
const geluLoop = (X: Float32Array, o: Float32Array, DY: Float32Array | undefined): void => {
  for (let i = 0; i < X.length; i++) {
    const xi = X[i]
    const v = Math.abs(xi) * INV_SQRT2
    const t = 1.0 / (1.0 + ERF_P * v)
    let z = -v * v
    z = z < -104 ? -104 : z
    const k = Math.floor(z * LOG2E + 0.5)
    const r = z - k * LN2_HI - k * LN2_LO
    const e = (1 + r * (1 + r * (0.5 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))))) * POW2[(k | 0) + 150]
    const sign = +(xi > 0) - +(xi < 0)
    const erf = sign * (1.0 - ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t * e)
    if (DY === undefined) o[i] = 0.5 * xi * (1 + erf)
    else o[i] = DY[i] * (0.5 * (1 + erf) + xi * e * INV_SQRT_2PI)
  }
}

/** Row statistics of x viewed as [rows, d]: mean and 1/sqrt(biased variance + eps), two-pass in float64. */
const rowStats = (X: Float32Array, s: number, d: number, eps: number): readonly [number, number] => {
  let sum = 0
  for (let j = 0; j < d; j++) sum += X[s + j]
  const mean = sum / d
  let sq = 0
  for (let j = 0; j < d; j++) {
    const c = X[s + j] - mean
    sq += c * c
  }
  return [mean, 1 / Math.sqrt(sq / d + eps)]
}

/** 1/sqrt(mean(x²) + eps) of row [s, s + d), in float64. */
const rowRms = (X: Float32Array, s: number, d: number, eps: number): number => {
  let sq = 0
  for (let j = 0; j < d; j++) sq += X[s + j] * X[s + j]
  return 1 / Math.sqrt(sq / d + eps)
}

export const fusedKernels = (): Map<string, tf.KernelFunc> => {
  const k = new Map<string, tf.KernelFunc>()
  k.set(FUSED_KERNELS.swiglu, (args) => {
    const be = cpuOf(args.backend)
    const G = need(be, args.inputs.gate, "swiglu gate")
    const U = need(be, args.inputs.up, "swiglu up")
    if (G.length !== U.length) throw new Error("swiglu: gate and up must have one shape")
    const o = allocFor(be, G.length)
    for (let i = 0; i < G.length; i++) {
      const g = G[i]
      o[i] = (g / (1 + Math.exp(-g))) * U[i]
    }
    return out(be, [...(args.inputs.gate?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.swigluGrad, (args) => {
    const be = cpuOf(args.backend)
    const G = need(be, args.inputs.gate, "swigluGrad gate")
    const U = need(be, args.inputs.up, "swigluGrad up")
    const DY = need(be, args.inputs.dy, "swigluGrad dy")
    const dg = allocFor(be, G.length)
    const du = allocFor(be, G.length)
    for (let i = 0; i < G.length; i++) {
      const g = G[i]
      const sig = 1 / (1 + Math.exp(-g))
      const dy = DY[i]
      du[i] = dy * g * sig
      dg[i] = dy * U[i] * sig * (1 + g * (1 - sig))
    }
    const shape = [...(args.inputs.gate?.shape ?? [])]
    return [out(be, shape, dg), out(be, [...shape], du)]
  })
  k.set(FUSED_KERNELS.rmsNorm, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "rmsNorm x")
    const W = need(be, args.inputs.weight, "rmsNorm weight")
    const eps = typeof args.attrs?.epsilon === "number" ? args.attrs.epsilon : 1e-6
    const d = W.length
    if (d > 0 && X.length % d !== 0) throw new Error("rmsNorm: weight must match x's last dim")
    const o = allocFor(be, X.length)
    for (let s = 0; s < X.length; s += d) {
      const r = rowRms(X, s, d, eps)
      for (let j = 0; j < d; j++) o[s + j] = X[s + j] * r * W[j]
    }
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.rmsNormGrad, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const weight = args.inputs.weight
    const X = need(be, x, "rmsNormGrad x")
    const DY = need(be, args.inputs.dy, "rmsNormGrad dy")
    const W = need(be, weight, "rmsNormGrad weight")
    const eps = typeof args.attrs?.epsilon === "number" ? args.attrs.epsilon : 1e-6
    const d = W.length
    const dx = allocFor(be, X.length)
    const dw = new Float64Array(d)
    for (let s = 0; s < X.length; s += d) {
      const r = rowRms(X, s, d, eps)
      // y = x·r·w, r = (mean(x²) + eps)^(−½): dx = r·g − x·r³·mean(g·x) with g = dy·w; dw = Σ dy·x·r
      let sgx = 0
      for (let j = 0; j < d; j++) {
        const xj = X[s + j]
        sgx += DY[s + j] * W[j] * xj
        dw[j] += DY[s + j] * xj * r
      }
      const c = (r * r * r * sgx) / d
      for (let j = 0; j < d; j++) dx[s + j] = r * DY[s + j] * W[j] - X[s + j] * c
    }
    return [out(be, [...(x?.shape ?? [])], dx), out(be, [...(weight?.shape ?? [d])], Float32Array.from(dw))]
  })
  k.set(FUSED_KERNELS.gelu, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "gelu x")
    const o = allocFor(be, X.length)
    geluLoop(X, o, undefined)
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.geluGrad, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "geluGrad x")
    const DY = need(be, args.inputs.dy, "geluGrad dy")
    const o = allocFor(be, X.length)
    geluLoop(X, o, DY)
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.layerNorm, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const X = need(be, x, "layerNorm x")
    const G = need(be, args.inputs.gamma, "layerNorm gamma")
    const Bt = need(be, args.inputs.beta, "layerNorm beta")
    const eps = typeof args.attrs?.epsilon === "number" ? args.attrs.epsilon : 1e-5
    const d = G.length
    if (Bt.length !== d || (d > 0 && X.length % d !== 0)) throw new Error("layerNorm: gamma/beta must match x's last dim")
    const o = allocFor(be, X.length)
    for (let s = 0; s < X.length; s += d) {
      const [mean, rstd] = rowStats(X, s, d, eps)
      for (let j = 0; j < d; j++) o[s + j] = (X[s + j] - mean) * rstd * G[j] + Bt[j]
    }
    return out(be, [...(x?.shape ?? [])], o)
  })
  k.set(FUSED_KERNELS.layerNormGrad, (args) => {
    const be = cpuOf(args.backend)
    const x = args.inputs.x
    const gamma = args.inputs.gamma
    const X = need(be, x, "layerNormGrad x")
    const DY = need(be, args.inputs.dy, "layerNormGrad dy")
    const G = need(be, gamma, "layerNormGrad gamma")
    const eps = typeof args.attrs?.epsilon === "number" ? args.attrs.epsilon : 1e-5
    const d = G.length
    const dx = allocFor(be, X.length)
    const dg = new Float64Array(d)
    const db = new Float64Array(d)
    for (let s = 0; s < X.length; s += d) {
      const [mean, rstd] = rowStats(X, s, d, eps)
      // g = dy·gamma; dx = rstd·(g − mean(g) − x̂·mean(g·x̂))
      let sg = 0
      let sgx = 0
      for (let j = 0; j < d; j++) {
        const dyj = DY[s + j]
        const xh = (X[s + j] - mean) * rstd
        const g = dyj * G[j]
        sg += g
        sgx += g * xh
        dg[j] += dyj * xh
        db[j] += dyj
      }
      const mg = sg / d
      const mgx = sgx / d
      for (let j = 0; j < d; j++) {
        const xh = (X[s + j] - mean) * rstd
        dx[s + j] = rstd * (DY[s + j] * G[j] - mg - xh * mgx)
      }
    }
    const gShape = [...(gamma?.shape ?? [d])]
    return [
      out(be, [...(x?.shape ?? [])], dx),
      out(be, gShape, Float32Array.from(dg)),
      out(be, [...gShape], Float32Array.from(db))
    ]
  })
  return k
}

let gradientsRegistered = false
export const registerFusedGradients = (): void => {
  if (gradientsRegistered) return
  gradientsRegistered = true
  tf.registerGradient({
    kernelName: FUSED_KERNELS.gelu,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => {
      const [x] = saved
      return { x: () => tf.engine().runKernel<tf.Tensor>(FUSED_KERNELS.geluGrad, { dy: single(dy), x }) }
    }
  })
  tf.registerGradient({
    kernelName: FUSED_KERNELS.swiglu,
    inputsToSave: ["gate", "up"],
    gradFunc: (dy, saved) => {
      const [gate, up] = saved
      const [dgate, dup] = tf.engine().runKernel<Array<tf.Tensor>>(FUSED_KERNELS.swigluGrad, { dy: single(dy), gate, up })
      return { gate: () => dgate, up: () => dup }
    }
  })
  tf.registerGradient({
    kernelName: FUSED_KERNELS.rmsNorm,
    inputsToSave: ["x", "weight"],
    gradFunc: (dy, saved, attrs) => {
      const [x, weight] = saved
      const [dx, dweight] = tf.engine().runKernel<Array<tf.Tensor>>(FUSED_KERNELS.rmsNormGrad, { dy: single(dy), x, weight }, attrs)
      return { x: () => dx, weight: () => dweight }
    }
  })
  tf.registerGradient({
    kernelName: FUSED_KERNELS.layerNorm,
    inputsToSave: ["x", "gamma"],
    gradFunc: (dy, saved, attrs) => {
      const [x, gamma] = saved
      // One pass computes all three; the tape calls each thunk in its own tidy, so compute eagerly here.
      const [dx, dgamma, dbeta] = tf.engine().runKernel<Array<tf.Tensor>>(
        FUSED_KERNELS.layerNormGrad,
        { dy: single(dy), x, gamma },
        attrs
      )
      return { x: () => dx, gamma: () => dgamma, beta: () => dbeta }
    }
  })
}
