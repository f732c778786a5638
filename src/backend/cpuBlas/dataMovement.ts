/** Data-movement kernels: strided copies (Slice, StridedSlice, PadV2, Concat, SplitV), GatherV2, UnsortedSegmentSum. */
import * as tf from "@tensorflow/tfjs"
import { concatInto, copyBox, gatherInto, segmentSumInto, sliceInto, splitFrom } from "../copy.ts"
import { allocFor } from "./backend.ts"
import { cpuOf, f32, hit, out, sizeOf, type KernelArgs, type KernelResult } from "./shared.ts"

// UnsortedSegmentSum. Contiguous slices and splits stay zero-copy views (the stock kernels already do that).

const nums = (v: unknown): Array<number> | undefined => {
  if (!Array.isArray(v)) return undefined
  const r: Array<number> = []
  for (const x of v) {
    if (typeof x !== "number") return undefined
    r.push(x)
  }
  return r
}
const numAttr = (args: KernelArgs, name: string, dflt: number): number => {
  const v = args.attrs?.[name]
  return typeof v === "number" ? v : dflt
}
const allInRange = (idx: ArrayLike<number>, n: number): boolean => {
  for (let i = 0; i < idx.length; i++) if (!(idx[i] >= 0 && idx[i] < n)) return false
  return true
}

export const layoutKernels = (
  k: Map<string, tf.KernelFunc>,
  fallback: (name: string, args: KernelArgs) => KernelResult,
  stock: (name: string) => tf.KernelFunc
): void => {
  /** The stock kernel for cases it already does as well (zero-copy views); counted as fast. */
  const viewOf = (name: string, args: KernelArgs): KernelResult => {
    hit(name, true)
    return stock(name)(args)
  }

  /** Slice x[begin : begin + size] into a fresh buffer, or the stock zero-copy view when contiguous. */
  const sliceFast = (
    name: string,
    args: KernelArgs,
    x: tf.TensorInfo,
    begin: Array<number>,
    size: Array<number>,
    outShape: Array<number>
  ): KernelResult => {
    const be = cpuOf(args.backend)
    const X = f32(be, x)
    if (X === undefined) return fallback(name, args)
    const o = allocFor(be, sizeOf(size))
    sliceInto(X, x.shape, begin, size, o)
    hit(name, true)
    return out(be, outShape, o)
  }

  k.set("Slice", (args) => {
    const { x } = args.inputs
    const rawBegin = args.attrs?.begin
    const rawSize = args.attrs?.size
    if (x === undefined || x.dtype !== "float32") return fallback("Slice", args)
    const begin = typeof rawBegin === "number" ? rawBegin : nums(rawBegin)
    const size = rawSize === undefined || typeof rawSize === "number" ? rawSize : nums(rawSize)
    if (begin === undefined) return fallback("Slice", args)
    const [b, z] = tf.slice_util.parseSliceParams(x, begin, size)
    tf.slice_util.assertParamsValid(x, b, z)
    if (tf.slice_util.isSliceContinous(x.shape, b, z)) return viewOf("Slice", args)
    return sliceFast("Slice", args, x, b, z, z)
  })

  k.set("StridedSlice", (args) => {
    const { x } = args.inputs
    const begin = nums(args.attrs?.begin)
    const end = nums(args.attrs?.end)
    const strides = nums(args.attrs?.strides)
    if (x === undefined || x.dtype !== "float32" || begin === undefined || end === undefined || strides === undefined) {
      return fallback("StridedSlice", args)
    }
    const info = tf.slice_util.sliceInfo(
      x.shape,
      begin,
      end,
      strides,
      numAttr(args, "beginMask", 0),
      numAttr(args, "endMask", 0),
      numAttr(args, "ellipsisMask", 0),
      numAttr(args, "newAxisMask", 0),
      numAttr(args, "shrinkAxisMask", 0)
    )
    if (info.isIdentity || !info.isSimpleSlice || info.begin.length !== x.shape.length) {
      return fallback("StridedSlice", args)
    }
    const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides)
    if (size.some((d, i) => d < 0 || info.begin[i] < 0 || info.begin[i] + d > x.shape[i])) {
      return fallback("StridedSlice", args)
    }
    if (sizeOf(size) !== sizeOf(info.finalShape)) return fallback("StridedSlice", args)
    if (tf.slice_util.isSliceContinous(x.shape, info.begin, size)) return viewOf("StridedSlice", args)
    return sliceFast("StridedSlice", args, x, info.begin, size, info.finalShape)
  })

  k.set("PadV2", (args) => {
    const be = cpuOf(args.backend)
    const { x } = args.inputs
    const X = f32(be, x)
    const raw = args.attrs?.paddings
    const value = numAttr(args, "constantValue", 0)
    if (x === undefined || X === undefined || !Array.isArray(raw) || raw.length !== x.shape.length) {
      return fallback("PadV2", args)
    }
    const before: Array<number> = []
    const outShape: Array<number> = []
    for (let d = 0; d < raw.length; d++) {
      const p = nums(raw[d])
      if (p === undefined || p.length !== 2 || p[0] < 0 || p[1] < 0) return fallback("PadV2", args)
      before.push(p[0])
      outShape.push(p[0] + x.shape[d] + p[1])
    }
    const o = allocFor(be, sizeOf(outShape))
    o.fill(value)
    copyBox(X, x.shape, new Array<number>(x.shape.length).fill(0), o, outShape, before, x.shape)
    hit("PadV2", true)
    return out(be, outShape, o)
  })

  k.set("Concat", (args) => {
    const be = cpuOf(args.backend)
    const list: Array<tf.TensorInfo> = []
    for (const t of Object.values(args.inputs)) if (t !== undefined) list.push(t)
    if (list.length === 0 || list[0].shape.length === 0) return fallback("Concat", args)
    const parts: Array<{ values: Float32Array; shape: Array<number> }> = []
    for (const t of list) {
      const v = f32(be, t)
      if (v === undefined) return fallback("Concat", args)
      parts.push({ values: v, shape: [...t.shape] })
    }
    const axis = tf.util.parseAxisParam(numAttr(args, "axis", 0), list[0].shape)[0]
    const shapes = parts.map((p) => p.shape)
    tf.backend_util.assertParamsConsistent(shapes, axis)
    const outShape = tf.backend_util.computeOutShape(shapes, axis)
    const o = allocFor(be, sizeOf(outShape))
    concatInto(parts, axis, o)
    hit("Concat", true)
    return out(be, outShape, o)
  })

  k.set("SplitV", (args) => {
    const be = cpuOf(args.backend)
    const { x } = args.inputs
    const raw = args.attrs?.numOrSizeSplits
    const splits = typeof raw === "number" ? raw : nums(raw)
    if (x === undefined || x.dtype !== "float32" || splits === undefined || x.shape.length === 0) {
      return fallback("SplitV", args)
    }
    const axis = tf.util.parseAxisParam(numAttr(args, "axis", 0), x.shape)[0]
    const sizes = tf.backend_util.prepareSplitSize(x, splits, axis)
    const outer = sizeOf(x.shape.slice(0, axis))
    // With one row the pieces are contiguous: the stock kernel returns views.
    if (outer <= 1) return viewOf("SplitV", args)
    const X = f32(be, x)
    if (X === undefined) return fallback("SplitV", args)
    const inner = sizeOf(x.shape.slice(axis + 1))
    const outs = sizes.map((s) => allocFor(be, outer * s * inner))
    splitFrom(X, outer, outs)
    hit("SplitV", true)
    return outs.map((o, i) => {
      const shape = [...x.shape]
      shape[axis] = sizes[i]
      return out(be, shape, o)
    })
  })

  k.set("GatherV2", (args) => {
    const be = cpuOf(args.backend)
    const { x, indices } = args.inputs
    const X = f32(be, x)
    if (x === undefined || indices === undefined || X === undefined || numAttr(args, "batchDims", 0) !== 0) {
      return fallback("GatherV2", args)
    }
    const idx = be.data.get(indices.dataId).values
    if (!(idx instanceof Int32Array) || x.shape.length === 0) return fallback("GatherV2", args)
    const axis = tf.util.parseAxisParam(numAttr(args, "axis", 0), x.shape)[0]
    const dim = x.shape[axis]
    // Out-of-range indices: the stock kernel raises the error.
    if (!allInRange(idx, dim)) return fallback("GatherV2", args)
    const outer = sizeOf(x.shape.slice(0, axis))
    const inner = sizeOf(x.shape.slice(axis + 1))
    const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)]
    const o = allocFor(be, sizeOf(outShape))
    gatherInto(X, outer, dim, inner, idx, o)
    hit("GatherV2", true)
    return out(be, outShape, o)
  })

  k.set("UnsortedSegmentSum", (args) => {
    const be = cpuOf(args.backend)
    const { x, segmentIds } = args.inputs
    const X = f32(be, x)
    const numSegments = numAttr(args, "numSegments", 0)
    if (x === undefined || segmentIds === undefined || X === undefined) return fallback("UnsortedSegmentSum", args)
    const ids = be.data.get(segmentIds.dataId).values
    // Segment ids of rank > 1 (the stock kernel sums only their first axis) and odd counts fall back.
    if (
      !(ids instanceof Int32Array) ||
      segmentIds.shape.length !== 1 ||
      x.shape.length === 0 ||
      segmentIds.shape[0] !== x.shape[0] ||
      !Number.isInteger(numSegments) ||
      numSegments < 1
    ) {
      return fallback("UnsortedSegmentSum", args)
    }
    const inner = sizeOf(x.shape.slice(1))
    const outShape = [numSegments, ...x.shape.slice(1)]
    const o = allocFor(be, numSegments * inner)
    segmentSumInto(X, ids, numSegments, inner, o)
    hit("UnsortedSegmentSum", true)
    return out(be, outShape, o)
  })
}
