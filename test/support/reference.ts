/**
 * A plain-loop float64 reference of both architectures, written independently of the tfjs models (no tfjs here):
 * every operation is a loop over numbers, following the Hugging Face definitions directly. The tests compare the
 * float32 tfjs models against it.
 *
 * Matrices are arrays of rows (`Float64Array`s). Weights come as Hugging Face host tensors (`[out, in]` for Linear).
 */
import type { LlamaConfig, XlmRobertaConfig } from "../../src/models/hfconfig.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"

export type Vec = Float64Array
export type Mat = Array<Vec>

// ---------------------------------------------------------------------------------------------------------------
// Elementary operations

/** y = x·Wᵀ (+ b) for W [out, in] stored row-major. */
export const linear = (x: Mat, w: HostTensor, b?: HostTensor): Mat => {
  const [out, inp] = w.shape
  return x.map((row) => {
    if (row.length !== inp) throw new Error(`linear: input width ${row.length} != ${inp}`)
    const y = new Float64Array(out)
    for (let o = 0; o < out; o++) {
      let s = b === undefined ? 0 : b.data[o]
      const base = o * inp
      for (let i = 0; i < inp; i++) s += row[i] * w.data[base + i]
      y[o] = s
    }
    return y
  })
}

/** x·Wᵀ + scale·(x·Aᵀ)·Bᵀ with A [r, in], B [out, r]. */
export const loraLinear = (x: Mat, w: HostTensor, a: HostTensor, b: HostTensor, scale: number): Mat => {
  const base = linear(x, w)
  const low = linear(x, a)
  const up = linear(low, b)
  return base.map((row, n) => row.map((v, o) => v + scale * up[n][o]))
}

export const layerNorm = (x: Vec, w: HostTensor, b: HostTensor, eps: number): Vec => {
  const n = x.length
  let mean = 0
  for (let i = 0; i < n; i++) mean += x[i]
  mean /= n
  let variance = 0
  for (let i = 0; i < n; i++) variance += (x[i] - mean) ** 2
  variance /= n
  const inv = 1 / Math.sqrt(variance + eps)
  const y = new Float64Array(n)
  for (let i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w.data[i] + b.data[i]
  return y
}

export const rmsNorm = (x: Vec, w: HostTensor, eps: number): Vec => {
  let ms = 0
  for (let i = 0; i < x.length; i++) ms += x[i] * x[i]
  ms /= x.length
  const inv = 1 / Math.sqrt(ms + eps)
  return x.map((v, i) => v * inv * w.data[i])
}

/** erf to ~1e-12: Maclaurin series for |x| < 4, ±1 beyond (|erfc(4)| < 2e-8). */
export const erf = (x: number): number => {
  const ax = Math.abs(x)
  if (ax >= 4) return Math.sign(x) * (1 - erfcLarge(ax))
  let term = ax
  let sum = ax
  for (let n = 1; n < 200; n++) {
    term *= (-ax * ax) / n
    const add = term / (2 * n + 1)
    sum += add
    if (Math.abs(add) < 1e-17) break
  }
  return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * sum)
}

/** erfc for x ≥ 4 by the continued fraction (Lentz). */
const erfcLarge = (x: number): number => {
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  let f = x
  for (let k = 60; k >= 1; k--) f = x + k / 2 / f
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f
}

export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2))

export const silu = (x: number): number => x / (1 + Math.exp(-x))

/** SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)). */
export const swiglu = (x: Mat, gate: (m: Mat) => Mat, up: (m: Mat) => Mat, down: (m: Mat) => Mat): Mat => {
  const g = gate(x)
  const u = up(x)
  return down(g.map((row, n) => row.map((v, i) => silu(v) * u[n][i])))
}

/** Attention-mask-weighted mean over positions of hidden [T][H]. */
export const maskMeanPool = (hidden: Mat, mask: ReadonlyArray<number>): Vec => {
  const H = hidden[0].length
  const out = new Float64Array(H)
  let count = 0
  hidden.forEach((row, t) => {
    if (!mask[t]) return
    count++
    for (let i = 0; i < H; i++) out[i] += row[i]
  })
  return out.map((v) => v / count)
}

/**
 * Multi-head attention for one sequence with grouped KV heads. q [T][nH·d], k/v [S][nKV·d]. `allowed(t, s)` says
 * whether query t may attend key s; a query with no allowed key outputs zeros. Returns [T][nH·d].
 */
export const attention = (
  q: Mat,
  k: Mat,
  v: Mat,
  nH: number,
  nKV: number,
  d: number,
  allowed: (t: number, s: number) => boolean
): Mat => {
  const T = q.length
  const S = k.length
  const g = nH / nKV
  const out: Mat = Array.from({ length: T }, () => new Float64Array(nH * d))
  for (let h = 0; h < nH; h++) {
    const kvh = Math.floor(h / g)
    for (let t = 0; t < T; t++) {
      const scores: Array<number> = []
      const keys: Array<number> = []
      for (let s = 0; s < S; s++) {
        if (!allowed(t, s)) continue
        let dot = 0
        for (let i = 0; i < d; i++) dot += q[t][h * d + i] * k[s][kvh * d + i]
        scores.push(dot / Math.sqrt(d))
        keys.push(s)
      }
      if (keys.length === 0) continue
      const m = Math.max(...scores)
      const e = scores.map((x) => Math.exp(x - m))
      const z = e.reduce((a, b) => a + b, 0)
      keys.forEach((s, j) => {
        const p = e[j] / z
        for (let i = 0; i < d; i++) out[t][h * d + i] += p * v[s][kvh * d + i]
      })
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// RoPE

/** Inverse frequencies with llama3 scaling, written from the method notes' formula. */
export const llama3InvFreq = (config: LlamaConfig): Array<number> => {
  const d = config.head_dim ?? config.hidden_size / config.num_attention_heads
  const out: Array<number> = []
  for (let i = 0; i < d / 2; i++) {
    const f = Math.pow(config.rope_theta, -(2 * i) / d)
    const sc = config.rope_scaling
    if (sc === null || sc === undefined) {
      out.push(f)
      continue
    }
    const w = (2 * Math.PI) / f
    const old = sc.original_max_position_embeddings
    if (w > old / sc.low_freq_factor) out.push(f / sc.factor)
    else if (w < old / sc.high_freq_factor) out.push(f)
    else {
      const s = (old / w - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor)
      out.push(((1 - s) * f) / sc.factor + s * f)
    }
  }
  return out
}

/** Rotate-half RoPE of one head vector x [d] at position p. */
export const ropeVec = (x: ArrayLike<number>, p: number, invFreq: ReadonlyArray<number>): Vec => {
  const d = x.length
  const h = d / 2
  const y = new Float64Array(d)
  for (let i = 0; i < h; i++) {
    const a = p * invFreq[i]
    const c = Math.cos(a)
    const s = Math.sin(a)
    // rotate_half(x) = [-x2, x1]; out = x·cos + rotate_half(x)·sin
    y[i] = x[i] * c - x[i + h] * s
    y[i + h] = x[i + h] * c + x[i] * s
  }
  return y
}

const ropeRows = (m: Mat, positions: ReadonlyArray<number>, heads: number, d: number, inv: ReadonlyArray<number>): Mat =>
  m.map((row, t) => {
    const out = new Float64Array(row.length)
    for (let h = 0; h < heads; h++) out.set(ropeVec(row.subarray(h * d, (h + 1) * d), positions[t], inv), h * d)
    return out
  })

// ---------------------------------------------------------------------------------------------------------------
// Full models

const get = (weights: ReadonlyMap<string, HostTensor>, name: string): HostTensor => {
  const t = weights.get(name) ?? weights.get(`roberta.${name}`)
  if (t === undefined) throw new Error(`reference: missing ${name}`)
  return t
}

const row = (t: HostTensor, r: number): Vec => {
  const H = t.shape[1]
  return Float64Array.from(t.data.subarray(r * H, (r + 1) * H))
}

/** XLM-R last hidden states [B][T][H] for padded ids and a mask. */
export const xlmrReference = (
  config: XlmRobertaConfig,
  weights: ReadonlyMap<string, HostTensor>,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  mask: ReadonlyArray<ReadonlyArray<number>>
): Array<Mat> => {
  const pad = config.pad_token_id
  const eps = config.layer_norm_eps
  const nH = config.num_attention_heads
  const d = config.hidden_size / nH
  const w = (n: string) => get(weights, n)
  return ids.map((seq, b) => {
    let count = 0
    const pos = seq.map((id) => (id === pad ? pad : ++count + pad))
    let x: Mat = seq.map((id, t) => {
      const e = row(w("embeddings.word_embeddings.weight"), id)
      const p = row(w("embeddings.position_embeddings.weight"), pos[t])
      const tt = row(w("embeddings.token_type_embeddings.weight"), 0)
      return layerNorm(e.map((v, i) => v + p[i] + tt[i]), w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
    })
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const p = `encoder.layer.${l}`
      const lin = (m: Mat, n: string) => linear(m, w(`${p}.${n}.weight`), w(`${p}.${n}.bias`))
      const q = lin(x, "attention.self.query")
      const k = lin(x, "attention.self.key")
      const v = lin(x, "attention.self.value")
      const ctx = attention(q, k, v, nH, nH, d, (_t, s) => mask[b][s] === 1)
      const a = lin(ctx, "attention.output.dense")
      const h = a.map((r, t) =>
        layerNorm(r.map((val, i) => val + x[t][i]), w(`${p}.attention.output.LayerNorm.weight`), w(`${p}.attention.output.LayerNorm.bias`), eps)
      )
      const inter = lin(h, "intermediate.dense").map((r) => r.map(geluErf))
      const o = lin(inter, "output.dense")
      x = o.map((r, t) =>
        layerNorm(r.map((val, i) => val + h[t][i]), w(`${p}.output.LayerNorm.weight`), w(`${p}.output.LayerNorm.bias`), eps)
      )
    }
    return x
  })
}

export type LoraTargetName = "q" | "k" | "v" | "o" | "gate" | "up" | "down"

/** LoRA weights for the reference: per layer, per target, A [r, in] and B [out, r]. */
export interface ReferenceLora {
  readonly scale: number
  readonly layers: ReadonlyArray<Partial<Record<LoraTargetName, { readonly a: HostTensor; readonly b: HostTensor }>>>
}

export interface ReferenceOverrides {
  readonly batch: ReadonlyArray<number>
  readonly position: ReadonlyArray<number>
  readonly vectors: ReadonlyArray<ArrayLike<number>>
}

/** Llama final hidden states (after the final RMSNorm) [B][T][H]; padded query rows are computed but meaningless. */
export const llamaReference = (
  config: LlamaConfig,
  weights: ReadonlyMap<string, HostTensor>,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  mask: ReadonlyArray<ReadonlyArray<number>>,
  options?: { readonly overrides?: ReferenceOverrides; readonly lora?: ReferenceLora; readonly embedding?: HostTensor }
): Array<Mat> => {
  const nH = config.num_attention_heads
  const nKV = config.num_key_value_heads
  const d = config.head_dim ?? config.hidden_size / nH
  const eps = config.rms_norm_eps
  const inv = llama3InvFreq(config)
  const w = (n: string) => get(weights, n)
  const emb = options?.embedding ?? w("model.embed_tokens.weight")
  return ids.map((seq, b) => {
    let c = 0
    const pos = mask[b].map((m) => {
      c += m
      return Math.max(c - 1, 0)
    })
    let x: Mat = seq.map((id) => row(emb, id))
    const ov = options?.overrides
    if (ov !== undefined) {
      ov.batch.forEach((bb, i) => {
        if (bb === b) x[ov.position[i]] = Float64Array.from(ov.vectors[i])
      })
    }
    const allowed = (t: number, s: number) => s <= t && mask[b][s] === 1
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const p = `model.layers.${l}`
      const proj = (m: Mat, target: LoraTargetName, n: string): Mat => {
        const lo = options?.lora?.layers[l]?.[target]
        return lo === undefined ? linear(m, w(`${p}.${n}.weight`)) : loraLinear(m, w(`${p}.${n}.weight`), lo.a, lo.b, options!.lora!.scale)
      }
      const h = x.map((r) => rmsNorm(r, w(`${p}.input_layernorm.weight`), eps))
      const q = ropeRows(proj(h, "q", "self_attn.q_proj"), pos, nH, d, inv)
      const k = ropeRows(proj(h, "k", "self_attn.k_proj"), pos, nKV, d, inv)
      const v = proj(h, "v", "self_attn.v_proj")
      const a = proj(attention(q, k, v, nH, nKV, d, allowed), "o", "self_attn.o_proj")
      const x1 = x.map((r, t) => r.map((val, i) => val + a[t][i]))
      const h2 = x1.map((r) => rmsNorm(r, w(`${p}.post_attention_layernorm.weight`), eps))
      const m = swiglu(
        h2,
        (z) => proj(z, "gate", "mlp.gate_proj"),
        (z) => proj(z, "up", "mlp.up_proj"),
        (z) => proj(z, "down", "mlp.down_proj")
      )
      x = x1.map((r, t) => r.map((val, i) => val + m[t][i]))
    }
    return x.map((r) => rmsNorm(r, w("model.norm.weight"), eps))
  })
}

/** Logits of hidden rows against the LM head (tied: the embedding matrix). */
export const llamaLogits = (hidden: Mat, head: HostTensor): Mat => linear(hidden, head)

/** Max |a − b| over matching entries. */
export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}
