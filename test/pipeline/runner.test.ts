import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Exit, Fiber, Schema } from "effect"
import { describe, expect, it } from "vitest"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { MissingUpstreamError } from "../../src/pipeline/errors.ts"
import { defineStage } from "../../src/pipeline/stage.ts"
import {
  cacheEntries,
  defaultToyConfig,
  makeToyStages,
  makeWorkspace,
  publishedKeys,
  runToy,
  statusOf,
  type ToyHooks
} from "../support/toy.ts"

const newHooks = (): ToyHooks => ({ calls: {} })
const run = (...args: Parameters<typeof runToy>) => Effect.runPromise(runToy(...args))
const readJson = (file: string): unknown => JSON.parse(fs.readFileSync(file, "utf8"))

describe("runner: cache", () => {
  it("runs everything first, then everything is cached with identical keys", async () => {
    const ws = makeWorkspace("cache")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    const first = await run(ws, stages)
    expect(statusOf(first.report)).toEqual({ gen: "ran", double: "ran", sum: "ran", side: "ran" })
    expect(first.report.failed).toBe(false)
    const second = await run(ws, stages)
    expect(statusOf(second.report)).toEqual({ gen: "cached", double: "cached", sum: "cached", side: "cached" })
    expect(hooks.calls).toEqual({ gen: 1, double: 1, sum: 1, side: 1 })
    const keys = (m: typeof first.report.manifest) => Object.fromEntries(Object.entries(m.stages).map(([k, v]) => [k, v.key]))
    expect(keys(second.report.manifest)).toEqual(keys(first.report.manifest))
    // The outputs are where the manifest says, with the right content.
    const sumOut = second.report.manifest.stages.sum.outputs.sum
    expect(readJson(sumOut.path)).toBe(2 * (0 + 1 + 2))
    // Run-dir links point at the published files.
    expect(readJson(path.join(ws.runDir, "artifacts", "sum.json"))).toBe(6)
    expect(fs.lstatSync(path.join(ws.runDir, "artifacts", "doubled.json")).isSymbolicLink()).toBe(true)
  })

  it("an output's runCopy lands in every run directory, also one where the stage was only found cached", async () => {
    const ws = makeWorkspace("runcopy")
    const stages = makeToyStages(newHooks())
    await run(ws, stages)
    const copy = path.join(ws.runDir, "sum.json")
    expect(fs.lstatSync(copy).isFile()).toBe(true)
    expect(readJson(copy)).toBe(6)
    expect(fs.existsSync(path.join(ws.runDir, "side.json"))).toBe(false) // no runCopy declared
    const other = { ...ws, runDir: path.join(path.dirname(ws.runDir), "run-cached") }
    const second = await run(other, stages)
    expect(statusOf(second.report).sum).toBe("cached")
    expect(readJson(path.join(other.runDir, "sum.json"))).toBe(6)
  })

  it("a parameter change reruns that stage and downstream; upstream and independent stages stay cached", async () => {
    const ws = makeWorkspace("param")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    await run(ws, stages)
    const changed = { ...defaultToyConfig, double: { factor: 3 } }
    const second = await run(ws, stages, { value: changed })
    expect(statusOf(second.report)).toEqual({ gen: "cached", double: "ran", sum: "ran", side: "cached" })
    expect(readJson(second.report.manifest.stages.sum.outputs.sum.path)).toBe(9)
    expect(second.report.manifest.stages.double.params).toEqual({ factor: 3 })
    // Both versions stay published: switching back is a cache hit.
    expect(publishedKeys(ws, "double")).toHaveLength(2)
    const third = await run(ws, stages)
    expect(statusOf(third.report)).toEqual({ gen: "cached", double: "cached", sum: "cached", side: "cached" })
  })

  it("an upstream rerun that writes identical outputs does not rerun downstream", async () => {
    const ws = makeWorkspace("cutoff")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    await run(ws, stages)
    // gen reruns but writes the same numbers, so double's input digest (and key) is unchanged.
    const forced = await run(ws, stages, { force: ["gen"] })
    expect(statusOf(forced.report)).toEqual({ gen: "ran", double: "cached", sum: "cached", side: "cached" })
    expect(hooks.calls.gen).toBe(2)
  })

  it("--force reruns a cached stage and republishes it", async () => {
    const ws = makeWorkspace("force")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    await run(ws, stages)
    const forced = await run(ws, stages, { force: ["double"] })
    expect(statusOf(forced.report)).toEqual({ gen: "cached", double: "ran", sum: "cached", side: "cached" })
    expect(hooks.calls.double).toBe(2)
    expect(publishedKeys(ws, "double")).toHaveLength(1)
    expect(cacheEntries(ws, "double").filter((n) => n.startsWith("."))).toEqual([])
  })

  it("--until runs a stage and its ancestors only", async () => {
    const ws = makeWorkspace("until")
    const hooks = newHooks()
    const { report } = await run(ws, makeToyStages(hooks), { until: "double" })
    expect(statusOf(report)).toEqual({ gen: "ran", double: "ran", sum: "skipped", side: "skipped" })
    expect(report.manifest.stages.sum.reason).toBe("excluded by --until double")
    expect(hooks.calls.sum).toBeUndefined()
  })

  it("--only fails naming the missing upstream stage, and runs once upstream is published", async () => {
    const ws = makeWorkspace("only")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    const error = await Effect.runPromise(Effect.flip(runToy(ws, stages, { only: "sum" })))
    expect(error).toBeInstanceOf(MissingUpstreamError)
    expect(error.message).toContain("upstream stage gen")
    await run(ws, stages, { until: "double" })
    const { report } = await run(ws, stages, { only: "sum" })
    expect(statusOf(report)).toEqual({ gen: "skipped", double: "skipped", sum: "ran", side: "skipped" })
    expect(report.manifest.stages.double.key).not.toBeNull()
    expect(report.manifest.stages.double.reason).toContain("published outputs were used")
    expect(hooks.calls).toEqual({ gen: 1, double: 1, sum: 1 })
  })

  it("unknown stage names are errors", async () => {
    const ws = makeWorkspace("unknown")
    const error = await Effect.runPromise(Effect.flip(runToy(ws, makeToyStages(newHooks()), { force: ["nope"] })))
    expect(error._tag).toBe("UnknownStageError")
    expect(error.message).toContain("--force nope")
  })
})

describe("runner: failures and atomicity", () => {
  it("a stage that writes half its outputs then fails publishes nothing; downstream is skipped; the rerun reruns it", async () => {
    const ws = makeWorkspace("fail")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    hooks.failDouble = "bad number"
    const { report } = await run(ws, stages)
    expect(statusOf(report)).toEqual({ gen: "ran", double: "failed", sum: "skipped", side: "ran" })
    expect(report.failed).toBe(true)
    const failure = report.stages.find((s) => s.stage === "double")
    expect(failure?.error).toMatch(/numbers\.json:1: bad number$/)
    expect(report.manifest.stages.double.error).toBe(failure?.error)
    expect(report.manifest.stages.sum.reason).toBe("upstream double did not complete")
    expect(publishedKeys(ws, "double")).toEqual([])
    // No temporary folder is left; the scratch folder survives for a resumed run.
    const entries = cacheEntries(ws, "double")
    expect(entries.filter((n) => n.startsWith(".tmp-"))).toEqual([])
    const partial = entries.filter((n) => n.endsWith(".partial"))
    expect(partial).toHaveLength(1)
    expect(fs.readFileSync(path.join(ws.cacheDir, "double", partial[0], "progress.txt"), "utf8")).toBe("half")

    hooks.failDouble = undefined
    const rerun = await run(ws, stages)
    expect(statusOf(rerun.report)).toEqual({ gen: "cached", double: "ran", sum: "ran", side: "cached" })
    expect(publishedKeys(ws, "double")).toHaveLength(1)
    // Published: the scratch folder is gone.
    expect(cacheEntries(ws, "double").filter((n) => n.endsWith(".partial"))).toEqual([])
  })

  it("a defect in a stage is recorded as a failure with its message", async () => {
    const ws = makeWorkspace("defect")
    const hooks = newHooks()
    hooks.dieGen = true
    const { report } = await run(ws, makeToyStages(hooks))
    expect(statusOf(report)).toEqual({ gen: "failed", double: "skipped", sum: "skipped", side: "ran" })
    expect(report.stages[0].error).toContain("gen exploded")
  })

  it("an interrupted stage leaves no published output and no temporary folder, and releases the lock", async () => {
    const ws = makeWorkspace("interrupt")
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    let reached!: () => void
    const halfWritten = new Promise<void>((resolve) => (reached = resolve))
    hooks.hangDouble = () => reached()
    const fiber = Effect.runFork(runToy(ws, stages))
    await halfWritten
    const exit = await Effect.runPromise(Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber))))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(publishedKeys(ws, "double")).toEqual([])
    expect(cacheEntries(ws, "double").filter((n) => n.startsWith(".tmp-"))).toEqual([])
    expect(fs.existsSync(path.join(ws.runDir, ".lock"))).toBe(false)
    const manifest = readJson(path.join(ws.runDir, "manifest.json")) as { stages: Record<string, { status: string; error?: string }> }
    expect(manifest.stages.gen.status).toBe("ran")
    expect(manifest.stages.double).toMatchObject({ status: "failed", error: "interrupted" })

    hooks.hangDouble = undefined
    const rerun = await run(ws, stages)
    expect(statusOf(rerun.report)).toMatchObject({ gen: "cached", double: "ran", sum: "ran" })
  })
})

describe("runner: manifest", () => {
  it("records key, status, params, inputs, outputs, metrics, duration, tool and config", async () => {
    const ws = makeWorkspace("manifest")
    const source = path.join(ws.root, "source.txt")
    fs.writeFileSync(source, "hello")
    const value = { ...defaultToyConfig, gen: { n: 2, source } }
    const { report } = await run(ws, makeToyStages(newHooks()), { value })
    const manifest = readJson(path.join(ws.runDir, "manifest.json")) as typeof report.manifest
    expect(manifest).toEqual(report.manifest)
    expect(Object.keys(manifest.stages).sort()).toEqual(["double", "gen", "side", "sum"])
    expect(manifest.config).toMatchObject({ path: null, digest: "toy", overrides: [] })
    expect(typeof manifest.createdAt).toBe("string")
    const gen = manifest.stages.gen
    expect(gen.status).toBe("ran")
    expect(gen.key).toMatch(/^[0-9a-f]{64}$/)
    expect(gen.params).toEqual({ n: 2, source })
    expect(Object.keys(gen.externalInputs)).toEqual([source])
    expect(gen.metrics).toEqual({ extra: 5 })
    expect(gen.outputs.numbers.rows).toBe(2)
    expect(gen.outputs.numbers.digest).toMatch(/^[0-9a-f]{64}$/)
    expect(gen.outputs.numbers.path).toBe(path.join(ws.cacheDir, "gen", gen.key!, "numbers.json"))
    expect(gen.tool.node).toBe(process.version)
    expect(gen.tool.effect).toBe("4.1.0")
    expect(gen.tool.llink).toMatch(/^\d+\.\d+\.\d+/)
    expect(typeof gen.durationMs).toBe("number")
    const double = manifest.stages.double
    expect(double.inputs).toEqual({ numbers: gen.outputs.numbers.digest })
    expect(double.outputs.count.rows).toBeNull()
    // _meta.json of the published folder carries the same lineage.
    const meta = readJson(path.join(ws.cacheDir, "gen", gen.key!, "_meta.json")) as Record<string, unknown>
    expect(meta).toMatchObject({ key: gen.key, params: gen.params, inputs: {}, externalInputs: gen.externalInputs })
  })
})

describe("runner: concurrency", () => {
  it("runs independent stages concurrently, at most `concurrency` at a time", async () => {
    let running = 0
    let peak = 0
    const sleeper = (name: string): AnyStage =>
      defineStage({
        name,
        version: "1",
        description: name,
        inputs: [],
        outputs: [{ name, kind: "json", file: `${name}.json`, schema: Schema.Unknown, description: name }],
        params: Schema.Struct({}),
        selectParams: () => ({}),
        run: (ctx) =>
          Effect.gen(function*() {
            running++
            peak = Math.max(peak, running)
            yield* Effect.sleep("30 millis")
            running--
            fs.writeFileSync(ctx.outputs[name], "1")
            return { rows: {} }
          })
      })
    const stages = ["a", "b", "c", "d"].map(sleeper)
    const { report } = await run(makeWorkspace("conc"), stages, { concurrency: 2 })
    expect(report.failed).toBe(false)
    expect(peak).toBe(2)
    peak = 0
    await run(makeWorkspace("conc1"), stages, { concurrency: 1 })
    expect(peak).toBe(1)
  })
})

describe("runner: shared cache", () => {
  it("two run dirs sharing one cache, run at once, both succeed and each key is published once", async () => {
    const a = makeWorkspace("shareA")
    const b = { ...a, runDir: path.join(a.root, "run-b") }
    const hooks = newHooks()
    const stages = makeToyStages(hooks)
    const [ra, rb] = await Promise.all([run(a, stages), run(b, stages)])
    expect(ra.report.failed || rb.report.failed).toBe(false)
    for (const stage of ["gen", "double", "sum", "side"]) {
      expect(publishedKeys(a, stage)).toHaveLength(1)
      expect(ra.report.manifest.stages[stage].key).toBe(rb.report.manifest.stages[stage].key)
      expect(cacheEntries(a, stage).filter((n) => n.startsWith(".tmp-"))).toEqual([])
    }
  })
})
