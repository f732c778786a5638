/**
 * Training steps on WebGPU equal those on cpu-blas (≤ 1e-4): three Stage A steps (shared-mean, and per-row with
 * the own-teacher exclusion — the device queue's −1e9 bias against the host queue's dropped negatives) and three
 * Stage B steps (L_SFT, the usage contrast's L_zero, the alignment terms, the gradient norm, validation). Each
 * backend runs in its own process (tfjs has one per process).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { skipReason } from "./support.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")

const steps = (backend: string, dir: string): Record<string, unknown> => {
  const r = spawnSync(path.join(repoRoot, "node_modules/.bin/node"), [path.join(import.meta.dirname, "fixtures/steps.ts"), dir], {
    encoding: "utf8",
    env: { ...process.env, LLINK_BACKEND: backend },
    timeout: 600_000
  })
  if (r.status !== 0) throw new Error(`steps on ${backend} exited ${r.status}:\n${r.stderr}`)
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>
}

/** Every number of `a` against the same place in `b`: the worst relative (above 1) / absolute difference. */
const worst = (a: unknown, b: unknown, at = ""): Array<string> => {
  if (typeof a === "number" && typeof b === "number") {
    const d = Math.abs(a - b) / Math.max(1, Math.abs(b))
    return d <= 1e-4 ? [] : [`${at}: ${a} vs ${b}`]
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b ? [] : [`${at}: ${String(a)} vs ${String(b)}`]
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  return [...keys].flatMap((k) => worst((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`))
}

describe.skipIf(skipReason !== undefined)("training steps on WebGPU", () => {
  it("Stage A and Stage B steps give the losses and gradient norms of cpu-blas", { timeout: 900_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-webgpu-steps-"))
    const cpu = steps("blas", path.join(dir, "cpu"))
    const gpu = steps("webgpu", path.join(dir, "gpu"))
    expect(cpu["backend"]).toBe("cpu-blas")
    expect(gpu["backend"]).toBe("webgpu")
    const { backend: _c, ...cpuNumbers } = cpu
    const { backend: _g, ...gpuNumbers } = gpu
    console.log(`[webgpu] steps: ${JSON.stringify(gpuNumbers).slice(0, 400)}`)
    expect(worst(gpuNumbers, cpuNumbers)).toEqual([])
    // the steps did something: losses change from step to step
    const a = (cpu["stageA"] as { sharedMean: Array<{ loss: number }> }).sharedMean
    expect(a[0].loss).not.toBe(a[2].loss)
  })
})
