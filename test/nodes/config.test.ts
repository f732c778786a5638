/**
 * Every numeric config field carries its type and range, and the rules across fields are checked, when the config is
 * loaded: a bad value fails with file:line: field: rule, got value — and `llink run` runs nothing.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadConfig } from "../../src/nodes/config.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")

/** A config file with `section.field = value` on a line of its own; returns the folder and that line. */
const configWith = (section: string, field: string, value: unknown, others: Record<string, unknown> = {}) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-badcfg-"))
  const lines = ["{", `  "${section}": {`]
  for (const [k, v] of Object.entries(others)) lines.push(`    "${k}": ${JSON.stringify(v)},`)
  lines.push(`    "${field}": ${JSON.stringify(value)}`, "  }", "}")
  fs.writeFileSync(path.join(dir, "llink.config.json"), lines.join("\n"))
  return { dir, line: lines.length - 2 }
}

const loadError = (cwd: string) => Effect.runPromise(Effect.flip(loadConfig({ cwd })))

describe("config values fail at load, naming the file, line, field, value and rule", () => {
  const cases: ReadonlyArray<readonly [string, string, unknown, RegExp, Record<string, unknown>?]> = [
    ["stageA", "steps", -5, /Expected a whole number ≥ 1, got -5/],
    ["stageB", "microBatch", 2.5, /Expected an integer, got 2\.5/],
    ["stageA", "dropout", 1, /Expected a number in \[0, 1\), got 1/],
    ["clean", "minScriptShare", 1.5, /Expected a number in \[0, 1\], got 1\.5/],
    ["finetune", "lrLora", -0.1, /Expected a number ≥ 0, got -0\.1/],
    ["teacher", "maxTokens", 1, /Expected a whole number ≥ 2, got 1/],
    ["stageA", "hardNegatives", 2000, /must be ≤ stageA\.queueSize \(1024\), got 2000/, { queueSize: 1024 }],
    ["split", "evalN", 500, /must be ≤ split\.holdout \(100\)/, { holdout: 100 }],
    ["synth", "minForeignChars", 300, /must be ≤ synth\.maxForeignChars \(256\), got 300/]
  ]
  for (const [section, field, value, rule, others] of cases) {
    it(`${section}.${field} = ${JSON.stringify(value)}`, async () => {
      const { dir, line } = configWith(section, field, value, others)
      const error = await loadError(dir)
      expect(error._tag).toBe("ConfigError")
      expect(error.path).toBe(`${section}.${field}`)
      expect(error.message).toMatch(new RegExp(`^llink\\.config\\.json:${line}: ${section}\\.${field}: `))
      expect(error.message).toMatch(rule)
    })
  }

  it("a rule across sections points at its field (retrieval.n with split.evalN = 0)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-badcfg-"))
    fs.writeFileSync(path.join(dir, "llink.config.json"), `{\n  "split": { "evalN": 0 },\n  "retrieval": {\n    "n": 0\n  }\n}\n`)
    const error = await loadError(dir)
    expect(error.path).toBe("retrieval.n")
    expect(error.message).toMatch(/^llink\.config\.json:4: retrieval\.n: is 0 \(use split\.evalN\) while split\.evalN is 0 too/)
  })

  it("baselines without base or finetune fails at load, naming the field and the rule; the peers may go", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-badcfg-"))
    fs.writeFileSync(path.join(dir, "llink.config.json"), `{\n  "split": { "evalN": 10 },\n  "baselines": ["base", "langbridge"]\n}\n`)
    const error = await loadError(dir)
    expect(error.message).toMatch(/^llink\.config\.json:3: baselines: must include "base" and "finetune" \(the paper's comparisons; only the peers "langbridge" and "mindmerger" can be left out\), got \["base","langbridge"\]/)
    fs.writeFileSync(path.join(dir, "llink.config.json"), `{ "baselines": ["finetune", "base"] }\n`)
    const ok = await Effect.runPromise(loadConfig({ cwd: dir }))
    expect(ok.value.baselines).toEqual(["finetune", "base"])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("K is one field, models.slots: the old stageB.slots and tokstats.slots are unknown keys", async () => {
    for (const section of ["stageB", "tokstats"]) {
      const { dir } = configWith(section, "slots", 8)
      expect((await loadError(dir)).message).toMatch(new RegExp(`${section}\\.slots: unknown field "slots"`))
    }
  })

  it("the shipped configs load: configs/paper.json (with the paper's K = 8) and every corpus spec", async () => {
    const paper = await Effect.runPromise(loadConfig({ file: path.join(repoRoot, "configs/paper.json") }))
    expect(paper.value.models.slots).toBe(8)
    expect(paper.value.stageA.queueSize).toBe(32_768)
    const specs = path.join(repoRoot, "datasets/specs")
    for (const name of fs.readdirSync(specs).filter((f) => f.endsWith(".json"))) {
      await Effect.runPromise(loadConfig({ file: path.join(specs, name) }))
    }
  })

  it("llink run with a bad value stops before any stage: exit 1, the message, no cache and no manifest", () => {
    const { dir, line } = configWith("stageA", "steps", -5)
    const result = spawnSync(path.join(repoRoot, "node_modules/.bin/node"), [path.join(repoRoot, "src/cli/main.ts"), "run", "--run-dir", "run"], {
      cwd: dir,
      encoding: "utf8"
    })
    expect(result.status).toBe(1)
    expect(result.stderr).toContain(`llink.config.json:${line}: stageA.steps: Expected a whole number ≥ 1, got -5`)
    expect(fs.existsSync(path.join(dir, "runs"))).toBe(false)
    expect(fs.existsSync(path.join(dir, "run", "manifest.json"))).toBe(false)
  })
})
