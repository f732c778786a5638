/**
 * Code is part of every stage's cache key (DVC users expect it): in a temporary copy of the project, a small run,
 * then an edit of a file only `stageB` uses and of one `encode` and `teacher` share. `llink status` names each file
 * and marks exactly those stages (and, as blocked, what follows them) stale; the rerun reruns exactly those three —
 * the edits are comments, so their outputs are byte-identical and everything downstream stays cached.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { stages } from "../../src/nodes/index.ts"
import { openSourceGraph } from "../../src/pipeline/sourceGraph.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")
const nodeBin = path.join(repoRoot, "node_modules/.bin/node")

const STAGE_B_ONLY = "src/nodes/stageB/work.ts"
const SHARED = "src/artifacts/matrixJob.ts"

/** A small but complete run: every stage, tiny sizes. */
const SMALL = {
  cacheDir: "cache",
  corpus: { path: path.join(repoRoot, "datasets/km-en-sample/km-en.sample.tsv") },
  split: { train: 160, holdout: 48, evalN: 40 },
  models: { tinyTokenizerPairs: 160 },
  stageA: { steps: 8, microBatch: 16, accumulation: 1, warmupSteps: 2, queueSize: 64, hardNegatives: 8, checkpointEvery: 0, evalEvery: 0 },
  synth: { mode: "offline", train: 24, val: 8, evalPerBucket: 4 },
  stageB: { maxSteps: 2, microBatch: 4, accumulation: 1, evalEvery: 0, checkpointEvery: 0, valMaxRows: 4, maxSeqLen: 96 },
  finetune: { maxSteps: 2, microBatch: 4, accumulation: 1, evalEvery: 0, checkpointEvery: 0, valMaxRows: 4, maxSeqLen: 96 },
  langbridge: { maxSteps: 2, microBatch: 4, accumulation: 1, evalEvery: 0, checkpointEvery: 0, valMaxRows: 4, maxSeqLen: 96 },
  mindmerger: { maxSteps: 2, mappingMaxSteps: 2, mappingRows: 16, microBatch: 4, accumulation: 1, evalEvery: 0, checkpointEvery: 0, valMaxRows: 4, maxSeqLen: 96 },
  generate: { maxNewTokens: 4, batchSize: 8 },
  judge: { mode: "offline" }
}

const copyProject = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-codekey-"))
  fs.cpSync(path.join(repoRoot, "src"), path.join(dir, "src"), { recursive: true })
  fs.copyFileSync(path.join(repoRoot, "package.json"), path.join(dir, "package.json"))
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"), "dir")
  fs.writeFileSync(path.join(dir, "llink.config.json"), JSON.stringify(SMALL, null, 2))
  return dir
}

const llink = (cwd: string, ...args: Array<string>) => {
  const r = spawnSync(nodeBin, [path.join(cwd, "src/cli/main.ts"), ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** `stage → status` from the final table of `llink run`. */
const statuses = (stdout: string): Record<string, string> =>
  Object.fromEntries(
    stdout.split("\n").map((l) => l.trim().split(/\s+/)).filter((c) => c.length >= 2 && stages.some((s) => s.name === c[0])).map((c) => [c[0], c[1]])
  )

describe("code in the cache key", () => {
  it("the two files are used where the test assumes", () => {
    const graph = openSourceGraph(path.join(repoRoot, "src"))
    const users = (file: string) =>
      stages.filter((s) => Object.keys(graph.closure(path.join(repoRoot, "src/nodes", s.name, "stage.ts")).files).includes(file)).map((s) => s.name)
    expect(users(STAGE_B_ONLY)).toEqual(["stageB"])
    expect(users(SHARED).sort()).toEqual(["encode", "teacher"])
  })

  it("an edit reruns exactly the stages whose code it touches; status names the file", { timeout: 600_000 }, () => {
    const dir = copyProject()
    const first = llink(dir, "run")
    expect(first.code, first.stderr).toBe(0)
    expect(Object.values(statuses(first.stdout)).every((s) => s === "ran")).toBe(true)

    for (const file of [STAGE_B_ONLY, SHARED]) fs.appendFileSync(path.join(dir, file), "\n// an edit that changes no behaviour\n")

    const status = llink(dir, "status")
    expect(status.code, status.stderr).toBe(0)
    const rows = status.stdout.split("\n")
    /** The stage's row and its continuation lines (further reasons), as one string. */
    const rowOf = (stage: string) => {
      const at = rows.findIndex((l) => l.startsWith(`${stage} `))
      if (at < 0) return ""
      let end = at + 1
      while (end < rows.length && /^\s/.test(rows[end])) end++
      return rows.slice(at, end).join("\n")
    }
    expect(rowOf("stageB")).toMatch(/will run[\s\S]*code changed: src\/nodes\/stageB\/work\.ts/)
    expect(rowOf("encode")).toMatch(/will run\s+code changed: src\/artifacts\/matrixJob\.ts/)
    expect(rowOf("teacher")).toMatch(/will run\s+code changed: src\/artifacts\/matrixJob\.ts/)
    const stale = new Set(["encode", "teacher", "stageA", "retrieval", "stageB", "generate", "generations", "judge", "retrievalFull", "retrievalPeers", "testSets", "testSetsFull", "report"])
    for (const stage of stages) {
      if (stale.has(stage.name)) expect(rowOf(stage.name), stage.name).toMatch(/will run/)
      else expect(rowOf(stage.name), stage.name).toMatch(/up to date/)
    }

    const second = llink(dir, "run")
    expect(second.code, second.stderr).toBe(0)
    const ran = Object.entries(statuses(second.stdout)).filter(([, s]) => s === "ran").map(([n]) => n).sort()
    expect(ran).toEqual(["encode", "stageB", "teacher"])
    expect(Object.values(statuses(second.stdout)).filter((s) => s !== "ran" && s !== "cached")).toEqual([])

    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "runs/default/manifest.json"), "utf8")) as {
      stages: Record<string, { code?: { digest: string; files: Record<string, string> } }>
    }
    expect(Object.keys(manifest.stages["stageB"].code?.files ?? {})).toContain(STAGE_B_ONLY)
    expect(Object.keys(manifest.stages["ingest"].code?.files ?? {})).not.toContain(STAGE_B_ONLY)
  })
})
