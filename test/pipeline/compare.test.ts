/**
 * `llink compare`: the comparison of hand-made run snapshots (only what differs by default, everything with `all`,
 * deltas, absent values, the paper's constants left out), and the command end to end on two toy runs that differ in
 * `split.seed` (Markdown, JSON, CSV, errors).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { formatCompareCsv, formatCompareMarkdown, formatNumber } from "../../src/cli/compare.ts"
import { compareRuns, flatten, type RunSnapshot } from "../../src/pipeline/compare.ts"
import type { Manifest, ManifestStage } from "../../src/pipeline/manifest.ts"
import { tmpDir } from "../support/toy.ts"

const tool = { llink: "0.0.0", node: "v22", effect: "4.1.0" }
const stage = (key: string | null, status: ManifestStage["status"] = "ran"): ManifestStage => ({
  key,
  status,
  version: "1",
  params: {},
  inputs: {},
  externalInputs: {},
  outputs: {},
  metrics: {},
  durationMs: 1,
  recordedAt: "2025-01-01T00:00:00.000Z",
  tool
})
const manifest = (config: unknown, stages: Record<string, ManifestStage>): Manifest => ({
  manifestVersion: 1,
  createdAt: "2025-01-01T00:00:00.000Z",
  updatedAt: "2025-01-01T00:00:00.000Z",
  config: { path: null, digest: "d", overrides: [], value: config },
  options: { only: null, until: null, force: [] },
  stages,
  tool
})
const snapshot = (label: string, m: Manifest, results: unknown): RunSnapshot => ({ dir: `/runs/${label}`, label, manifest: m, results })

describe("compareRuns", () => {
  const a = snapshot(
    "a",
    manifest({ split: { seed: 17, train: 400 }, corpus: { langs: ["en", "km"] } }, { split: stage("k1"), clean: stage("c", "cached") }),
    { retrieval: { stageA: { r1: 0.22, r5: 0.46 }, paper: { r1: 0.43 } }, judge: null, partial: { missing: ["judge"] } }
  )
  const b = snapshot(
    "b",
    manifest({ split: { seed: 18, train: 400 }, corpus: { langs: ["en", "km"] } }, { split: stage("k2"), clean: stage("c", "cached"), judge: stage("j") }),
    { retrieval: { stageA: { r1: 0.17, r5: 0.46 }, paper: { r1: 0.43 } }, judge: { preference: 0.5 }, partial: { missing: ["judge"] } }
  )

  it("keeps only what differs: the changed parameter, the changed metrics, the stages whose key differs", () => {
    const c = compareRuns([a, b])
    expect(c.params.map((r) => [r.name, ...r.values])).toEqual([["split.seed", 17, 18]])
    expect(c.metrics.map((r) => r.name)).toEqual(["retrieval.stageA.r1", "judge", "judge.preference"])
    expect(c.metrics[0].deltas[0]).toBeCloseTo(-0.05, 12)
    // null in a, an object in b: both rows differ; a value absent from a run is undefined there.
    expect(c.metrics[1].values).toEqual([null, undefined])
    expect(c.metrics[2].values).toEqual([undefined, 0.5])
    expect(c.metrics[2].deltas).toEqual([null])
    expect(c.stages.map((s) => [s.stage, ...s.keys])).toEqual([["split", "k1", "k2"], ["judge", undefined, "j"]])
  })

  it("with all: every row, still without the paper's constants", () => {
    const c = compareRuns([a, b], { all: true })
    expect(c.params.map((r) => r.name)).toEqual(["split.seed", "split.train", "corpus.langs"])
    expect(c.params[2].values).toEqual(['["en","km"]', '["en","km"]'])
    expect(c.metrics.map((r) => r.name)).toEqual(["retrieval.stageA.r1", "retrieval.stageA.r5", "judge", "partial.missing", "judge.preference"])
    expect(c.stages.map((s) => s.stage)).toEqual(["split", "clean", "judge"])
  })

  it("three runs: deltas against the first; a run without results.json has no metrics", () => {
    const none = snapshot("c", manifest({ split: { seed: 17, train: 400 } }, {}), undefined)
    const c = compareRuns([a, b, none])
    const r1 = c.metrics.find((r) => r.name === "retrieval.stageA.r1")!
    expect(r1.values).toEqual([0.22, 0.17, undefined])
    expect(r1.deltas.map((d) => (d === null ? null : Number(d.toFixed(12))))).toEqual([-0.05, null])
    expect(c.runs[2].hasResults).toBe(false)
    // corpus.langs is absent from c's config: it differs now.
    expect(c.params.map((r) => r.name)).toEqual(["split.seed", "corpus.langs"])
    const md = formatCompareMarkdown(c)
    expect(md).toContain("| metric | a | b | c | Δ b | Δ c |")
    expect(md).toContain("| retrieval.stageA.r1 | 0.22 | 0.17 | – | −0.05 |  |")
    expect(md).toContain("(no results.json: no metrics)")
  })

  it("flattens nested objects to dotted paths and formats numbers compactly", () => {
    expect([...flatten({ a: { b: 1, c: { d: "x" } }, e: [1, 2], f: {} })]).toEqual([["a.b", 1], ["a.c.d", "x"], ["e", "[1,2]"], ["f", "{}"]])
    expect([formatNumber(17), formatNumber(0.339234377), formatNumber(-0.0000731), formatNumber(14.54)]).toEqual(["17", "0.3392", "-7.310e-5", "14.54"])
  })
})

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeBin = path.resolve(here, "../../node_modules/.bin/node")
const llink = (cwd: string, ...args: Array<string>) => {
  const result = spawnSync(nodeBin, [path.join(here, "../support/fixtures/cliChild.ts"), ...args], { cwd, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe("llink compare (end to end, toy stages)", () => {
  it("two runs differing in split.seed: that parameter, the changed metrics and no others; JSON, CSV, errors", () => {
    const cwd = tmpDir("compare")
    fs.writeFileSync(path.join(cwd, "llink.config.json"), JSON.stringify({ cacheDir: "cache" }))
    expect(llink(cwd, "run", "--run-dir", "s17", "--set", "split.seed=17").code).toBe(0)
    expect(llink(cwd, "run", "--run-dir", "s18", "--set", "split.seed=18").code).toBe(0)
    // results.json as the report writes it: one metric changed with the seed, one not, the paper's numbers.
    const results = (r1: number) => ({ retrieval: { stageA: { r1, r5: 0.46 }, paper: { stageA: { r1: 0.43 } } }, data: { kept: 594 } })
    fs.writeFileSync(path.join(cwd, "s17", "results.json"), JSON.stringify(results(0.22)))
    fs.writeFileSync(path.join(cwd, "s18", "results.json"), JSON.stringify(results(0.17)))

    const md = llink(cwd, "compare", "s17", "s18")
    expect(md.code).toBe(0)
    expect(md.stdout).toContain("# llink compare: s17 vs s18")
    const rows = md.stdout.split("\n").filter((l) => l.startsWith("| ") && !/^\| (---|parameter|metric|stage) /.test(l))
    expect(rows[0]).toBe("| split.seed | 17 | 18 |")
    expect(rows[1]).toBe("| retrieval.stageA.r1 | 0.22 | 0.17 | −0.05 |")
    // Both toy stages depend on the seed; nothing else is listed.
    expect(rows.slice(2).map((r) => r.split(" | ")[0])).toEqual(["| seed", "| check"])
    expect(rows).toHaveLength(4)

    const json = JSON.parse(llink(cwd, "compare", "s17", "s18", "--json").stdout)
    expect(json.params).toEqual([{ name: "split.seed", values: [17, 18] }])
    expect(json.metrics.map((m: { name: string }) => m.name)).toEqual(["retrieval.stageA.r1"])

    const csv = llink(cwd, "compare", "s17", "s18", "--csv", "--all").stdout.trim().split("\n")
    expect(csv[0]).toBe("section,name,s17,s18,delta s18,ci_lo s18,ci_hi s18,change s18,paired s18")
    expect(csv).toContain("param,split.seed,17,18,,,,,")
    expect(csv).toContain("metric,data.kept,594,594,0,,,,")
    expect(csv.filter((l) => l.startsWith("metric,")).map((l) => l.split(",")[1])).toEqual(["retrieval.stageA.r1", "retrieval.stageA.r5", "data.kept"])
    expect(csv.filter((l) => l.startsWith("stage,"))).toHaveLength(2)

    const missing = llink(cwd, "compare", "s17", "nowhere")
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("error: nowhere: no manifest.json")
    expect(llink(cwd, "compare", "s17").code).not.toBe(0)
    expect(formatCompareCsv({ runs: [], all: false, params: [{ name: "a,b", values: ['say "x"'], deltas: [] }], metrics: [], stages: [], intervals: [], intervalNotes: [] }))
      .toBe('section,name\nparam,"a,b","say ""x"""')
  })
})
