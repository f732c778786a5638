/** Transpose: squeeze size-1 dims, merge dims that stay adjacent, then a blocked 2-D or strided N-D copy. */
import { sizeOf } from "./shared.ts"

type Numeric = Float32Array | Int32Array

export const transposeValues = (
  X: Numeric,
  shape: ReadonlyArray<number>,
  perm: ReadonlyArray<number>,
  O: Numeric
): boolean => {
  // Drop size-1 dims.
  const keep = shape.map((d) => d !== 1)
  const remap = new Map<number, number>()
  const dims: Array<number> = []
  shape.forEach((d, i) => {
    if (keep[i]) {
      remap.set(i, dims.length)
      dims.push(d)
    }
  })
  let p = perm.filter((a) => keep[a]).map((a) => remap.get(a) ?? 0)
  // Merge runs: output-adjacent axes that are also input-adjacent and in order.
  const groups: Array<Array<number>> = []
  for (const a of p) {
    const g = groups[groups.length - 1]
    if (g !== undefined && g[g.length - 1] + 1 === a) g.push(a)
    else groups.push([a])
  }
  const order = [...groups].sort((x, y) => x[0] - y[0])
  const gdims = order.map((g) => sizeOf(g.map((a) => dims[a])))
  p = groups.map((g) => order.indexOf(g))
  const r = gdims.length
  if (r <= 1) {
    O.set(X)
    return true
  }
  const strides = new Array<number>(r)
  strides[r - 1] = 1
  for (let d = r - 2; d >= 0; d--) strides[d] = strides[d + 1] * gdims[d + 1]
  if (r === 2) {
    const rows = gdims[0]
    const cols = gdims[1]
    const B = 32
    for (let i0 = 0; i0 < rows; i0 += B) {
      const i1 = Math.min(i0 + B, rows)
      for (let j0 = 0; j0 < cols; j0 += B) {
        const j1 = Math.min(j0 + B, cols)
        for (let j = j0; j < j1; j++) {
          const ob = j * rows
          for (let i = i0; i < i1; i++) O[ob + i] = X[i * cols + j]
        }
      }
    }
    return true
  }
  if (r > 5) return false
  // Pad to 5 dims (leading size-1 dims) and walk the output in order.
  const od = [1, 1, 1, 1, 1]
  const is = [0, 0, 0, 0, 0]
  for (let d = 0; d < r; d++) {
    od[5 - r + d] = gdims[p[d]]
    is[5 - r + d] = strides[p[d]]
  }
  const [d0, d1, d2, d3, d4] = od
  const [s0, s1, s2, s3, s4] = is
  let w = 0
  for (let a = 0; a < d0; a++)
    for (let b = 0; b < d1; b++)
      for (let c = 0; c < d2; c++)
        for (let e = 0; e < d3; e++) {
          const base = a * s0 + b * s1 + c * s2 + e * s3
          if (s4 === 1) {
            O.set(X.subarray(base, base + d4), w)
            w += d4
          } else for (let f = 0; f < d4; f++) O[w++] = X[base + f * s4]
        }
  return true
}
