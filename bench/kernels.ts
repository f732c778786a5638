/**
 * Data-movement and broadcasting kernels, stock `cpu` vs `cpu-blas`: `node bench/kernels.ts [--reps 5]`
 *
 * Realistic transformer shapes: the rotate-half RoPE slices of a Llama-1B-shaped batch ([8,32,40,64] halves) and
 * their gradients (pad, concat/split), the embedding gather and its gradient (UnsortedSegmentSum with 128,256
 * segments × 320 rows × 64 dims), and the broadcasting element-wise ops (XLM-R attention mask [32,12,64,64] +
 * [32,1,1,64], RoPE x·cos with cos [1,1,T,D] and [B,1,T,D], [N,D] + [D] bias).
 * The stock UnsortedSegmentSum costs ~segments × rows, so it is timed on fewer segments and extrapolated linearly
 * (marked `~`). Best-of-reps wall time per call; prints measurements and ratios, never verdicts.
 */
import * as tf from "@tensorflow/tfjs"
import { parseArgs } from "node:util"
import { registerBlasBackend } from "../src/backend/cpuBlas/register.ts"
import { BLAS_BACKEND } from "../src/backend/cpuBlas/shared.ts"

const { values: args } = parseArgs({ options: { reps: { type: "string", default: "5" } } })
const REPS = Number(args.reps)

registerBlasBackend()

/** Deterministic pseudo-random float32 values (cheap LCG, not for statistics). */
const filled = (n: number, seed: number): Float32Array => {
  const a = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 4294967296 - 0.5
  }
  return a
}
const tensor = (shape: Array<number>, seed: number): tf.Tensor =>
  tf.tensor(filled(shape.reduce((a, b) => a * b, 1), seed), shape, "float32")

/** Best wall time (ms) of one call of `run` over `reps` calls after one warm-up; inputs built once per backend. */
const time = async <I>(backend: string, reps: number, setup: () => I, run: (inputs: I) => tf.Tensor | Array<tf.Tensor>) => {
  await tf.setBackend(backend)
  const inputs = setup()
  tf.dispose(run(inputs))
  let best = Infinity
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now()
    const o = run(inputs)
    const ms = performance.now() - t0
    tf.dispose(o)
    if (ms < best) best = ms
  }
  tf.dispose(Object.values(inputs as object).filter((v): v is tf.Tensor => v instanceof tf.Tensor))
  return best
}

const rows: Array<[string, string, string, string]> = []
const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(1) : ms.toFixed(3))

const bench = async <I>(
  label: string,
  setup: () => I,
  run: (inputs: I) => tf.Tensor | Array<tf.Tensor>,
  stockReps = Math.min(REPS, 2),
  stockScale?: { readonly setup: () => I; readonly factor: number }
) => {
  const fast = await time(BLAS_BACKEND, REPS, setup, run)
  const stock =
    stockScale === undefined
      ? await time("cpu", stockReps, setup, run)
      : (await time("cpu", stockReps, stockScale.setup, run)) * stockScale.factor
  const mark = stockScale === undefined ? "" : "~"
  rows.push([label, `${mark}${fmt(stock)}`, fmt(fast), `${mark}${(stock / fast).toFixed(1)}×`])
  console.log(`${label}: stock ${mark}${fmt(stock)} ms, cpu-blas ${fmt(fast)} ms, ${mark}${(stock / fast).toFixed(1)}×`)
}

const idsOf = (n: number, range: number, seed: number): tf.Tensor1D => {
  const v = new Int32Array(n)
  let s = seed
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    v[i] = s % range
  }
  return tf.tensor1d(v, "int32")
}

// RoPE rotate-half on [B, H, T, D] = [8, 32, 40, 64]
const X = [8, 32, 40, 64]
await bench("Slice  x[..., :32] of [8,32,40,64]", () => ({ x: tensor(X, 1) }), ({ x }) => tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 32]))
await bench("Slice  x[..., 32:] of [8,32,40,64]", () => ({ x: tensor(X, 1) }), ({ x }) => tf.slice(x, [0, 0, 0, 32], [-1, -1, -1, 32]))
await bench(
  "StridedSlice x[..., 32:] (stride 1)",
  () => ({ x: tensor(X, 1) }),
  ({ x }) => tf.stridedSlice(x, [0, 0, 0, 32], [8, 32, 40, 64], [1, 1, 1, 1])
)
await bench(
  "PadV2  slice grad [8,32,40,32] → 64",
  () => ({ x: tensor([8, 32, 40, 32], 2) }),
  ({ x }) => tf.pad(x, [[0, 0], [0, 0], [0, 0], [32, 0]])
)
await bench(
  "Concat [-x2, x1] 2×[8,32,40,32] axis -1",
  () => ({ a: tensor([8, 32, 40, 32], 3), b: tensor([8, 32, 40, 32], 4) }),
  ({ a, b }) => tf.concat([a, b], -1)
)
await bench("SplitV [8,32,40,64] → 2 halves axis -1", () => ({ x: tensor(X, 5) }), ({ x }) => tf.split(x, 2, -1))
await bench(
  "Concat KV cache [8,8,40,64]+[8,8,1,64] axis 2",
  () => ({ a: tensor([8, 8, 40, 64], 6), b: tensor([8, 8, 1, 64], 7) }),
  ({ a, b }) => tf.concat([a, b], 2)
)

// Embedding gather and its gradient
await bench(
  "GatherV2 320 rows of [8192,2048]",
  () => ({ table: tensor([8192, 2048], 8), ids: idsOf(320, 8192, 9) }),
  ({ table, ids }) => tf.gather(table, ids)
)
await bench(
  "GatherV2 axis 1 [64,512,32] × 100 ids",
  () => ({ table: tensor([64, 512, 32], 10), ids: idsOf(100, 512, 11) }),
  ({ table, ids }) => tf.gather(table, ids, 1)
)
const SEGMENTS = 128256
const STOCK_SEGMENTS = 512
await bench(
  `UnsortedSegmentSum ${SEGMENTS} seg × 320 rows × 64`,
  () => ({ dy: tensor([320, 64], 12), ids: idsOf(320, SEGMENTS, 13), n: SEGMENTS }),
  ({ dy, ids, n }) => tf.unsortedSegmentSum(dy, ids, n),
  1,
  {
    setup: () => ({ dy: tensor([320, 64], 12), ids: idsOf(320, STOCK_SEGMENTS, 13), n: STOCK_SEGMENTS }),
    factor: SEGMENTS / STOCK_SEGMENTS
  }
)

// Broadcasting element-wise ops
await bench(
  "Add  scores [32,12,64,64] + mask [32,1,1,64]",
  () => ({ a: tensor([32, 12, 64, 64], 14), b: tensor([32, 1, 1, 64], 15) }),
  ({ a, b }) => tf.add(a, b)
)
await bench(
  "Mul  x [8,32,40,64] * cos [8,1,40,64]",
  () => ({ a: tensor(X, 16), b: tensor([8, 1, 40, 64], 17) }),
  ({ a, b }) => tf.mul(a, b)
)
await bench(
  "Mul  x [8,32,40,64] * cos [1,1,40,64]",
  () => ({ a: tensor(X, 16), b: tensor([1, 1, 40, 64], 18) }),
  ({ a, b }) => tf.mul(a, b)
)
await bench(
  "Add  [320,2048] + bias [2048]",
  () => ({ a: tensor([320, 2048], 19), b: tensor([2048], 20) }),
  ({ a, b }) => tf.add(a, b)
)
await bench(
  "Sub  [32,12,64,64] - max [32,12,64,1]",
  () => ({ a: tensor([32, 12, 64, 64], 21), b: tensor([32, 12, 64, 1], 22) }),
  ({ a, b }) => tf.sub(a, b)
)

console.log("\n| kernel | stock ms | cpu-blas ms | speed-up |\n|---|---:|---:|---:|")
for (const r of rows) console.log(`| ${r.join(" | ")} |`)
