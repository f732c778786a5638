import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { ArtifactStore } from "../../src/pipeline/cache.ts"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { diffParams, explainStatus } from "../../src/pipeline/plan.ts"
import { formatStatus } from "../../src/cli/status.ts"
import { defaultToyConfig, makeToyStages, makeWorkspace, runToy, toyRunConfig, type Workspace } from "../support/toy.ts"

const status = (ws: Workspace, stages: ReadonlyArray<AnyStage>, value: unknown = defaultToyConfig, runDir = ws.runDir) =>
  Effect.runPromise(
    explainStatus(stages, { config: toyRunConfig(value), runDir, warn: () => undefined }).pipe(
      Effect.provide(ArtifactStore.layer(ws.cacheDir))
    )
  )
const byStage = (reports: Awaited<ReturnType<typeof status>>) =>
  Object.fromEntries(reports.map((r) => [r.stage, { state: r.state, reasons: r.reasons }]))

describe("explainStatus", () => {
  it("before any run: never run, and downstream waits on upstream", async () => {
    const ws = makeWorkspace("status0")
    const s = byStage(await status(ws, makeToyStages({ calls: {} })))
    expect(s.gen).toEqual({ state: "will-run", reasons: ["never run in this run dir"] })
    expect(s.double).toEqual({ state: "blocked", reasons: ["upstream gen will rerun"] })
    expect(s.sum).toEqual({ state: "blocked", reasons: ["upstream double will rerun"] })
    expect(s.side.state).toBe("will-run")
    // Nothing was published or locked.
    expect(fs.existsSync(ws.runDir)).toBe(false)
    expect(fs.readdirSync(ws.cacheDir)).toEqual([])
  })

  it("after a run everything is up to date; a param change says old → new and who follows", async () => {
    const ws = makeWorkspace("status1")
    const hooks = { calls: {} }
    const stages = makeToyStages(hooks)
    await Effect.runPromise(runToy(ws, stages))
    const fresh = byStage(await status(ws, stages))
    expect(Object.values(fresh).map((s) => s.state)).toEqual(["up-to-date", "up-to-date", "up-to-date", "up-to-date"])
    const changed = byStage(await status(ws, stages, { ...defaultToyConfig, double: { factor: 5 } }))
    expect(changed.gen.state).toBe("up-to-date")
    expect(changed.double).toEqual({ state: "will-run", reasons: ["param factor: 2 → 5"] })
    expect(changed.sum).toEqual({ state: "blocked", reasons: ["upstream double will rerun"] })
    expect(hooks.calls).toEqual({ gen: 1, double: 1, sum: 1, side: 1 })
  })

  it("explains a stage version bump, a changed external file, and a previous failure", async () => {
    const ws = makeWorkspace("status2")
    const source = path.join(ws.root, "src.txt")
    fs.writeFileSync(source, "abc")
    const value = { ...defaultToyConfig, gen: { n: 2, source } }
    const hooks = { calls: {}, failDouble: "broken" as string | undefined }
    const stages = makeToyStages(hooks)
    await Effect.runPromise(runToy(ws, stages, { value }))
    const failed = byStage(await status(ws, stages, value))
    expect(failed.double.state).toBe("will-run")
    expect(failed.double.reasons[0]).toMatch(/^last run failed: .*broken$/)

    hooks.failDouble = undefined
    await Effect.runPromise(runToy(ws, stages, { value }))
    const bumped = stages.map((s) => (s.name === "sum" ? { ...s, version: "2" } : s))
    expect(byStage(await status(ws, bumped, value)).sum).toEqual({ state: "will-run", reasons: ["stage version 1 → 2"] })

    fs.writeFileSync(source, "abcd")
    const external = byStage(await status(ws, stages, value))
    expect(external.gen.state).toBe("will-run")
    expect(external.gen.reasons[0]).toMatch(new RegExp(`^external input ${source} changed \\([0-9a-f]{12} → [0-9a-f]{12}\\)$`))
  })

  it("a result published by another run dir is reported as cached, not as a rerun", async () => {
    const ws = makeWorkspace("status3")
    const stages = makeToyStages({ calls: {} })
    await Effect.runPromise(runToy(ws, stages))
    const other = byStage(await status(ws, stages, defaultToyConfig, path.join(ws.root, "other-run")))
    expect(other.gen.state).toBe("cached")
    expect(other.gen.reasons).toContain("not yet recorded in this run dir")
  })

  it("formats one row per stage with continuation lines", async () => {
    const text = formatStatus([
      { stage: "gen", state: "up-to-date", key: "k", reasons: [] },
      { stage: "double", state: "blocked", key: null, reasons: ["upstream gen will rerun", "param factor: 2 → 3"] }
    ])
    expect(text.split("\n")).toEqual([
      "stage   state       why",
      "gen     up to date",
      "double  will run    upstream gen will rerun",
      "                    param factor: 2 → 3"
    ])
  })
})

describe("diffParams", () => {
  it("lists changed, added and removed leaves by dotted path", () => {
    expect(diffParams({ a: 1, b: { c: [1, 2], d: "x" } }, { a: 1, b: { c: [1, 3] }, e: true })).toEqual([
      "param b.c: [1,2] → [1,3]",
      `param b.d: "x" → (absent)`,
      "param e: (absent) → true"
    ])
  })
})
