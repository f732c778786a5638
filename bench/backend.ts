/**
 * Tensor backend benchmark: `node bench/backend.ts [--steps 10] [--cpu-steps 1] [--batch 256] [--no-cpu] [--profile]`
 *
 * 1. sgemm GFLOP/s for 512³, 1024³ and 4096×768×3072 (C[4096×3072] = A[4096×768]·B[768×3072]), raw
 *    `cblas_sgemm` vs `tf.matMul` on cpu-blas (the ratio is the cost of going through tfjs).
 * 2. Training steps of the Stage A projector shape: batch 256, Linear 768→3072 → GELU(erf) → Linear 3072→2048 →
 *    LayerNorm, loss = MSE between L2-normalised outputs and targets (the paper's L_dir), grad-clip 1.0, AdamW.
 *    Variants: `composite` (written with plain tf ops, as a model would be without llink's fused ops) and `fused`
 *    (`gelu`/`layerNorm` from src/backend/ops.ts, `tf.fused.matMul` for the second Linear). Stock `cpu` runs the
 *    composite variant for `--cpu-steps` steps only (tens of seconds each).
 * Prints ms/step, the speed-up over stock cpu, the ratio to PyTorch's ~230 ms/step on this machine, and achieved
 * GFLOP/s as a fraction of the measured sgemm peak. `--profile` adds a per-kernel time table for one step.
 */
import * as tf from "@tensorflow/tfjs"
import { parseArgs } from "node:util"
import { AdamW, clipCoefficient, gradNorm } from "../src/backend/adamw.ts"
import { loadBlas } from "../src/backend/blas.ts"
import { registerBlasBackend } from "../src/backend/cpuBlas/register.ts"
import { BLAS_BACKEND } from "../src/backend/cpuBlas/shared.ts"
import { kernelTiming } from "../src/backend/cpuBlas/table.ts"
import { gelu, layerNorm } from "../src/backend/ops.ts"

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "10" },
    "cpu-steps": { type: "string", default: "1" },
    batch: { type: "string", default: "256" },
    "no-cpu": { type: "boolean", default: false },
    profile: { type: "boolean", default: false }
  }
})
const STEPS = Number(args.steps)
const CPU_STEPS = Number(args["cpu-steps"])
const BATCH = Number(args.batch)
const PYTORCH_MS = 230

const blas = registerBlasBackend()
const loaded = loadBlas()
console.log(`OpenBLAS ${loaded.path}: ${loaded.config}; ${loaded.threads()} threads; kernels ${loaded.coreName}`)
console.log(`node ${process.version}\n`)

const best = (reps: number, f: () => void): number => {
  let ms = Infinity
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now()
    f()
    ms = Math.min(ms, performance.now() - t0)
  }
  return ms
}
const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}
const fill = (n: number, seed: number): Float32Array => {
  let s = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = s / 4294967296 - 0.5
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// 1. sgemm

console.log("sgemm (best of several runs)")
console.log("shape M×K×N            raw GFLOP/s   tf.matMul GFLOP/s   ratio")
await tf.setBackend(BLAS_BACKEND)
let peak = 0
for (const [m, k, n, reps] of [[512, 512, 512, 20], [1024, 1024, 1024, 8], [4096, 768, 3072, 4]]) {
  const a = fill(m * k, 1)
  const b = fill(k * n, 2)
  const c = new Float32Array(m * n)
  const flop = 2 * m * k * n
  blas.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
  const rawMs = best(reps, () => blas.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n))
  const ta = tf.tensor(a, [m, k])
  const tb = tf.tensor(b, [k, n])
  tf.matMul(ta, tb).dispose()
  const tfMs = best(reps, () => tf.matMul(ta, tb).dispose())
  tf.dispose([ta, tb])
  const raw = flop / rawMs / 1e6
  const viaTf = flop / tfMs / 1e6
  peak = Math.max(peak, raw)
  console.log(
    `${`${m}×${k}×${n}`.padEnd(22)} ${raw.toFixed(1).padStart(10)}   ${viaTf.toFixed(1).padStart(17)}   ${((100 * viaTf) / raw).toFixed(0).padStart(4)}%`
  )
}
console.log(`measured sgemm peak: ${peak.toFixed(1)} GFLOP/s\n`)

// ---------------------------------------------------------------------------------------------------------------
// 2. Stage A projector training step

const D_IN = 768
const D_HID = 3072
const D_OUT = 2048
/** Forward + backward FLOPs of the GEMMs (no gradient for the input x): fwd 1×, layer 2 dW and dX, layer 1 dW. */
const stepFlop = 2 * BATCH * (2 * D_IN * D_HID + 3 * D_HID * D_OUT)

type Variant = "composite" | "fused"

interface Model {
  readonly vars: Array<tf.Variable>
  readonly loss: (variant: Variant) => tf.Scalar
  readonly dispose: () => void
}

const makeModel = (tag: string): Model => {
  const v = (name: string, shape: Array<number>, values: Float32Array) =>
    tf.variable(tf.tensor(values, shape), true, `${tag}/${name}`)
  const scale = (n: number, s: number) => fill(n, s).map((x) => x * 0.04)
  const w1 = v("w1", [D_IN, D_HID], scale(D_IN * D_HID, 11))
  const b1 = v("b1", [D_HID], new Float32Array(D_HID))
  const w2 = v("w2", [D_HID, D_OUT], scale(D_HID * D_OUT, 12))
  const b2 = v("b2", [D_OUT], new Float32Array(D_OUT))
  const gamma = v("gamma", [D_OUT], new Float32Array(D_OUT).fill(1))
  const beta = v("beta", [D_OUT], new Float32Array(D_OUT))
  const x = tf.tensor(fill(BATCH * D_IN, 13), [BATCH, D_IN])
  const h = tf.tensor(fill(BATCH * D_OUT, 14), [BATCH, D_OUT])
  const hn = tf.div(h, tf.norm(h, 2, -1, true))
  const loss = (variant: Variant): tf.Scalar =>
    tf.tidy(() => {
      let p: tf.Tensor
      if (variant === "composite") {
        const z = tf.add(tf.matMul(x, w1), b1)
        const a = tf.mul(tf.mul(z, 0.5), tf.add(tf.erf(tf.div(z, Math.SQRT2)), 1))
        const y = tf.add(tf.matMul(a, w2), b2)
        const { mean, variance } = tf.moments(y, -1, true)
        p = tf.add(tf.mul(tf.mul(tf.sub(y, mean), tf.rsqrt(tf.add(variance, 1e-5))), gamma), beta)
      } else {
        const a = gelu(tf.add(tf.matMul(x, w1), b1))
        p = layerNorm(tf.fused.matMul({ a, b: w2, bias: b2 }), gamma, beta, 1e-5)
      }
      const pn = tf.div(p, tf.norm(p, 2, -1, true))
      return tf.mean(tf.squaredDifference(pn, hn))
    })
  return { vars: [w1, b1, w2, b2, gamma, beta], loss, dispose: () => tf.dispose([w1, b1, w2, b2, gamma, beta, x, h, hn]) }
}

interface StepTimes {
  readonly total: Array<number>
  readonly grads: Array<number>
  readonly optim: Array<number>
  /** Loss at every step, warm-up included (step 1 is comparable across backends). */
  readonly loss: Array<number>
}

const train = async (backend: string, variant: Variant, steps: number, warmup: number): Promise<StepTimes> => {
  await tf.setBackend(backend)
  const model = makeModel(`${backend}-${variant}`)
  const opt = new AdamW(model.vars, { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 })
  const times: StepTimes = { total: [], grads: [], optim: [], loss: [] }
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now()
    const { value, grads } = tf.variableGrads(() => model.loss(variant))
    const lossValue = value.dataSync()[0]
    const t1 = performance.now()
    opt.step(grads, { gradScale: clipCoefficient(gradNorm(grads), 1.0) }) // clip-to-1.0 fused into AdamW
    tf.dispose([value, ...Object.values(grads)])
    const t2 = performance.now()
    times.loss.push(lossValue)
    if (s >= warmup) {
      times.total.push(t2 - t0)
      times.grads.push(t1 - t0)
      times.optim.push(t2 - t1)
    }
  }
  if (args.profile && backend === BLAS_BACKEND) {
    kernelTiming.byKernel = {}
    kernelTiming.enabled = true
    const { value, grads } = tf.variableGrads(() => model.loss(variant))
    tf.dispose([value, ...Object.values(grads)])
    kernelTiming.enabled = false
    const rows = Object.entries(kernelTiming.byKernel).sort((a, b) => b[1].ms - a[1].ms)
    const total = rows.reduce((a, [, r]) => a + r.ms, 0)
    console.log(`  kernel time, one forward+backward (${variant}): ${total.toFixed(0)} ms in kernels`)
    for (const [name, r] of rows.slice(0, 14)) {
      console.log(`    ${name.padEnd(22)} ${r.ms.toFixed(1).padStart(7)} ms  ${String(r.calls).padStart(3)} calls`)
    }
  }
  opt.dispose()
  model.dispose()
  return times
}

const report = (label: string, t: StepTimes): number => {
  const ms = median(t.total)
  const gflops = stepFlop / ms / 1e6
  console.log(
    `${label.padEnd(22)} ${ms.toFixed(0).padStart(7)} ms/step (min ${Math.min(...t.total).toFixed(0)}; ` +
      `fwd+bwd ${median(t.grads).toFixed(0)}, clip+AdamW ${median(t.optim).toFixed(0)})  ` +
      `${gflops.toFixed(1)} GFLOP/s = ${((100 * gflops) / peak).toFixed(0)}% of sgemm peak  ` +
      `loss step 1 ${t.loss[0].toExponential(5)}, step ${t.loss.length} ${t.loss[t.loss.length - 1].toExponential(4)}`
  )
  return ms
}

console.log(
  `Stage A projector step: batch ${BATCH}, ${D_IN}→${D_HID} GELU →${D_OUT} LayerNorm, L_dir loss, clip 1.0, AdamW; ` +
    `${(stepFlop / 1e9).toFixed(2)} GFLOP of GEMMs per step`
)
const fusedT = await train(BLAS_BACKEND, "fused", STEPS, 2)
const fusedMs = report("cpu-blas fused", fusedT)
const compT = await train(BLAS_BACKEND, "composite", STEPS, 2)
const compMs = report("cpu-blas composite", compT)
console.log(`  vs PyTorch (~${PYTORCH_MS} ms/step): fused ${(fusedMs / PYTORCH_MS).toFixed(2)}×, composite ${(compMs / PYTORCH_MS).toFixed(2)}×`)
if (!args["no-cpu"] && CPU_STEPS > 0) {
  const cpuT = await train("cpu", "composite", CPU_STEPS, 0)
  const cpuMs = report("stock cpu composite", cpuT)
  console.log(`  cpu-blas speed-up over stock cpu: fused ${(cpuMs / fusedMs).toFixed(0)}×, composite ${(cpuMs / compMs).toFixed(0)}×`)
}
