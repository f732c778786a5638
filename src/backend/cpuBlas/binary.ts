/** Binary element-wise kernels: broadcast patterns and the tight loops (Add, Sub, Mul, Div, SquaredDifference, Pow). */
import * as tf from "@tensorflow/tfjs"
import { sizeOf } from "./shared.ts"

/** How an operand maps onto the output, flattened: `same` (x[i]), `row` (x[i % p], x repeats every p
 *  elements: its non-1 dims are a suffix of the output's), `col` (x[floor(i / p)], each element repeats p
 *  times: its non-1 dims are a prefix), or `other`. A scalar is `col` with p = output size. */
type Pattern =
  | { readonly kind: "same" }
  | { readonly kind: "row"; readonly p: number }
  | { readonly kind: "col"; readonly p: number }
  | { readonly kind: "other" }

export const classify = (xShape: ReadonlyArray<number>, outShape: ReadonlyArray<number>): Pattern => {
  const r = outShape.length
  const outSize = sizeOf(outShape)
  const xSize = sizeOf(xShape)
  if (xSize === outSize) return { kind: "same" }
  if (xSize === 1) return { kind: "col", p: outSize }
  const px = [...Array(r - xShape.length).fill(1), ...xShape]
  // suffix: x[d] = 1 for d < s, x[d] = out[d] for d >= s
  let s = r
  while (s > 0 && px[s - 1] === outShape[s - 1]) s--
  let ok = true
  for (let d = 0; d < s; d++) if (px[d] !== 1) ok = false
  if (ok) return { kind: "row", p: xSize }
  // prefix: x[d] = out[d] for d < e, x[d] = 1 for d >= e
  let e = 0
  while (e < r && px[e] === outShape[e]) e++
  ok = true
  for (let d = e; d < r; d++) if (px[d] !== 1) ok = false
  if (ok) return { kind: "col", p: outSize / xSize }
  return { kind: "other" }
}

/** Loop shapes: SS both same; SR a same, b row; SC a same, b col; RS a row, b same; CS a col, b same. */
const SS = 0
const SR = 1
const SC = 2
const RS = 3
const CS = 4

export type BinaryLoop = (a: Float32Array, b: Float32Array, o: Float32Array, mode: number, p: number) => void

// One hand-written loop set per op, so every inner loop is monomorphic and inlined.
export const addLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] + b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] + b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] + b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] + v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v + b[s + j]
    }
}
export const subLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] - b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] - b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] - b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] - v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v - b[s + j]
    }
}
export const mulLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] * b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] * b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] * b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] * v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v * b[s + j]
    }
}
export const divLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS) for (let i = 0; i < n; i++) o[i] = a[i] / b[i]
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[s + j] / b[j]
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = a[j] / b[s + j]
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = a[s + j] / v
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = v / b[s + j]
    }
}
export const sqDiffLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SS)
    for (let i = 0; i < n; i++) {
      const d = a[i] - b[i]
      o[i] = d * d
    }
  else if (mode === SR)
    for (let s = 0; s < n; s += p)
      for (let j = 0; j < p; j++) {
        const d = a[s + j] - b[j]
        o[s + j] = d * d
      }
  else if (mode === RS)
    for (let s = 0; s < n; s += p)
      for (let j = 0; j < p; j++) {
        const d = a[j] - b[s + j]
        o[s + j] = d * d
      }
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) {
        const d = a[s + j] - v
        o[s + j] = d * d
      }
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) {
        const d = v - b[s + j]
        o[s + j] = d * d
      }
    }
}

export const powLoop: BinaryLoop = (a, b, o, mode, p) => {
  const n = o.length
  if (mode === SC && p === n && (b[0] === 0 || b[0] === 1 || b[0] === 2 || b[0] === 3 || b[0] === -1)) {
    // Scalar small-integer exponents (norms and their gradients): Math.pow is ~10× slower than a product.
    const e = b[0]
    if (e === 0) o.fill(1)
    else if (e === 1) o.set(a)
    else if (e === 2) for (let i = 0; i < n; i++) o[i] = a[i] * a[i]
    else if (e === 3) for (let i = 0; i < n; i++) o[i] = a[i] * a[i] * a[i]
    else for (let i = 0; i < n; i++) o[i] = 1 / a[i]
  } else if (mode === SS) for (let i = 0; i < n; i++) o[i] = Math.pow(a[i], b[i])
  else if (mode === SR) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = Math.pow(a[s + j], b[j])
  else if (mode === RS) for (let s = 0; s < n; s += p) for (let j = 0; j < p; j++) o[s + j] = Math.pow(a[j], b[s + j])
  else if (mode === SC)
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = b[r]
      for (let j = 0; j < p; j++) o[s + j] = Math.pow(a[s + j], v)
    }
  else
    for (let r = 0, s = 0; s < n; r++, s += p) {
      const v = a[r]
      for (let j = 0; j < p; j++) o[s + j] = Math.pow(v, b[s + j])
    }
}

/** Run a binary loop for the given shapes, or return undefined when the broadcast is not a fast pattern. */
export const binary = (
  alloc: (n: number) => Float32Array,
  loop: BinaryLoop,
  aShape: ReadonlyArray<number>,
  bShape: ReadonlyArray<number>,
  A: Float32Array,
  B: Float32Array
): { shape: Array<number>; values: Float32Array } | undefined => {
  const shape = tf.broadcast_util.assertAndGetBroadcastShape([...aShape], [...bShape])
  const n = sizeOf(shape)
  const o = alloc(n)
  if (n === 0) return { shape, values: o }
  const pa = classify(aShape, shape)
  const pb = classify(bShape, shape)
  if (pa.kind === "same") {
    if (pb.kind === "same") loop(A, B, o, SS, n)
    else if (pb.kind === "row") loop(A, B, o, SR, pb.p)
    else if (pb.kind === "col") loop(A, B, o, SC, pb.p)
    else return broadcastBlocks(loop, aShape, bShape, shape, A, B, o) ? { shape, values: o } : undefined
  } else if (pb.kind === "same") {
    if (pa.kind === "row") loop(A, B, o, RS, pa.p)
    else if (pa.kind === "col") loop(A, B, o, CS, pa.p)
    else return broadcastBlocks(loop, aShape, bShape, shape, A, B, o) ? { shape, values: o } : undefined
  } else return broadcastBlocks(loop, aShape, bShape, shape, A, B, o) ? { shape, values: o } : undefined
  return { shape, values: o }
}

/** An operand's pattern over the trailing block of merged dims [k, r): which mode letter and period it has. */
const blockPattern = (
  bcast: ReadonlyArray<boolean>,
  dims: ReadonlyArray<number>,
  k: number
): { readonly kind: "same" | "row" | "col"; readonly p: number } | undefined => {
  const r = dims.length
  // same: nothing broadcast; row: broadcast dims then kept dims; col: kept dims then broadcast dims.
  let j = k
  while (j < r && bcast[j]) j++
  let i = j
  while (i < r && !bcast[i]) i++
  if (i === r) {
    if (j === k) return { kind: "same", p: 0 }
    let p = 1
    for (let d = j; d < r; d++) p *= dims[d]
    return { kind: "row", p }
  }
  if (j !== k) return undefined
  let m = i
  while (m < r && bcast[m]) m++
  if (m !== r) return undefined
  let p = 1
  for (let d = i; d < r; d++) p *= dims[d]
  return { kind: "col", p }
}

/**
 * General N-d broadcasting for a binary loop: squeeze the output's size-1 dims, merge adjacent dims on which both
 * operands behave alike (both kept or both broadcast), then pick the largest trailing block over which the
 * operands form a pattern the loops handle (same/row/col on one side, same on the other, or a scalar) and run
 * the loop once per block with an odometer over the leading dims. False when no pattern fits (never expected:
 * a single trailing dim always fits).
 */
const broadcastBlocks = (
  loop: BinaryLoop,
  aShape: ReadonlyArray<number>,
  bShape: ReadonlyArray<number>,
  outShape: ReadonlyArray<number>,
  A: Float32Array,
  B: Float32Array,
  o: Float32Array
): boolean => {
  const r0 = outShape.length
  const pa = [...Array(r0 - aShape.length).fill(1), ...aShape]
  const pb = [...Array(r0 - bShape.length).fill(1), ...bShape]
  // Squeeze and merge.
  const dims: Array<number> = []
  const ab: Array<boolean> = []
  const bb: Array<boolean> = []
  for (let d = 0; d < r0; d++) {
    const n = outShape[d]
    if (n === 1) continue
    const xa = pa[d] === 1
    const xb = pb[d] === 1
    const last = dims.length - 1
    if (last >= 0 && ab[last] === xa && bb[last] === xb) dims[last] *= n
    else {
      dims.push(n)
      ab.push(xa)
      bb.push(xb)
    }
  }
  const r = dims.length
  if (r === 0) {
    loop(A, B, o, SS, 1)
    return true
  }
  // Element strides of each operand over the merged dims (0 where broadcast).
  const sa = new Array<number>(r).fill(0)
  const sb = new Array<number>(r).fill(0)
  let accA = 1
  let accB = 1
  for (let d = r - 1; d >= 0; d--) {
    if (!ab[d]) {
      sa[d] = accA
      accA *= dims[d]
    }
    if (!bb[d]) {
      sb[d] = accB
      accB *= dims[d]
    }
  }
  for (let k = 0; k < r; k++) {
    const xa = blockPattern(ab, dims, k)
    const xb = blockPattern(bb, dims, k)
    if (xa === undefined || xb === undefined) continue
    let mode: number
    let p: number
    if (xa.kind === "same" && xb.kind === "same") [mode, p] = [SS, 0]
    else if (xa.kind === "same" && xb.kind === "row") [mode, p] = [SR, xb.p]
    else if (xa.kind === "same" && xb.kind === "col") [mode, p] = [SC, xb.p]
    else if (xa.kind === "row" && xb.kind === "same") [mode, p] = [RS, xa.p]
    else if (xa.kind === "col" && xb.kind === "same") [mode, p] = [CS, xa.p]
    else continue
    let block = 1
    let lenA = 1
    let lenB = 1
    for (let d = k; d < r; d++) {
      block *= dims[d]
      if (!ab[d]) lenA *= dims[d]
      if (!bb[d]) lenB *= dims[d]
    }
    if (mode === SS) p = block
    if (k === 0) {
      loop(A, B, o, mode, p)
      return true
    }
    const outer = o.length / block
    const loc = new Array<number>(k).fill(0)
    let oa = 0
    let ob = 0
    for (let i = 0; i < outer; i++) {
      const os = i * block
      loop(A.subarray(oa, oa + lenA), B.subarray(ob, ob + lenB), o.subarray(os, os + block), mode, p)
      for (let d = k - 1; d >= 0; d--) {
        if (++loc[d] < dims[d]) {
          oa += sa[d]
          ob += sb[d]
          break
        }
        oa -= (dims[d] - 1) * sa[d]
        ob -= (dims[d] - 1) * sb[d]
        loc[d] = 0
      }
    }
    return true
  }
  return false
}
