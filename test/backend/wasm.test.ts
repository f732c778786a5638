/**
 * The wasm backend (the fallback where no BLAS library loads) runs llink's training: the gradient of `gather` (a
 * kernel tfjs-backend-wasm 4.22 lacks, registered by src/backend/wasmKernels.ts) against a plain loop, and the first
 * Stage A and Stage B steps (the fixture of test/webgpu/steps.test.ts, in its own process) against cpu-blas.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { initBackend } from "../../src/backend/service.ts"
import { differences, runSteps } from "../support/steps.ts"

describe("the wasm backend", () => {
  it("differentiates gather (UnsortedSegmentSum) as a plain loop does", async () => {
    await initBackend("wasm")
    expect(tf.getBackend()).toBe("wasm")
    const rows = 5
    const cols = 3
    const xs = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i + 1))
    const idx = [4, 0, 4, 2, 4, 1]
    const w = Float32Array.from({ length: idx.length * cols }, (_, i) => Math.cos(i))
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gather(x, tf.tensor1d(idx, "int32")), tf.tensor2d(w, [idx.length, cols]))))
    const got = await g(tf.tensor2d(xs, [rows, cols])).data()
    const want = new Float32Array(rows * cols)
    idx.forEach((r, i) => {
      for (let c = 0; c < cols; c++) want[r * cols + c] += w[i * cols + c]
    })
    expect(Array.from(got).map((v) => +v.toFixed(5))).toEqual(Array.from(want).map((v) => +v.toFixed(5)))
    // row 3 is never gathered: its gradient is exactly zero
    expect(Array.from(got.slice(3 * cols, 4 * cols))).toEqual([0, 0, 0])
  })

  it("Stage A and Stage B steps give the losses and gradient norms of cpu-blas", { timeout: 600_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-wasm-steps-"))
    try {
      const cpu = runSteps("blas", path.join(dir, "cpu"))
      const wasm = runSteps("wasm", path.join(dir, "wasm"))
      expect([cpu["backend"], wasm["backend"]]).toEqual(["cpu-blas", "wasm"])
      const { backend: _c, ...cpuNumbers } = cpu
      const { backend: _w, ...wasmNumbers } = wasm
      expect(differences(wasmNumbers, cpuNumbers)).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
