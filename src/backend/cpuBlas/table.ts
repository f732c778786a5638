/** The kernel table: which stock kernels cpu-blas replaces, with per-call fallbacks, counts and optional timing. */
import * as tf from "@tensorflow/tfjs"
import type { Blas } from "../blas.ts"
import { allocFor } from "./backend.ts"
import { addLoop, binary, classify, divLoop, mulLoop, powLoop, sqDiffLoop, subLoop, type BinaryLoop } from "./binary.ts"
import { layoutKernels } from "./dataMovement.ts"
import { planGemm } from "./matmul.ts"
import { reduce, type ReduceKind } from "./reduce.ts"
import { boolAttr, cpuOf, f32, hit, out, parseAxes, sizeOf, type KernelArgs, type KernelResult } from "./shared.ts"
import { transposeValues } from "./transpose.ts"
import { unaryLoops } from "./unary.ts"

const activate = (
  o: Float32Array,
  activation: string,
  leakyAlpha: number
): boolean => {
  const n = o.length
  switch (activation) {
    case "linear":
      return true
    case "relu":
      for (let i = 0; i < n; i++) o[i] = Math.max(0, o[i])
      return true
    case "relu6":
      for (let i = 0; i < n; i++) o[i] = Math.min(Math.max(0, o[i]), 6)
      return true
    case "elu":
      for (let i = 0; i < n; i++) {
        const v = o[i]
        o[i] = v >= 0 ? v : Math.exp(v) - 1
      }
      return true
    case "leakyrelu":
      for (let i = 0; i < n; i++) {
        const v = o[i]
        o[i] = v < 0 ? leakyAlpha * v : v
      }
      return true
    case "sigmoid":
      for (let i = 0; i < n; i++) o[i] = 1 / (1 + Math.exp(-o[i]))
      return true
    default:
      return false
  }
}

/** Kernel names this backend replaces (all other kernels are the stock CPU ones). */
export const REPLACED_KERNELS: ReadonlyArray<string> = [
  "BatchMatMul",
  "_FusedMatMul",
  "Add",
  "Sub",
  "Multiply",
  "RealDiv",
  "SquaredDifference",
  "Pow",
  ...unaryLoops.map(([name]) => name),
  "Sum",
  "Mean",
  "Max",
  "Min",
  "Softmax",
  "Transpose",
  "Slice",
  "StridedSlice",
  "PadV2",
  "Concat",
  "SplitV",
  "GatherV2",
  "UnsortedSegmentSum"
]

/**
 * Opt-in wall-clock time per kernel on `cpu-blas` (set `kernelTiming.enabled = true`, read `kernelTiming.byKernel`).
 * Unlike `tf.profile`, it does not read every output back (which would defeat the buffer pool).
 */
export const kernelTiming: { enabled: boolean; byKernel: Record<string, { calls: number; ms: number }> } = {
  enabled: false,
  byKernel: {}
}
export const timed = (name: string, f: tf.KernelFunc): tf.KernelFunc => (args) => {
  if (!kernelTiming.enabled) return f(args)
  const t0 = performance.now()
  const r = f(args)
  const s = (kernelTiming.byKernel[name] ??= { calls: 0, ms: 0 })
  s.calls++
  s.ms += performance.now() - t0
  return r
}

export const makeKernels = (blas: Blas, stock: (name: string) => tf.KernelFunc): Map<string, tf.KernelFunc> => {
  const k = new Map<string, tf.KernelFunc>()
  const fallback = (name: string, args: KernelArgs): KernelResult => {
    hit(name, false)
    return stock(name)(args)
  }

  k.set("BatchMatMul", (args) => {
    const be = cpuOf(args.backend)
    const { a, b } = args.inputs
    const A = f32(be, a)
    const B = f32(be, b)
    if (a === undefined || b === undefined || A === undefined || B === undefined) return fallback("BatchMatMul", args)
    const plan = planGemm(a.shape, b.shape, boolAttr(args, "transposeA"), boolAttr(args, "transposeB"))
    const C = allocFor(be, sizeOf(plan.outShape))
    plan.run(blas, A, B, C, 0)
    hit("BatchMatMul", true)
    return out(be, plan.outShape, C)
  })

  k.set("_FusedMatMul", (args) => {
    const be = cpuOf(args.backend)
    const { a, b, bias, preluActivationWeights } = args.inputs
    const A = f32(be, a)
    const B = f32(be, b)
    const activation = typeof args.attrs?.activation === "string" ? args.attrs.activation : "linear"
    const leaky = typeof args.attrs?.leakyreluAlpha === "number" ? args.attrs.leakyreluAlpha : 0.2
    if (a === undefined || b === undefined || A === undefined || B === undefined) return fallback("_FusedMatMul", args)
    if (preluActivationWeights !== undefined || activation === "prelu") return fallback("_FusedMatMul", args)
    const Bias = bias === undefined ? undefined : f32(be, bias)
    if (bias !== undefined && Bias === undefined) return fallback("_FusedMatMul", args)
    const plan = planGemm(a.shape, b.shape, boolAttr(args, "transposeA"), boolAttr(args, "transposeB"))
    const C = allocFor(be, sizeOf(plan.outShape))
    let beta = 0
    if (bias !== undefined && Bias !== undefined && C.length > 0) {
      const shape = tf.broadcast_util.assertAndGetBroadcastShape(plan.outShape, [...bias.shape])
      if (sizeOf(shape) !== C.length) return fallback("_FusedMatMul", args)
      const pat = classify(bias.shape, plan.outShape)
      if (pat.kind === "same") C.set(Bias)
      else if (pat.kind === "row") for (let s = 0; s < C.length; s += pat.p) C.set(Bias, s)
      else if (pat.kind === "col") for (let r = 0, s = 0; s < C.length; r++, s += pat.p) C.fill(Bias[r], s, s + pat.p)
      else return fallback("_FusedMatMul", args)
      beta = 1
    }
    plan.run(blas, A, B, C, beta)
    if (!activate(C, activation, leaky)) return fallback("_FusedMatMul", args)
    hit("_FusedMatMul", true)
    return out(be, plan.outShape, C)
  })

  const binaries: ReadonlyArray<readonly [string, BinaryLoop]> = [
    ["Add", addLoop],
    ["Sub", subLoop],
    ["Multiply", mulLoop],
    ["RealDiv", divLoop],
    ["SquaredDifference", sqDiffLoop],
    ["Pow", powLoop]
  ]
  for (const [name, loop] of binaries) {
    k.set(name, (args) => {
      const be = cpuOf(args.backend)
      const { a, b } = args.inputs
      const A = f32(be, a)
      const B = f32(be, b)
      if (a === undefined || b === undefined || A === undefined || B === undefined) return fallback(name, args)
      const r = binary((n) => allocFor(be, n), loop, a.shape, b.shape, A, B)
      if (r === undefined) return fallback(name, args)
      hit(name, true)
      return out(be, r.shape, r.values)
    })
  }

  for (const [name, loop] of unaryLoops) {
    k.set(name, (args) => {
      const be = cpuOf(args.backend)
      const { x } = args.inputs
      const X = f32(be, x)
      if (x === undefined || X === undefined) return fallback(name, args)
      const o = allocFor(be, X.length)
      loop(X, o, args.attrs)
      hit(name, true)
      return out(be, [...x.shape], o)
    })
  }

  const reductions: ReadonlyArray<readonly [string, ReduceKind, string]> = [
    ["Sum", "sum", "axis"],
    ["Mean", "mean", "axis"],
    ["Max", "max", "reductionIndices"],
    ["Min", "min", "axis"]
  ]
  for (const [name, kind, axisAttr] of reductions) {
    k.set(name, (args) => {
      const be = cpuOf(args.backend)
      const { x } = args.inputs
      const X = f32(be, x)
      if (x === undefined || X === undefined) return fallback(name, args)
      const axes = parseAxes(args.attrs?.[axisAttr], x.shape.length)
      if (axes === undefined) return fallback(name, args)
      const r = reduce((n) => allocFor(be, n), kind, x.shape, X, axes, boolAttr(args, "keepDims"))
      if (r === undefined) return fallback(name, args)
      hit(name, true)
      return out(be, r.shape, r.values)
    })
  }

  k.set("Softmax", (args) => {
    const be = cpuOf(args.backend)
    const { logits } = args.inputs
    const X = f32(be, logits)
    const dim = args.attrs?.dim
    if (logits === undefined || X === undefined) return fallback("Softmax", args)
    const rank = logits.shape.length
    if (rank === 0 || (dim !== -1 && dim !== rank - 1)) return fallback("Softmax", args)
    const n = logits.shape[rank - 1]
    const o = allocFor(be, X.length)
    for (let s = 0; s < X.length; s += n) {
      let m = X[s]
      for (let j = 1; j < n; j++) if (X[s + j] > m || Number.isNaN(X[s + j])) m = X[s + j]
      let sum = 0
      for (let j = 0; j < n; j++) {
        const e = Math.exp(X[s + j] - m)
        o[s + j] = e
        sum += Math.fround(e)
      }
      for (let j = 0; j < n; j++) o[s + j] = o[s + j] / sum
    }
    hit("Softmax", true)
    return out(be, [...logits.shape], o)
  })

  k.set("Transpose", (args) => {
    const be = cpuOf(args.backend)
    const { x } = args.inputs
    const perm = args.attrs?.perm
    if (x === undefined || !Array.isArray(perm) || perm.length !== x.shape.length) return fallback("Transpose", args)
    const axes: Array<number> = []
    for (const a of perm) if (typeof a === "number") axes.push(a)
    if (axes.length !== perm.length) return fallback("Transpose", args)
    const X = be.data.get(x.dataId).values
    if (!(X instanceof Float32Array || X instanceof Int32Array) || (x.dtype !== "float32" && x.dtype !== "int32")) {
      return fallback("Transpose", args)
    }
    const shape = axes.map((a) => x.shape[a])
    const O = X instanceof Float32Array ? allocFor(be, X.length) : new Int32Array(X.length)
    if (!transposeValues(X, x.shape, axes, O)) return fallback("Transpose", args)
    hit("Transpose", true)
    return be.makeTensorInfo(shape, x.dtype, O)
  })

  layoutKernels(k, fallback, stock)
  return k
}
