/**
 * A fresh machine without OpenBLAS (hidden with `unshare -m` and bind mounts, see test/support/hideBlas.ts): the
 * embedded default up to retrieval runs on the wasm backend, says so once at the start with the command that fixes it,
 * and Stage A still learns (R@1 above 5× chance). The whole default on wasm is timed in `npm run bench -- fallback`.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { hideBlasUnavailable, runWithoutBlas } from "../support/hideBlas.ts"
import { testSizeDefault } from "../support/smallDefault.ts"
import { skipFor } from "../support/envGate.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")
const skip = skipFor("root", hideBlasUnavailable())

describe.skipIf(skip)("the embedded default without OpenBLAS", () => {
  it("falls back to wasm, says so with the fix, and Stage A learns", { timeout: 900_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-noblas-run-"))
    try {
      const runDir = path.join(dir, "run")
      const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_BASE_URL: "" }
      delete env.LLINK_BACKEND
      const r = runWithoutBlas(
        [process.execPath, path.join(repoRoot, "bin/llink.mjs"), "run", "--until", "retrieval", "--run-dir", runDir, "--set", `cacheDir=${path.join(dir, "cache")}`, ...testSizeDefault(repoRoot).flatMap((s) => ["--set", s])],
        { cwd: repoRoot, env, timeoutMs: 880_000 }
      )
      if (r.status !== 0) throw new Error(`llink run exited ${r.status}:\n${r.stdout}\n${r.stderr}`)
      const notices = r.stderr.split("\n").filter((l) => l.startsWith("notice: "))
      expect(notices.length).toBe(1)
      expect(notices[0]).toMatch(/^notice: backend wasm .*slower than cpu-blas/)
      expect(notices[0]).toContain("apt-get install libopenblas0-pthread")
      const results = JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8")) as {
        retrieval: { stageA: { r1: number; chanceR1: number } }
      }
      console.log(`[noBlas] Stage A R@1 ${results.retrieval.stageA.r1} (chance ${results.retrieval.stageA.chanceR1}) on wasm`)
      expect(results.retrieval.stageA.r1).toBeGreaterThan(5 * results.retrieval.stageA.chanceR1)
      expect(r.stdout + r.stderr).toMatch(/\(wasm\)/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
