/**
 * Shared by the WebGPU tests: whether an adapter exists here (the tests skip with a clear message when not), and
 * running the same computation on two backends of this process from host inputs, comparing the host results.
 *
 * tfjs has one current backend per process; a tensor made on one backend and read on another would be moved with a
 * synchronous read, which WebGPU cannot do in Node. So every computation here starts from host arrays on the backend
 * it runs on and ends with `await data()` there.
 */
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/select.ts"
import { probeWebgpu } from "../../src/backend/webgpu.ts"
import { skipFor } from "./envGate.ts"

export const webgpuProbe = await probeWebgpu()
const missing = webgpuProbe.ok
  ? undefined
  : `no WebGPU adapter here (${webgpuProbe.why}); .ci/run installs Mesa 25's lavapipe so CI runs these`
/** Why the WebGPU tests skip here (never under CI, where a missing adapter fails them), or undefined. */
export const skipReason = skipFor("lavapipe", missing) ? missing : undefined

/** The largest |a − b| / max(1, |b|) over all entries (relative above 1, absolute below). */
export const maxRelDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity
  let worst = 0
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]))
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d
  }
  return worst
}

let started: Promise<void> | undefined
/** Registers both backends once (cpu-blas first, then webgpu; webgpu stays current). */
const start = (): Promise<void> => {
  started ??= (async () => {
    await initBackend("blas")
    await initBackend("webgpu")
  })()
  return started
}

/** Runs `fn` on `backend` and returns every output's values (host). */
export const runOn = async (
  backend: "cpu-blas" | "webgpu",
  fn: () => tf.Tensor | ReadonlyArray<tf.Tensor>
): Promise<Array<Float32Array | Int32Array>> => {
  await start()
  await tf.setBackend(backend)
  if (tf.getBackend() !== backend) throw new Error(`could not switch to ${backend} (current: ${tf.getBackend()})`)
  const out = tf.tidy(() => {
    const r = fn()
    return Array.isArray(r) ? [...r] : [r as tf.Tensor]
  })
  try {
    const values: Array<Float32Array | Int32Array> = []
    for (const t of out) {
      const v = await t.data()
      values.push(v instanceof Int32Array ? Int32Array.from(v) : Float32Array.from(v as ArrayLike<number>))
    }
    return values
  } finally {
    tf.dispose(out)
  }
}
