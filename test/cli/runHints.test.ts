/** What `llink run` says to do next after a failure (src/cli/runHints.ts). */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { hintsForError, hintsForFailedRun, type RunInvocation, runCommand, shellWord } from "../../src/cli/runHints.ts"
import { ConfigError, LockError, MissingUpstreamError, UnknownStageError } from "../../src/pipeline/errors.ts"
import type { Manifest } from "../../src/pipeline/manifest.ts"
import type { RunReport, StageRunReport } from "../../src/pipeline/runner.ts"
import { tmpDir } from "../support/toy.ts"

const inv = (over: Partial<RunInvocation> = {}): RunInvocation => ({
  config: undefined,
  set: [],
  runDir: "runs/default",
  defaultRunDir: "runs/default",
  ...over
})

const manifest: Manifest = {
  manifestVersion: 1,
  createdAt: "x",
  updatedAt: "x",
  config: { path: null, digest: "d", overrides: [], value: {} },
  options: { only: null, until: null, force: [] },
  stages: {},
  tool: { llink: "0", node: "v22", effect: "4" }
}
const report = (stages: ReadonlyArray<StageRunReport>): RunReport => ({
  runDir: "/r",
  manifestPath: "/r/manifest.json",
  stages,
  failed: stages.some((s) => s.status === "failed"),
  manifest
})
const stage = (name: string, status: StageRunReport["status"], extra: Partial<StageRunReport> = {}): StageRunReport => ({
  stage: name,
  status,
  key: null,
  durationMs: 0,
  rows: {},
  ...extra
})

describe("hints after failed stages", () => {
  it("retry alone, rerun, --force the upstream whose cached file the error names, and the stage's config line", () => {
    const dir = tmpDir("hints")
    const cacheDir = path.join(dir, "cache")
    const configFile = path.join(dir, "llink.config.json")
    fs.writeFileSync(configFile, '{\n  "cacheDir": "cache",\n  "judge": {\n    "mode": "offline"\n  }\n}\n')
    const error = `${cacheDir}/generate/0123abcd/generations.parquet:4: generations row 3: column "bucket" should be "content" or "qa"`
    const r = report([
      stage("generate", "cached"),
      stage("judge", "failed", { error }),
      stage("report", "skipped", { reason: "upstream judge did not complete" })
    ])
    const hints = hintsForFailedRun(r, inv({ set: ["judge.margin=2"], runDir: "runs/x" }), { cacheDir, configFile, stages: ["generate", "judge", "report"] })
    expect(hints).toEqual([
      "next: the error names generate's cached output; if it is damaged, recompute it: npx llink run --set judge.margin=2 --run-dir runs/x --force generate",
      `next: judge's settings are at ${path.relative(process.cwd(), configFile)}:3`,
      "next: to retry judge alone (its upstream is cached): npx llink run --set judge.margin=2 --run-dir runs/x --only judge",
      "next: after fixing the cause, rerun: npx llink run --set judge.margin=2 --run-dir runs/x (cached stages are reused; the 1 stage skipped after the failure will run)"
    ])
  })

  it("a defect says it is a bug; the stage's own temporary folder is not an upstream; no failure, no hints", () => {
    const cacheDir = "/c"
    const own = hintsForFailedRun(
      report([stage("judge", "failed", { error: "/c/judge/.tmp-abc-1-2/judge.json: the document does not match" })]),
      inv(),
      { cacheDir, configFile: null, stages: ["judge"] }
    )
    expect(own.some((h) => h.includes("--force"))).toBe(false)
    const defect = hintsForFailedRun(report([stage("stageA", "failed", { error: "defect: TypeError: x is undefined\n    at f" })]), inv(), {
      cacheDir,
      configFile: null,
      stages: ["stageA"]
    })
    expect(defect[0]).toBe("next: stageA hit a bug in llink (a defect, not bad input): the stack is above; please report it")
    expect(hintsForFailedRun(report([stage("a", "ran")]), inv(), { cacheDir, configFile: null, stages: ["a"] })).toEqual([])
  })
})

describe("hints after errors that stop the run", () => {
  it("config: the line or the --set to fix, and llink status to check it", () => {
    const file = new ConfigError({ file: "/w/llink.config.json", path: "split.evalN", message: "llink.config.json:12: split.evalN: Expected a whole number ≥ 0, got -1" })
    expect(hintsForError(file, inv({ set: ["split.seed=3"] }), [])).toEqual([
      "next: edit llink.config.json:12, then check the config without running anything: npx llink status --set split.seed=3"
    ])
    const set = new ConfigError({ file: "/w/llink.config.json", path: "split.trian", message: `--set split.trian=1: split.trian: unknown field "trian"` })
    expect(hintsForError(set, inv({ set: ["split.seed=3", "split.trian=1"] }), [])).toEqual([
      "next: correct --set split.trian=1, then check the config without running anything: npx llink status --set split.seed=3"
    ])
  })

  it("lock: the holder's pid and another run directory; --only: --until first; a misspelt stage: the closest", () => {
    const lock = new LockError({ runDir: "/w/runs/default", holder: "pid 4242 on box since 2025", message: "locked" })
    expect(hintsForError(lock, inv(), [])).toEqual([
      "next: wait for that run to finish (ps -p 4242), or run into another directory: npx llink run --run-dir runs/default-2"
    ])
    const upstream = new MissingUpstreamError({ stage: "judge", upstream: "generate", artifact: "generations", message: "m" })
    expect(hintsForError(upstream, inv({ config: "configs/paper.json" }), [])).toEqual([
      "next: compute its upstream first: npx llink run --config configs/paper.json --until judge"
    ])
    const stages = ["retrieval", "retrievalFull", "stageA", "stageB"]
    expect(hintsForError(new UnknownStageError({ stage: "stagea", known: stages, message: "m" }), inv(), stages)).toEqual(["next: did you mean stageA?"])
    expect(hintsForError(new UnknownStageError({ stage: "zzzzzzzzzz", known: stages, message: "m" }), inv(), stages)).toEqual([])
    expect(hintsForError(new Error("other"), inv(), stages)).toEqual([])
  })

  it("suggested commands are pasteable shell", () => {
    expect(shellWord("corpus.path=/data/a b.tsv")).toBe("'corpus.path=/data/a b.tsv'")
    expect(shellWord(`report.title="it's"`)).toBe(`'report.title="it'\\''s"'`)
    expect(runCommand(inv({ set: ["a=1"] }), ["--force", "split"])).toBe("npx llink run --set a=1 --force split")
  })
})
