import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { tmpDir } from "../support/toy.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeBin = path.resolve(here, "../../node_modules/.bin/node")

const llink = (cwd: string, ...args: Array<string>) => {
  const result = spawnSync(nodeBin, [path.join(here, "../support/fixtures/cliChild.ts"), ...args], { cwd, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe("llink CLI (end to end, toy stages)", () => {
  it("run, rerun, status, failure exit code and message, dag", () => {
    const cwd = tmpDir("cli")
    fs.writeFileSync(path.join(cwd, "llink.config.json"), JSON.stringify({ cacheDir: "cache", split: { seed: 5 } }, null, 2))

    const first = llink(cwd, "run")
    expect(first.code).toBe(0)
    expect(first.stdout.split("\n").slice(0, 3).map((l) => l.split(/\s+/).slice(0, 2).join(" "))).toEqual([
      "stage status",
      "seed ran",
      "check ran"
    ])
    expect(first.stdout).toContain("run dir: runs/default (manifest.json, artifacts/)")
    expect(fs.existsSync(path.join(cwd, "cache", "seed"))).toBe(true)
    expect(fs.existsSync(path.join(cwd, "runs", "default", "manifest.json"))).toBe(true)

    const second = llink(cwd, "run")
    expect(second.stdout).toMatch(/seed\s+cached/)
    expect(second.stdout).toMatch(/check\s+cached/)

    const status = llink(cwd, "status", "--set", "split.train=7")
    expect(status.code).toBe(0)
    expect(status.stdout).toMatch(/seed\s+up to date/)
    expect(status.stdout).toMatch(/check\s+will run\s+param train: 100000 → 7/)

    const failed = llink(cwd, "run", "--set", "split.train=0")
    expect(failed.code).toBe(1)
    expect(failed.stdout).toMatch(/check\s+failed/)
    expect(failed.stderr).toMatch(/^check failed: .*seed\.json:1: train must be positive$/m)
    // What to run next: the failed stage alone, the upstream whose cached file the error names, a plain rerun.
    expect(failed.stderr).toContain("next: to retry check alone (its upstream is cached): npx llink run --set split.train=0 --only check")
    expect(failed.stderr).toContain("recompute it: npx llink run --set split.train=0 --force seed")

    const badConfig = llink(cwd, "run", "--set", "split.trian=1")
    expect(badConfig.code).toBe(1)
    expect(badConfig.stderr).toContain(`error: --set split.trian=1: split.trian: unknown field "trian"`)
    expect(badConfig.stderr).toContain("next: correct --set split.trian=1, then check the config without running anything: npx llink status")

    const dag = llink(cwd, "dag")
    expect(dag.stdout.trim().split("\n")).toEqual(["graph TD", `  seed["seed"]`, `  check["check"]`, `  seed -->|"seed"| check`])
  })
})
