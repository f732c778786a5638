/**
 * The wasm backend (the fallback where no BLAS library loads) runs llink's training: the gradient of `gather` (a
 * kernel tfjs-backend-wasm 4.22 lacks, registered by src/backend/wasmKernels.ts) against a plain loop, and the first
 * Stage A and Stage B steps (the fixture of test/backend/webgpu/steps.test.ts, in its own process) against cpu-blas; the
 * matrix products with a transposed operand (which llink's BatchMatMul sends to XNNPACK after a transpose) against
 * a float64 loop.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { describe, expect, it } from "vitest"
import { initBackend } from "../../src/backend/select.ts"
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

  it("matrix products with transposed operands equal a float64 loop (XNNPACK and the stock batched path)", async () => {
    await initBackend("wasm")
    const fill = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.37) * 0.9)
    const cases: Array<{ a: Array<number>; b: Array<number>; ta: boolean; tb: boolean }> = [
      { a: [7, 13], b: [13, 9], ta: false, tb: false },
      { a: [7, 13], b: [9, 13], ta: false, tb: true }, // x·Wᵀ, the LM head's shape
      { a: [13, 7], b: [13, 9], ta: true, tb: false }, // a weight gradient
      { a: [13, 7], b: [9, 13], ta: true, tb: true },
      { a: [1, 6, 11], b: [1, 5, 11], ta: false, tb: true }, // a batch of one
      { a: [3, 6, 11], b: [3, 5, 11], ta: false, tb: true }, // batched: the stock path
      { a: [2, 3, 11, 6], b: [2, 3, 11, 5], ta: true, tb: false }
    ]
    for (const [n, c] of cases.entries()) {
      const av = fill(c.a.reduce((x, y) => x * y, 1), n)
      const bv = fill(c.b.reduce((x, y) => x * y, 1), 100 + n)
      const got = (await tf.matMul(tf.tensor(av, c.a), tf.tensor(bv, c.b), c.ta, c.tb).data()) as Float32Array
      const r = c.a.length
      const batch = c.a.slice(0, -2).reduce((x, y) => x * y, 1)
      const [ar, ac] = c.a.slice(-2)
      const [br, bc] = c.b.slice(-2)
      const M = c.ta ? ac : ar
      const K = c.ta ? ar : ac
      const N = c.tb ? br : bc
      expect(got.length, `case ${n}`).toBe(batch * M * N)
      let worst = 0
      for (let p = 0; p < batch; p++) {
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let sum = 0
            for (let k = 0; k < K; k++) {
              const x = c.ta ? av[p * ar * ac + k * ac + i] : av[p * ar * ac + i * ac + k]
              const y = c.tb ? bv[p * br * bc + j * bc + k] : bv[p * br * bc + k * bc + j]
              sum += x * y
            }
            worst = Math.max(worst, Math.abs(got[(p * M + i) * N + j] - sum))
          }
        }
      }
      expect(worst, `case ${n}: ${JSON.stringify(c)} (rank ${r})`).toBeLessThan(1e-5)
    }
  })

  it("Stage A and Stage B steps give the losses and gradient norms of cpu-blas", { timeout: 600_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-wasm-steps-"))
    try {
      const cpu = runSteps("blas", path.join(dir, "cpu"))
      const wasm = runSteps("wasm", path.join(dir, "wasm"))
      expect([cpu["backend"], wasm["backend"]]).toEqual(["cpu-blas", "wasm"])
      const { backend: _c, ...cpuNumbers } = cpu
      const { backend: _w, ...wasmNumbers } = wasm
      // XNNPACK sums in another order than OpenBLAS: over Stage B's three optimizer steps (lr 1e-2) the loss terms
      // drift apart by up to 1.4e-4 relative (measured); one step agrees to 1e-4
      expect(differences(wasmNumbers, cpuNumbers, "", 5e-4)).toEqual([])
      expect(differences((wasmNumbers["stageB"] as Array<unknown>)[0], (cpuNumbers["stageB"] as Array<unknown>)[0])).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
