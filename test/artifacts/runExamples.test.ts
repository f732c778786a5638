/**
 * `llink compare` on real runs of the (shrunk) embedded default: per-example values rebuilt from a run's artifacts
 * give back every headline metric of its results.json; two runs that differ only in Stage A's seed share their eval
 * set, so every interval is paired, and the table marks each change real or noise by its interval; a run compared
 * with an identical one shows no change; runs with different splits are compared unpaired and say so, except on
 * a named test set (`eval.testSets`), which both runs scored whatever their split.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readRunExamples } from "../../src/artifacts/runExamples.ts"
import { flatten } from "../../src/pipeline/compare.ts"
import { SMALL_DEFAULT } from "../support/smallDefault.ts"

const repo = path.resolve(import.meta.dirname, "../..")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-compare-runs-"))
const env = { ...process.env, OPENAI_BASE_URL: "" }

const llink = (...args: Array<string>) => {
  const r = spawnSync(process.execPath, [path.join(repo, "bin/llink.mjs"), ...args], { cwd: dir, env, encoding: "utf8", timeout: 600_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const sample = path.join(repo, "datasets/km-en-sample/km-en.sample.tsv")
// a named test set: the sample's first 48 usable pairs (its noise lines are quarantined or dropped on the way)
const testSet = `eval.testSets=${JSON.stringify([{ name: "sample-head", corpus: { path: sample }, maxPairs: 48 }])}`
const run = (name: string, ...sets: Array<string>) => {
  const r = llink("run", "--run-dir", name, "--set", `cacheDir=${path.join(dir, "cache")}`, ...[`corpus.path=${sample}`, ...SMALL_DEFAULT, testSet, ...sets].flatMap((s) => ["--set", s]))
  if (r.code !== 0) throw new Error(`llink run ${name} exited ${r.code}:\n${r.err.slice(-3000)}`)
}

beforeAll(() => {
  run("a")
  run("a-again")
  run("b", "stageA.seed=18")
  run("c", "split.seed=18")
}, 900_000)
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

interface Interval {
  readonly name: string
  readonly against: string
  readonly paired: boolean
  readonly n: number
  readonly delta: number | null
  readonly ci: { readonly lo: number; readonly hi: number } | null
  readonly change: string
}

describe("llink compare on runs of the embedded default", () => {
  it("rebuilds every headline metric of results.json from the per-example values", async () => {
    const ex = await Effect.runPromise(readRunExamples(path.join(dir, "a")))
    const results = flatten(JSON.parse(fs.readFileSync(path.join(dir, "a", "results.json"), "utf8")))
    expect(ex.notes).toEqual([])
    const names = ex.metrics.map((m) => m.name)
    for (const want of ["retrieval.stageA.r1", "retrieval.full.mrr", "retrieval.finetune.r1", "retrieval.testSets.sample-head.stageA.r1", "retrieval.testSets.sample-head.mindmerger.mrr", "generation.llink.chrf", "generation.llink.numberMatchRate", "generation.base.chrf", "judge.overall.vsBase.preference", "judge.overall.vsFinetune.winRate"]) {
      expect(names).toContain(want)
    }
    for (const m of ex.metrics) {
      const all = Array.from({ length: m.table.ids.length }, (_, i) => i)
      const value = m.statistic(m.table.columns, all)
      const reported = results.get(m.name)
      // null where the report has none (a judge comparison with no decisive verdict on this small run)
      if (reported === null) expect(value, m.name).toBeNull()
      else {
        expect(typeof reported, m.name).toBe("number")
        expect(value, m.name).toBeCloseTo(reported as number, 9)
      }
    }
    expect(ex.metrics.filter((m) => typeof results.get(m.name) === "number").length).toBeGreaterThan(10)
  })

  it("paired intervals for a Stage A seed change, each marked by whether it excludes 0", () => {
    const r = llink("compare", "a", "b", "--json")
    expect(r.code, r.err).toBe(0)
    const doc = JSON.parse(r.out) as { intervals: ReadonlyArray<Interval>; intervalNotes: ReadonlyArray<string> }
    expect(doc.intervals.length).toBeGreaterThan(0)
    expect(doc.intervals.some((i) => i.name === "retrieval.stageA.r1")).toBe(true)
    for (const i of doc.intervals) {
      expect(i.paired, i.name).toBe(true)
      expect(i.ci, i.name).not.toBeNull()
      expect(i.change, i.name).toBe(i.ci!.lo > 0 || i.ci!.hi < 0 ? "real" : "noise")
      expect(i.ci!.lo, i.name).toBeLessThanOrEqual(i.delta!)
      expect(i.ci!.hi, i.name).toBeGreaterThanOrEqual(i.delta!)
    }
    console.log(`[compare] stageA.seed 17 → 18: ${doc.intervals.map((i) => `${i.name} ${i.delta!.toFixed(3)} [${i.ci!.lo.toFixed(3)}, ${i.ci!.hi.toFixed(3)}] ${i.change}`).join("; ")}`)
    const md = llink("compare", "a", "b").out
    expect(md).toContain("## Which changes are real")
    expect(md).toMatch(/paired bootstrap over the examples both runs scored/)
    expect(md).toMatch(/\| retrieval\.stageA\.r1 \| [^|]+ \| [^|]+ \| [−+0][^|]* \((real|noise)\) \|/)
  })

  it("an identical run: no metric changes, and with --all every interval is [0, 0], noise", () => {
    const r = llink("compare", "a", "a-again", "--json", "--all")
    const doc = JSON.parse(r.out) as { metrics: ReadonlyArray<{ deltas: ReadonlyArray<number | null> }>; intervals: ReadonlyArray<Interval> }
    const results = flatten(JSON.parse(fs.readFileSync(path.join(dir, "a", "results.json"), "utf8")))
    expect(doc.intervals.length).toBeGreaterThan(10)
    for (const i of doc.intervals) {
      expect(i.delta, i.name).toBe(results.get(i.name) === null ? null : 0)
      expect(i.change, i.name).toBe(i.ci === null ? "n/a" : "noise")
    }
    expect(llink("compare", "a", "a-again").out).toContain("No metric with per-example values differs")
  })

  it("different splits: the eval sets differ, so the intervals are unpaired and the table says so; the test set stays paired", () => {
    const r = llink("compare", "a", "c", "--json")
    const doc = JSON.parse(r.out) as { intervals: ReadonlyArray<Interval> }
    expect(doc.intervals.length).toBeGreaterThan(0)
    for (const i of doc.intervals) expect(i.paired, i.name).toBe(i.name.startsWith("retrieval.testSets."))
    // the two runs' projectors differ (another split), so the test set's MRR does
    expect(doc.intervals.some((i) => i.name === "retrieval.testSets.sample-head.stageA.mrr" && i.paired && i.n === 48)).toBe(true)
    expect(llink("compare", "a", "c").out).toContain("**the eval sets differ**")
  })
})
