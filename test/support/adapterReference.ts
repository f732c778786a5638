/**
 * Plain-loop float64 references of the two modules between the encoder and the decoder, written independently of
 * `src/models/projector.ts` and `src/models/slots.ts` (no tfjs here): the Stage A projector (Linear → GELU →
 * [dropout mask] → Linear → LayerNorm) and the Stage B slot module (ForeignScale → gated adapter → expander →
 * LayerNorm). Shared by the modules' own tests and by the stage tests that need an independent computation.
 */
import { geluErf } from "./reference.ts"

type Params = ReadonlyMap<string, { readonly data: ArrayLike<number> }>

const getter = (host: Params) => (n: string): ArrayLike<number> => {
  const t = host.get(n)
  if (t === undefined) throw new Error(`reference: no parameter ${n}`)
  return t.data
}

export interface ProjectorShape {
  readonly dIn: number
  readonly dHidden: number
  readonly dOut: number
  readonly lnEps: number
}

/** The projector on `rows` rows of z (row-major), with an optional dropout mask over the hidden units. */
export const projectorReference = (
  host: Params,
  shape: ProjectorShape,
  z: ArrayLike<number>,
  rows: number,
  mask: ArrayLike<number> | null
): number[] => {
  const get = getter(host)
  const { dIn, dHidden, dOut, lnEps } = shape
  const out: number[] = []
  for (let r = 0; r < rows; r++) {
    const a: number[] = []
    for (let j = 0; j < dHidden; j++) {
      let s = get("fc1.bias")[j]
      for (let k = 0; k < dIn; k++) s += get("fc1.weight")[j * dIn + k] * z[r * dIn + k]
      let g = geluErf(s)
      if (mask !== null) g *= mask[r * dHidden + j]
      a.push(g)
    }
    const h: number[] = []
    for (let j = 0; j < dOut; j++) {
      let s = get("fc2.bias")[j]
      for (let k = 0; k < dHidden; k++) s += get("fc2.weight")[j * dHidden + k] * a[k]
      h.push(s)
    }
    const mean = h.reduce((s, v) => s + v, 0) / dOut
    const variance = h.reduce((s, v) => s + (v - mean) ** 2, 0) / dOut
    for (let j = 0; j < dOut; j++) {
      out.push(((h[j] - mean) / Math.sqrt(variance + lnEps)) * get("ln.weight")[j] + get("ln.bias")[j])
    }
  }
  return out
}

/** The slot module's K slots of width d for one input row v (adapter hidden width hA, gate cap, LayerNorm eps). */
export const slotsReference = (host: Params, v: Float64Array, d: number, K: number, hA: number, gateMax: number, eps: number): Float64Array[] => {
  const get = getter(host)
  const ln = (x: Float64Array, w?: ArrayLike<number>, b?: ArrayLike<number>): Float64Array => {
    let m = 0
    for (const a of x) m += a
    m /= x.length
    let vv = 0
    for (const a of x) vv += (a - m) * (a - m)
    vv /= x.length
    return x.map((a, i) => ((a - m) / Math.sqrt(vv + eps)) * (w?.[i] ?? 1) + (b?.[i] ?? 0))
  }
  const lin = (x: Float64Array, w: ArrayLike<number>, b: ArrayLike<number>, out: number): Float64Array => {
    const y = new Float64Array(out)
    for (let o = 0; o < out; o++) {
      let s = b[o]
      for (let i = 0; i < x.length; i++) s += w[o * x.length + i] * x[i]
      y[o] = s
    }
    return y
  }
  const gelu = (x: Float64Array) => x.map(geluErf)
  let norm = 0
  for (const a of v) norm += a * a
  const unit = v.map((a) => a / Math.max(Math.sqrt(norm), 1e-12))
  const s = ln(unit).map((a) => a * get("scale.scale")[0])
  const gate = Math.min(Math.max(Math.tanh(get("adapter.g")[0]), 0), gateMax)
  const r = lin(gelu(lin(ln(s, get("adapter.ln.weight"), get("adapter.ln.bias")), get("adapter.w1.weight"), get("adapter.w1.bias"), hA)), get("adapter.w2.weight"), get("adapter.w2.bias"), d)
  const a = s.map((x, i) => x + gate * r[i])
  const e = lin(gelu(lin(a, get("expander.net.0.weight"), get("expander.net.0.bias"), 2 * d)), get("expander.net.2.weight"), get("expander.net.2.bias"), K * d)
  return Array.from({ length: K }, (_, k) => ln(e.slice(k * d, (k + 1) * d), get("expander.ln.weight"), get("expander.ln.bias")))
}
