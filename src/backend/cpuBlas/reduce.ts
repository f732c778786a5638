/** Reductions over one contiguous block of axes (x viewed as [outer, R, inner]), accumulating in float64. */
import { sizeOf } from "./shared.ts"

export type ReduceKind = "sum" | "mean" | "max" | "min"

export const reduce = (
  alloc: (n: number) => Float32Array,
  kind: ReduceKind,
  shape: ReadonlyArray<number>,
  X: Float32Array,
  axes: ReadonlyArray<number>,
  keepDims: boolean
): { shape: Array<number>; values: Float32Array } | undefined => {
  const rank = shape.length
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[0] + i) return undefined
  const outShape: Array<number> = []
  for (let d = 0; d < rank; d++) {
    if (!axes.includes(d)) outShape.push(shape[d])
    else if (keepDims) outShape.push(1)
  }
  if (axes.length === 0) return { shape: outShape, values: X.slice() }
  const first = axes[0]
  const last = axes[axes.length - 1]
  const outer = sizeOf(shape.slice(0, first))
  const R = sizeOf(shape.slice(first, last + 1))
  const inner = sizeOf(shape.slice(last + 1))
  const o = alloc(outer * inner)
  if (o.length === 0) return { shape: outShape, values: o }
  if (R === 0) {
    o.fill(kind === "max" ? -Infinity : kind === "min" ? Infinity : kind === "mean" ? NaN : 0)
    return { shape: outShape, values: o }
  }
  if (inner === 1) {
    for (let r = 0; r < outer; r++) {
      const s = r * R
      if (kind === "sum" || kind === "mean") {
        let acc = 0
        for (let j = 0; j < R; j++) acc += X[s + j]
        o[r] = kind === "mean" ? acc / R : acc
      } else if (kind === "max") {
        let m = X[s]
        for (let j = 0; j < R; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v > m) m = v
        }
        o[r] = m
      } else {
        let m = X[s]
        for (let j = 0; j < R; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v < m) m = v
        }
        o[r] = m
      }
    }
    return { shape: outShape, values: o }
  }
  const acc = new Float64Array(inner)
  for (let r = 0; r < outer; r++) {
    const base = r * R * inner
    acc.set(X.subarray(base, base + inner))
    for (let q = 1; q < R; q++) {
      const s = base + q * inner
      if (kind === "sum" || kind === "mean") for (let j = 0; j < inner; j++) acc[j] += X[s + j]
      else if (kind === "max")
        for (let j = 0; j < inner; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v > acc[j]) acc[j] = v
        }
      else
        for (let j = 0; j < inner; j++) {
          const v = X[s + j]
          if (Number.isNaN(v) || v < acc[j]) acc[j] = v
        }
    }
    const ob = r * inner
    if (kind === "mean") for (let j = 0; j < inner; j++) o[ob + j] = acc[j] / R
    else for (let j = 0; j < inner; j++) o[ob + j] = acc[j]
  }
  return { shape: outShape, values: o }
}
