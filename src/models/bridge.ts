/**
 * The token-state bridges of the two peer baselines: every last hidden state of the frozen encoder is mapped into
 * the decoder's input-embedding space, and the mapped rows (plus one learned vector) become soft input tokens of the
 * frozen decoder.
 *
 * - LangBridge (Yoon et al., ACL 2024; kaistAI/LangBridge `alignment_modules.py`, `LinearWithAddedEos`):
 *     soft = [W·h_t + b for every encoder token t] ++ [enc_eos]
 *   `linear.weight` [D, d], `linear.bias` [D] (PyTorch `nn.Linear` init: U(−1/√d, 1/√d) for both), `enc_eos` [D]
 *   (`torch.randn`, N(0, 1)).
 * - MindMerger (Huang et al., NeurIPS 2024; CONE-MT/MindMerger `modeling_mindmerger.py`, `Mapping`):
 *     soft = [W₂·ReLU(W₁·h_t + b₁) + b₂ for every encoder token t] ++ [end_boundary]
 *   `mlp.linear1.weight` [2d, d], `mlp.linear1.bias` [2d], `mlp.linear2.weight` [D, 2d], `mlp.linear2.bias` [D]
 *   (`nn.Linear` init: U(−1/√fan_in, 1/√fan_in)), `end_boundary` [D] (zeros, as the code).
 *
 * d is the encoder's hidden size, D the decoder's. Every random tensor draws from its own stream
 * `makeRng(deriveSeed(seed, "bridge/<name>"))`. `bridgeOverrides` places the soft rows at the placeholder positions
 * of a decoder batch (llama.ts overrides), so the same decoder forward and `generate` serve both peers.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readFloat32 } from "../backend/read.ts"
import { CheckpointError } from "./errors.ts"
import type { EmbeddingOverrides } from "./llama.ts"
import { deriveSeed, fillNormal, fillUniform, makeRng } from "./rng.ts"
import type { HostTensor } from "./safetensors.ts"
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors.ts"
import { describeError } from "../errors/describe.ts"

export type BridgeKind = "langbridge" | "mindmerger"

export interface BridgeConfig {
  readonly kind: BridgeKind
  /** d: the encoder's hidden size. */
  readonly dIn: number
  /** D: the decoder's hidden size. */
  readonly dOut: number
}

const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** Every parameter's stable name (as stored in `bridge.safetensors`) and shape, in a fixed order. */
export const bridgeParamShapes = (c: BridgeConfig): ReadonlyArray<readonly [string, ReadonlyArray<number>]> =>
  c.kind === "langbridge"
    ? [["linear.weight", [c.dOut, c.dIn]], ["linear.bias", [c.dOut]], ["enc_eos", [c.dOut]]]
    : [
      ["mlp.linear1.weight", [2 * c.dIn, c.dIn]],
      ["mlp.linear1.bias", [2 * c.dIn]],
      ["mlp.linear2.weight", [c.dOut, 2 * c.dIn]],
      ["mlp.linear2.bias", [c.dOut]],
      ["end_boundary", [c.dOut]]
    ]

/** The name of the learned vector appended after the mapped states. */
export const endName = (kind: BridgeKind): string => (kind === "langbridge" ? "enc_eos" : "end_boundary")

/** The number of trainable values. */
export const bridgeParamCount = (c: BridgeConfig): number => bridgeParamShapes(c).reduce((n, [, s]) => n + size(s), 0)

const validate = (c: BridgeConfig): void => {
  for (const [k, v] of [["dIn", c.dIn], ["dOut", c.dOut]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`bridge: ${k} must be a positive integer (got ${v})`)
  }
}

/** Fresh parameters on the host (the papers' code initialisation), seeded. */
export const initBridgeHost = (c: BridgeConfig, seed: number): Map<string, HostTensor> => {
  validate(c)
  const out = new Map<string, HostTensor>()
  const rng = (name: string) => makeRng(deriveSeed(seed, `bridge/${name}`))
  for (const [name, shape] of bridgeParamShapes(c)) {
    let data: Float32Array
    if (name === "enc_eos") data = fillNormal(rng(name), size(shape), 1)
    else if (name === "end_boundary") data = new Float32Array(size(shape))
    else {
      // nn.Linear: weight and bias U(−1/√fan_in, 1/√fan_in); fan_in is the weight's second axis
      const fanIn = name.startsWith("linear.") ? c.dIn : name.startsWith("mlp.linear1") ? c.dIn : 2 * c.dIn
      const b = 1 / Math.sqrt(fanIn)
      data = fillUniform(rng(name), size(shape), -b, b)
    }
    out.set(name, { shape, data })
  }
  return out
}

/** Throws (naming the parameter) when `host` lacks a parameter or has a wrong shape. */
export const checkBridgeHost = (c: BridgeConfig, host: ReadonlyMap<string, HostTensor>): void => {
  for (const [name, want] of bridgeParamShapes(c)) {
    const t = host.get(name)
    if (t === undefined) throw new Error(`bridge: missing parameter ${name}`)
    if (t.shape.length !== want.length || t.shape.some((v, i) => v !== want[i]) || t.data.length !== size(want)) {
      throw new Error(`bridge: ${name} has shape [${t.shape.join(",")}], expected [${want.join(",")}]`)
    }
  }
}

export interface BridgeModule {
  readonly config: BridgeConfig
  /** Stable name → variable. */
  readonly params: ReadonlyMap<string, tf.Variable>
}

let instanceCounter = 0

/** A bridge whose variables hold copies of `host` (validated against `config`). */
export const bridgeFromHost = (
  config: BridgeConfig,
  host: ReadonlyMap<string, HostTensor>,
  options?: { readonly prefix?: string; readonly trainable?: boolean }
): BridgeModule => {
  validate(config)
  checkBridgeHost(config, host)
  const prefix = options?.prefix ?? `bridge${instanceCounter++}/`
  const params = new Map<string, tf.Variable>()
  for (const [name] of bridgeParamShapes(config)) {
    const t = host.get(name)!
    params.set(name, tf.tidy(() => tf.variable(tf.tensor(Float32Array.from(t.data), [...t.shape], "float32"), options?.trainable ?? true, prefix + name)))
  }
  return { config, params }
}

/** A freshly initialised bridge. */
export const initBridge = (config: BridgeConfig, seed: number, options?: { readonly prefix?: string }): BridgeModule =>
  bridgeFromHost(config, initBridgeHost(config, seed), options)

const param = (m: BridgeModule, name: string): tf.Variable => {
  const v = m.params.get(name)
  if (v === undefined) throw new Error(`bridge: missing variable ${name}`)
  return v
}

/** Copies of the current weights (stable names). */
export const bridgeToHost = async (m: BridgeModule): Promise<Map<string, HostTensor>> => {
  const out = new Map<string, HostTensor>()
  for (const [name, v] of m.params) out.set(name, { shape: [...v.shape], data: await readFloat32(v) })
  return out
}

export const disposeBridge = (m: BridgeModule): void => {
  for (const v of m.params.values()) v.dispose()
}

// ---------------------------------------------------------------------------------------------------------------
// Forward (intermediates are not tidied: call inside tf.tidy / tf.variableGrads)

const linear = (x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D =>
  tf.add(tf.matMul(x, w as tf.Tensor2D, false, true), b) as tf.Tensor2D

/** Encoder token states [N, d] → soft inputs [N, D] (the linear map, or the 2-layer ReLU MLP). */
export const mapStates = (m: BridgeModule, states: tf.Tensor2D): tf.Tensor2D => {
  if (states.shape[1] !== m.config.dIn) throw new Error(`bridge: states have width ${states.shape[1]}, expected ${m.config.dIn}`)
  if (m.config.kind === "langbridge") return linear(states, param(m, "linear.weight"), param(m, "linear.bias"))
  const h = tf.relu(linear(states, param(m, "mlp.linear1.weight"), param(m, "mlp.linear1.bias"))) as tf.Tensor2D
  return linear(h, param(m, "mlp.linear2.weight"), param(m, "mlp.linear2.bias"))
}

/**
 * One pooled soft-input vector per text: the mean of its mapped states (the rows `mapStates` gives its encoder
 * tokens; the end vector, the same for every text, is left out). `states` [Σ lengths, d] holds the texts' token
 * states one after another; the result is [lengths.length, D].
 */
export const meanMappedStates = (m: BridgeModule, states: tf.Tensor2D, lengths: ReadonlyArray<number>): tf.Tensor2D => {
  const total = lengths.reduce((a, b) => a + b, 0)
  if (states.shape[0] !== total) throw new Error(`bridge: ${states.shape[0]} state rows for texts of ${total} tokens`)
  if (lengths.some((n) => !Number.isInteger(n) || n < 1)) throw new Error("bridge: every text needs at least one encoder token")
  const segment = Int32Array.from(lengths.flatMap((n, i) => Array.from({ length: n }, () => i)))
  const sums = tf.unsortedSegmentSum(mapStates(m, states), tf.tensor1d(segment, "int32"), lengths.length)
  return tf.div(sums, tf.tensor2d(Float32Array.from(lengths), [lengths.length, 1])) as tf.Tensor2D
}

/** The learned vector appended after each example's mapped states [D]. */
export const endVector = (m: BridgeModule): tf.Tensor1D => param(m, endName(m.config.kind)) as tf.Tensor1D

/** Where one example's soft rows go: its batch row, the position of its first soft row, its encoder token count. */
export interface SoftSpan {
  readonly batch: number
  readonly start: number
  readonly length: number
}

/**
 * The overrides of a batch: example i's `spans[i].length` mapped states (rows of `states` [Σ length, d], in span
 * order) at positions start … start+length−1, and the end vector at start+length. With `zeroStates` the mapped
 * states are replaced by zeros (the end vector stays): the control that shows the decoder reads them.
 */
export const bridgeOverrides = (
  m: BridgeModule,
  states: tf.Tensor2D,
  spans: ReadonlyArray<SoftSpan>,
  options?: { readonly zeroStates?: boolean }
): EmbeddingOverrides => {
  const total = spans.reduce((a, s) => a + s.length, 0)
  if (states.shape[0] !== total) throw new Error(`bridge: ${states.shape[0]} state rows for spans of ${total} tokens`)
  const batch: Array<number> = []
  const position: Array<number> = []
  // rows of [mapped; end × spans]: mapped row r is index r, span i's end vector is total + i
  const order: Array<number> = []
  let r = 0
  spans.forEach((s, i) => {
    for (let t = 0; t < s.length; t++) {
      batch.push(s.batch)
      position.push(s.start + t)
      order.push(r++)
    }
    batch.push(s.batch)
    position.push(s.start + s.length)
    order.push(total + i)
  })
  const mapped = options?.zeroStates === true ? tf.zeros([total, m.config.dOut]) : mapStates(m, states)
  const ends = tf.tile(tf.reshape(endVector(m), [1, m.config.dOut]), [spans.length, 1])
  const vectors = tf.gather(tf.concat([mapped, ends], 0), tf.tensor1d(Int32Array.from(order), "int32")) as tf.Tensor2D
  return { batch, position, vectors }
}

// ---------------------------------------------------------------------------------------------------------------
// Files

export const BRIDGE_FILE = "bridge.safetensors"

/** Writes the parameters (F32, stable names) with the config in the header metadata (`llink.bridge`). */
export const saveBridge = (file: string, m: BridgeModule): Effect.Effect<void, CheckpointError> =>
  Effect.tryPromise({
    try: () => bridgeToHost(m),
    catch: (e) => new CheckpointError({ file, message: `cannot read the bridge's weights back: ${String(e)}` })
  }).pipe(Effect.flatMap((host) => writeSafetensorsFile(file, host, { metadata: { "llink.bridge": JSON.stringify(m.config) } })))

/** Reads the parameters written by `saveBridge` and checks them against `config`. */
export const loadBridgeHost = (file: string, config: BridgeConfig): Effect.Effect<Map<string, HostTensor>, CheckpointError> =>
  Effect.flatMap(readSafetensorsFile(file), (host) =>
    Effect.try({
      try: () => {
        checkBridgeHost(config, host)
        return host
      },
      catch: (e) => new CheckpointError({ file, message: describeError(e) })
    }))
