/**
 * The commands a user types, on WebGPU against cpu-blas, each in its own process (tfjs has one backend per process):
 * - `llink forward` on the tiny checkpoints of `llink init-models`: the encoder's and the decoder's hidden states
 *   and the decoder's logits agree to 1e-4;
 * - `LLINK_BACKEND=webgpu llink run --until retrieval` on the embedded default: the encoder features, teacher
 *   states, every Stage A training step's loss and the held-out retrieval metrics agree with the cpu-blas run.
 * On software Vulkan (lavapipe) this is slow (about a minute for the run): correctness, not speed.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readMatrix } from "../../../src/formats/arrow/matrix.ts"
import { readTableAll } from "../../../src/formats/parquet/table.ts"
import { maxRelDiff, skipReason } from "../../support/webgpu.ts"
import { testSizeDefault } from "../../support/smallDefault.ts"

const repoRoot = path.resolve(import.meta.dirname, "../../..")

const llink = (backend: string, args: ReadonlyArray<string>): { stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [path.join(repoRoot, "bin/llink.mjs"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, LLINK_BACKEND: backend, OPENAI_BASE_URL: "" },
    maxBuffer: 256 << 20,
    timeout: 600_000
  })
  if (r.status !== 0) throw new Error(`llink ${args.join(" ")} on ${backend} exited ${r.status}:\n${r.stdout}\n${r.stderr}`)
  return { stdout: r.stdout, stderr: r.stderr }
}

interface Forward {
  readonly backend: string
  readonly hidden: Array<Array<number>>
  readonly logits?: Array<Array<number>>
}

const forward = (backend: string, dir: string, ids: ReadonlyArray<number>, logits: boolean): Forward =>
  JSON.parse(llink(backend, ["forward", "--model", dir, "--ids", ids.join(","), ...(logits ? ["--logits"] : [])]).stdout) as Forward

let tmp = ""
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-webgpu-cli-"))
})
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
})

describe.skipIf(skipReason !== undefined)("llink on WebGPU", () => {
  it("forward: hidden states and logits equal cpu-blas's (≤ 1e-4)", { timeout: 600_000 }, () => {
    const models = path.join(tmp, "models")
    llink("blas", ["init-models", "--preset", "tiny", "--out", models, "--seed", "5"])
    for (const [part, ids] of [["encoder", [0, 17, 5, 9, 2]], ["decoder", [128000, 9906, 1917, 11, 1633]]] as const) {
      const dir = path.join(models, part)
      const logits = part === "decoder"
      const gpu = forward("webgpu", dir, ids, logits)
      const cpu = forward("blas", dir, ids, logits)
      expect([gpu.backend, cpu.backend]).toEqual(["webgpu", "cpu-blas"])
      expect(gpu.hidden.length).toBe(ids.length)
      expect(maxRelDiff(gpu.hidden.flat(), cpu.hidden.flat())).toBeLessThanOrEqual(1e-4)
      if (logits) {
        expect(gpu.logits?.length).toBe(ids.length)
        expect(maxRelDiff((gpu.logits ?? []).flat(), (cpu.logits ?? []).flat())).toBeLessThanOrEqual(1e-4)
      }
    }
  })

  it("run --until retrieval on the embedded default: the numbers of cpu-blas", { timeout: 900_000 }, async () => {
    const run = (backend: string) => {
      const runDir = path.join(tmp, `run-${backend}`)
      const { stderr } = llink(backend, ["run", "--until", "retrieval", "--run-dir", runDir, "--set", `cacheDir=${path.join(tmp, `cache-${backend}`)}`, ...testSizeDefault(repoRoot).flatMap((s) => ["--set", s])])
      const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")) as {
        stages: Record<string, { status: string; outputs: Record<string, { path: string }> }>
      }
      const results = JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8")) as {
        retrieval: { stageA: { n: number; r1: number; mrr: number; chanceR1: number } }
      }
      return { stderr, manifest, stageA: results.retrieval.stageA }
    }
    const gpu = run("webgpu")
    const cpu = run("blas")
    for (const stage of ["encode", "teacher", "stageA", "retrieval"]) expect([stage, gpu.manifest.stages[stage].status]).toEqual([stage, "ran"])

    // frozen features: the encoder's pooled vectors and the teacher's states
    for (const [stage, output] of [["encode", "zF.train"], ["encode", "zF.holdout"], ["teacher", "hE.train"]] as const) {
      const a = await Effect.runPromise(readMatrix(gpu.manifest.stages[stage].outputs[output].path))
      const b = await Effect.runPromise(readMatrix(cpu.manifest.stages[stage].outputs[output].path))
      expect([output, maxRelDiff(a.data, b.data) <= 1e-4]).toEqual([output, true])
    }

    // every Stage A step's loss and gradient norm (training amplifies rounding, so 1e-3 over all steps)
    const steps = async (m: typeof gpu.manifest) => {
      const rows = await Effect.runPromise(readTableAll(m.stages.stageA.outputs["stageA.metrics"].path))
      return { loss: rows.map((r) => Number(r.loss)), gradNorm: rows.map((r) => Number(r.gradNorm)) }
    }
    const [sg, sc] = [await steps(gpu.manifest), await steps(cpu.manifest)]
    expect(sg.loss.length).toBe(sc.loss.length)
    expect(maxRelDiff(sg.loss, sc.loss)).toBeLessThanOrEqual(1e-3)
    expect(maxRelDiff(sg.gradNorm, sc.gradNorm)).toBeLessThanOrEqual(1e-3)

    console.log(`webgpu: Stage A R@1 ${gpu.stageA.r1} MRR ${gpu.stageA.mrr.toFixed(4)}; cpu-blas: R@1 ${cpu.stageA.r1} MRR ${cpu.stageA.mrr.toFixed(4)}`)
    expect(gpu.stageA.r1).toBeGreaterThan(5 * gpu.stageA.chanceR1)
    expect(Math.abs(gpu.stageA.r1 - cpu.stageA.r1)).toBeLessThanOrEqual(1 / cpu.stageA.n + 1e-9)
    expect(Math.abs(gpu.stageA.mrr - cpu.stageA.mrr)).toBeLessThanOrEqual(1e-2)
  })
})
