/**
 * The closing line CI reads never hides a failure as a skip: the reporter runs on fixture files in a child vitest
 * (a suite whose beforeAll throws, one whose afterAll throws, a file that throws while collected, and a passing
 * control), and each line is checked against what happened and against vitest's own exit code.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const fixtures = path.join(import.meta.dirname, "fixtures/reporter")
const vitest = path.resolve(import.meta.dirname, "../../node_modules/vitest/vitest.mjs")

const run = (file: string): { readonly line: string; readonly out: string; readonly status: number | null } => {
  const res = spawnSync(process.execPath, [vitest, "run", "--config", "vitest.config.ts"], {
    cwd: fixtures,
    env: { ...process.env, LLINK_FIXTURE: file, CI: "", LLINK_MAX_SKIPPED: "", LLINK_ALLOW_MISSING: "" },
    encoding: "utf8",
    timeout: 120_000
  })
  const out = `${res.stdout}\n${res.stderr}`
  const lines = res.stdout.trim().split("\n")
  return { line: lines[lines.length - 1] ?? "", out, status: res.status }
}

describe("the summary reporter", () => {
  it("counts the tests a failed beforeAll kept from running as failed", () => {
    const r = run("beforeAll.fixture.ts")
    expect(r.status).not.toBe(0)
    expect(r.line).toBe("1 passed, 2 failed, 1 skipped")
    expect(r.out).toContain("failed outside a test: beforeAll.fixture.ts > set up fails: the setup broke")
  })

  it("adds a failure for an afterAll that throws after its tests passed", () => {
    const r = run("afterAll.fixture.ts")
    expect(r.status).not.toBe(0)
    expect(r.line).toBe("2 passed, 1 failed, 0 skipped")
    expect(r.out).toContain("the teardown broke")
  })

  it("counts a file that throws while collected", () => {
    const r = run("import.fixture.ts")
    expect(r.status).not.toBe(0)
    expect(r.line).toBe("0 passed, 1 failed, 0 skipped")
  })

  it("passes a passing file through, skips as skips", () => {
    const r = run("passing.fixture.ts")
    expect(r.status).toBe(0)
    expect(r.line).toBe("1 passed, 0 failed, 1 skipped")
  })
})

describe("the skip ceiling CI sets", () => {
  it("turns skips past LLINK_MAX_SKIPPED into a failure", () => {
    const res = spawnSync(process.execPath, [vitest, "run", "--config", "vitest.config.ts"], {
      cwd: fixtures,
      env: { ...process.env, LLINK_FIXTURE: "passing.fixture.ts", CI: "", LLINK_MAX_SKIPPED: "0" },
      encoding: "utf8",
      timeout: 120_000
    })
    expect(res.status).not.toBe(0)
    expect(res.stdout).toContain("1 tests skipped where at most 0 may")
    expect(res.stdout.trim().split("\n").pop()).toBe("1 passed, 1 failed, 1 skipped")
  })
})
