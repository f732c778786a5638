/**
 * Training steps on WebGPU equal those on cpu-blas (≤ 1e-4): three Stage A steps (shared-mean, and per-row with
 * the own-teacher exclusion — the device queue's −1e9 bias against the host queue's dropped negatives) and three
 * Stage B steps (L_SFT, the usage contrast's L_zero, the alignment terms, the gradient norm, validation). Each
 * backend runs in its own process (tfjs has one per process).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { differences, runSteps } from "../../support/steps.ts"
import { skipReason } from "../../support/webgpu.ts"

describe.skipIf(skipReason !== undefined)("training steps on WebGPU", () => {
  it("Stage A and Stage B steps give the losses and gradient norms of cpu-blas", { timeout: 900_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-webgpu-steps-"))
    const cpu = runSteps("blas", path.join(dir, "cpu"))
    const gpu = runSteps("webgpu", path.join(dir, "gpu"))
    expect(cpu["backend"]).toBe("cpu-blas")
    expect(gpu["backend"]).toBe("webgpu")
    const { backend: _c, ...cpuNumbers } = cpu
    const { backend: _g, ...gpuNumbers } = gpu
    console.log(`[webgpu] steps: ${JSON.stringify(gpuNumbers).slice(0, 400)}`)
    expect(differences(gpuNumbers, cpuNumbers)).toEqual([])
    // the steps did something: losses change from step to step
    const a = (cpu["stageA"] as { sharedMean: Array<{ loss: number }> }).sharedMean
    expect(a[0].loss).not.toBe(a[2].loss)
  })
})
