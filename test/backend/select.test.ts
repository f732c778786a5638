// Backend selection: forced choices that cannot run are tagged errors (never a silent fallback), auto picks the
// best available, the Effect layer, and a missing OpenBLAS (bad LLINK_OPENBLAS) in a child process.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { BLAS_BACKEND } from "../../src/backend/cpuBlas/shared.ts"
import { BackendUnavailableError, initBackend, parseBackendChoice } from "../../src/backend/select.ts"
import { TensorBackend } from "../../src/backend/tensorBackend.ts"
import { doctorReport } from "../../src/cli/doctor.ts"
import { blasMissing } from "../support/backend.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")
const installed = (pkg: string): boolean => fs.existsSync(path.join(repoRoot, "node_modules", pkg, "package.json"))

const savedEnv = process.env.LLINK_BACKEND
afterEach(() => {
  if (savedEnv === undefined) delete process.env.LLINK_BACKEND
  else process.env.LLINK_BACKEND = savedEnv
})

describe("backend selection", () => {
  it.skipIf(installed("@tensorflow/tfjs-node"))("LLINK_BACKEND=node without tfjs-node is a tagged error", async () => {
    process.env.LLINK_BACKEND = "node"
    const err = await initBackend().then(
      () => undefined,
      (e: unknown) => e
    )
    expect(err).toBeInstanceOf(BackendUnavailableError)
    expect(err).toMatchObject({ _tag: "BackendUnavailableError", requested: "node" })
    expect(String((err as BackendUnavailableError).message)).toMatch(/@tensorflow\/tfjs-node is not installed/)
  })

  it.skipIf(installed("@tensorflow/tfjs-node-gpu"))("asking for node-gpu without it is a tagged error", async () => {
    await expect(initBackend("node-gpu")).rejects.toMatchObject({ _tag: "BackendUnavailableError", requested: "node-gpu" })
  })

  it("an unknown LLINK_BACKEND value is a tagged error", async () => {
    expect(() => parseBackendChoice("tpu")).toThrow(/unknown backend 'tpu'/)
    process.env.LLINK_BACKEND = "tpu"
    await expect(initBackend()).rejects.toMatchObject({ _tag: "BackendUnavailableError", requested: "tpu" })
    expect(parseBackendChoice(" BLAS ")).toBe("blas")
    expect(parseBackendChoice("")).toBe("auto")
  })

  it("cpu is always available when asked for", async () => {
    const info = await initBackend("cpu")
    expect(info).toMatchObject({ choice: "cpu", tfBackend: "cpu", blas: undefined })
  })

  it.skipIf(blasMissing !== undefined)("blas when asked for, and auto picks it when tfjs-node is absent", async () => {
    const info = await initBackend("blas")
    expect(info.tfBackend).toBe(BLAS_BACKEND)
    expect(info.blas?.threads).toBeGreaterThan(0)
    expect(info.description).toContain(info.blas?.path ?? "?")
    if (!installed("@tensorflow/tfjs-node") && !installed("@tensorflow/tfjs-node-gpu")) {
      delete process.env.LLINK_BACKEND
      const auto = await initBackend()
      expect(auto.choice).toBe("blas")
      expect(auto.reason).toMatch(/auto: node-gpu: .*not installed.*; node: .*not installed/)
    }
  })

  it.skipIf(installed("@tensorflow/tfjs-node"))("the Effect layer fails with the tagged error", async () => {
    const exit = await Effect.runPromiseExit(
      TensorBackend.use((b) => b.ready).pipe(Effect.map((b) => b.choice),Effect.provide(TensorBackend.layerFor("node")))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(JSON.stringify(exit)).toContain("BackendUnavailableError")
    const ok = await Effect.runPromise(
      TensorBackend.use((b) => b.ready).pipe(Effect.map((b) => [b.choice, b.tf.getBackend()]),Effect.provide(TensorBackend.layerFor("cpu")))
    )
    expect(ok).toEqual(["cpu", "cpu"])
  })

  it("a bad LLINK_OPENBLAS path: BlasUnavailableError naming the path; LLINK_BACKEND=blas then fails", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-blas-"))
    const script = path.join(dir, "probe.ts")
    fs.writeFileSync(
      script,
      [
        `import { tryLoadBlas } from ${JSON.stringify(path.join(repoRoot, "src/backend/blas.ts"))}`,
        `import { initBackend } from ${JSON.stringify(path.join(repoRoot, "src/backend/select.ts"))}`,
        `const r = tryLoadBlas()`,
        `console.log(JSON.stringify({ tag: r._tag ?? "loaded", tried: r.tried ?? [] }))`,
        `await initBackend().then(() => console.log("started"), (e) => console.log(JSON.stringify({ initTag: e._tag, msg: e.message })))`
      ].join("\n")
    )
    const out = execFileSync(process.execPath, [script], {
      cwd: repoRoot,
      env: { ...process.env, LLINK_OPENBLAS: "/nonexistent/libopenblas.so.0", LLINK_BACKEND: "blas" },
      encoding: "utf8"
    })
    const [first, second] = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(first.tag).toBe("BlasUnavailableError")
    expect(JSON.stringify(first.tried)).toContain("/nonexistent/libopenblas.so.0")
    expect(second.initTag).toBe("BackendUnavailableError")
    expect(String(second.msg)).toMatch(/backend 'blas' forced by LLINK_BACKEND=blas is not available/)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it.skipIf(blasMissing !== undefined)("doctor reports the backend, OpenBLAS details and a passing sgemm check", async () => {
    delete process.env.LLINK_BACKEND
    const report = await doctorReport()
    const text = report.lines.join("\n")
    expect(report.ok).toBe(true)
    expect(text).toMatch(/^node {10}v\d+/m)
    expect(text).toMatch(/openblas {6}\S+/)
    expect(text).toMatch(/sgemm 256³ {4}ok: max \|diff\|/)
  })
})
