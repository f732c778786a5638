// Toy stages and helpers shared by the pipeline tests: tiny JSON/text artifacts, a call counter per stage, and hooks
// to make a stage fail, hang or write only half of its outputs.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { ArtifactStore } from "../../src/pipeline/cache.ts"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { StageError } from "../../src/pipeline/errors.ts"
import type { RunConfig } from "../../src/pipeline/plan.ts"
import { makeMemoryReporter } from "../../src/pipeline/progress.ts"
import { runPipeline, type RunOptions } from "../../src/pipeline/runner.ts"
import { defineStage } from "../../src/pipeline/stage.ts"

export const tmpDir = (label: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `llink-${label}-`))

export interface ToyConfig {
  readonly gen: { readonly n: number; readonly source: string; readonly extra?: unknown }
  readonly double: { readonly factor: number }
  readonly side: { readonly label: string }
}

export const defaultToyConfig: ToyConfig = { gen: { n: 3, source: "" }, double: { factor: 2 }, side: { label: "a" } }

/** Hooks a test can set to change how a stage behaves on its next runs. */
export interface ToyHooks {
  /** Runs per stage name. */
  readonly calls: Record<string, number>
  /** `double` writes `doubled.json`, then fails with this message (the second output is never written). */
  failDouble?: string | undefined
  /** `double` writes `doubled.json` and a scratch file, then waits forever (to be interrupted or killed). */
  hangDouble?: (() => void) | undefined
  /** `gen` dies with a defect. */
  dieGen?: boolean
}

const readJson = (file: string): Effect.Effect<unknown, StageError> =>
  Effect.try({
    try: () => JSON.parse(fs.readFileSync(file, "utf8")) as unknown,
    catch: (cause) => new StageError({ stage: "toy", message: `cannot read ${file}`, cause })
  })

const writeText = (stage: string, file: string, text: string) =>
  Effect.try({
    try: () => fs.writeFileSync(file, text),
    catch: (cause) => new StageError({ stage, message: `cannot write ${file}`, cause })
  })

export const makeToyStages = (hooks: ToyHooks): ReadonlyArray<AnyStage> => {
  const count = (name: string) => Effect.sync(() => (hooks.calls[name] = (hooks.calls[name] ?? 0) + 1))
  const gen = defineStage({
    name: "gen",
    version: "1",
    description: "numbers 0..n-1 (plus the length of an optional source file)",
    inputs: [],
    outputs: [{ name: "numbers", kind: "json", file: "numbers.json", schema: Schema.Unknown, description: "the numbers" }],
    params: Schema.Struct({ n: Schema.Number, source: Schema.String }),
    selectParams: (config) => (config as ToyConfig).gen,
    externalInputs: (p) => (p.source === "" ? [] : [p.source]),
    run: (ctx) =>
      Effect.gen(function*() {
        yield* count("gen")
        if (hooks.dieGen) return yield* Effect.die(new Error("gen exploded"))
        const extra = ctx.params.source === "" ? 0 : fs.readFileSync(ctx.params.source, "utf8").length
        const numbers = Array.from({ length: ctx.params.n }, (_, i) => i + extra)
        const bar = ctx.progress("numbers", numbers.length)
        bar.advance(numbers.length)
        bar.done()
        yield* writeText("gen", ctx.outputs.numbers, JSON.stringify(numbers))
        return { rows: { numbers: numbers.length }, metrics: { extra } }
      })
  })
  const double = defineStage({
    name: "double",
    version: "1",
    description: "numbers × factor, and their count",
    inputs: ["numbers"],
    outputs: [
      { name: "doubled", kind: "json", file: "doubled.json", schema: Schema.Unknown, description: "the products" },
      { name: "count", kind: "json", file: "count.json", schema: Schema.Unknown, description: "how many" }
    ],
    params: Schema.Struct({ factor: Schema.Number }),
    selectParams: (config) => (config as ToyConfig).double,
    run: (ctx) =>
      Effect.gen(function*() {
        yield* count("double")
        const numbers = (yield* readJson(ctx.inputs.numbers)) as ReadonlyArray<number>
        const doubled = numbers.map((x) => x * ctx.params.factor)
        yield* writeText("double", ctx.outputs.doubled, JSON.stringify(doubled))
        fs.writeFileSync(path.join(ctx.scratchDir, "progress.txt"), "half")
        if (hooks.failDouble !== undefined) {
          return yield* new StageError({ stage: "double", message: hooks.failDouble, file: ctx.inputs.numbers, line: 1 })
        }
        if (hooks.hangDouble !== undefined) {
          hooks.hangDouble()
          return yield* Effect.never
        }
        yield* writeText("double", ctx.outputs.count, JSON.stringify(doubled.length))
        ctx.log(`doubled ${doubled.length} numbers`)
        return { rows: { doubled: doubled.length } }
      })
  })
  const sum = defineStage({
    name: "sum",
    version: "1",
    description: "the sum",
    inputs: ["doubled"],
    outputs: [{ name: "sum", kind: "json", file: "sum.json", schema: Schema.Unknown, description: "the sum", runCopy: "file" }],
    params: Schema.Struct({}),
    selectParams: () => ({}),
    run: (ctx) =>
      Effect.gen(function*() {
        yield* count("sum")
        const doubled = (yield* readJson(ctx.inputs.doubled)) as ReadonlyArray<number>
        yield* writeText("sum", ctx.outputs.sum, JSON.stringify(doubled.reduce((a, b) => a + b, 0)))
        return { rows: {} }
      })
  })
  const side = defineStage({
    name: "side",
    version: "1",
    description: "an independent branch",
    inputs: [],
    outputs: [{ name: "side", kind: "json", file: "side.json", schema: Schema.Unknown, description: "a label" }],
    params: Schema.Struct({ label: Schema.String }),
    selectParams: (config) => (config as ToyConfig).side,
    run: (ctx) =>
      Effect.gen(function*() {
        yield* count("side")
        yield* writeText("side", ctx.outputs.side, JSON.stringify(ctx.params.label))
        return { rows: {} }
      })
  })
  return [gen, double, sum, side]
}

export const toyRunConfig = (value: unknown = defaultToyConfig): RunConfig => ({
  value,
  file: null,
  digest: "toy",
  overrides: []
})

/** A workspace: cache dir + run dir in a fresh temp folder. */
export interface Workspace {
  readonly root: string
  readonly cacheDir: string
  readonly runDir: string
}

export const makeWorkspace = (label: string): Workspace => {
  const root = tmpDir(label)
  return { root, cacheDir: path.join(root, "cache"), runDir: path.join(root, "run") }
}

/** Runs the toy pipeline in `ws` (memory reporter), returning the report and the log lines. */
export const runToy = (
  ws: Workspace,
  stages: ReadonlyArray<AnyStage>,
  options?: Partial<Omit<RunOptions, "runDir">> & { readonly value?: unknown }
) => {
  const reporter = makeMemoryReporter()
  return runPipeline(stages, {
    config: toyRunConfig(options?.value),
    runDir: ws.runDir,
    reporter,
    ...options
  }).pipe(
    Effect.map((report) => ({ report, lines: reporter.lines })),
    Effect.provide(ArtifactStore.layer(ws.cacheDir, (m) => reporter.warn(m)))
  )
}

/** Names of the entries in `<cacheDir>/<stage>/`. */
export const cacheEntries = (ws: Workspace, stage: string): Array<string> => {
  const dir = path.join(ws.cacheDir, stage)
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []
}

/** Published key folders of a stage (those with `_meta.json`). */
export const publishedKeys = (ws: Workspace, stage: string): Array<string> =>
  cacheEntries(ws, stage).filter((name) => fs.existsSync(path.join(ws.cacheDir, stage, name, "_meta.json")))

export const statusOf = (report: { readonly stages: ReadonlyArray<{ readonly stage: string; readonly status: string }> }) =>
  Object.fromEntries(report.stages.map((s) => [s.stage, s.status]))
