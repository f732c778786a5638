/**
 * Reading tensors back to the host, the one way every backend supports: `await t.data()`. WebGPU in Node has no
 * synchronous read-back (tfjs's `dataSync` there needs an OffscreenCanvas), so model and stage code reads with
 * these helpers, and batches its per-step scalars into one read (`readScalars`) so a GPU waits once per step.
 *
 * `onHost()` says whether the current backend computes in this process's memory (`cpu`, `cpu-blas`, `wasm`): there
 * host-side algorithms (the fp16 queue's scoring, fused cross-entropy loops, in-place AdamW) are the fast path; on a
 * device backend (`webgpu`, `tensorflow`) the same work stays on the device.
 */
import * as tf from "@tensorflow/tfjs"
import { takeDeviceErrors } from "./webgpu.ts"

const HOST_BACKENDS = new Set(["cpu", "cpu-blas", "wasm"])

/** Whether the current tfjs backend keeps tensors in host memory. */
export const onHost = (): boolean => HOST_BACKENDS.has(tf.getBackend())

/** Fails when the WebGPU device reported an error since the last read (its results are not to be trusted). */
const checkDevice = (): void => {
  const errors = takeDeviceErrors()
  if (errors.length > 0) {
    throw new Error(`the GPU rejected work, so these results are wrong (${errors.length} error${errors.length === 1 ? "" : "s"}): ${errors[0].split("\n")[0]}`)
  }
}

/** A host copy of a float32 tensor's values. */
export const readFloat32 = async (t: tf.Tensor): Promise<Float32Array> => {
  const values = await t.data()
  checkDevice()
  return values instanceof Float32Array ? Float32Array.from(values) : Float32Array.from(values as ArrayLike<number>)
}

/** Int32 values (argmax results, indices). */
export const readInt32 = async (t: tf.Tensor): Promise<Int32Array> => {
  const values = await t.data()
  checkDevice()
  return values instanceof Int32Array ? Int32Array.from(values) : Int32Array.from(values as ArrayLike<number>)
}

/** The values of several scalars in one read (disposes nothing it was given). */
export const readScalars = async (scalars: ReadonlyArray<tf.Tensor>): Promise<Array<number>> => {
  if (scalars.length === 0) return []
  const stacked = tf.tidy(() => tf.stack(scalars.map((s) => tf.reshape(s, []))))
  try {
    const values = Array.from(await stacked.data())
    checkDevice()
    return values
  } finally {
    stacked.dispose()
  }
}

/** Runs `make` inside a tidy, reads the tensor it returns, frees it. */
export const readTidy = async (make: () => tf.Tensor): Promise<Float32Array> => {
  const t = tf.tidy(make)
  try {
    return await readFloat32(t)
  } finally {
    t.dispose()
  }
}
