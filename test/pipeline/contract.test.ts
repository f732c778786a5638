/**
 * The stage contract's newer parts: outputs are checked against their declared shapes before publishing, and a
 * stage with optional inputs (a summary, like the report) runs with what a partial run computed.
 */
import * as fs from "node:fs"
import { Effect, Schema, Stream } from "effect"
import { describe, expect, it } from "vitest"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { defineStage } from "../../src/pipeline/stage.ts"
import { writeTable } from "../../src/formats/parquet/table.ts"
import { makeWorkspace, publishedKeys, runToy, statusOf } from "../support/toy.ts"

const Doc = Schema.Struct({ total: Schema.Number })

const producer = (write: unknown) =>
  defineStage({
    name: "produce",
    version: "1",
    description: "writes a document",
    inputs: [],
    outputs: [{ name: "doc", kind: "json", file: "doc.json", schema: Doc, description: "the document" }],
    params: Schema.Struct({}),
    selectParams: () => ({}),
    run: (ctx) => Effect.sync(() => (fs.writeFileSync(ctx.outputs.doc, JSON.stringify(write)), { rows: {} }))
  })

const tableStage = defineStage({
  name: "table",
  version: "1",
  description: "writes a table with other columns than it declares",
  inputs: [],
  outputs: [{ name: "rows", kind: "parquet", file: "rows.parquet", columns: [{ name: "id", type: "int32" }], description: "rows" }],
  params: Schema.Struct({}),
  selectParams: () => ({}),
  run: (ctx) =>
    Effect.map(
      writeTable(ctx.outputs.rows, [{ name: "id", type: "float64" }], Stream.fromIterable([{ id: 1 }])).pipe(Effect.orDie),
      () => ({ rows: { rows: 1 } })
    )
})

/** `a` → `b`; `summary` reads both, optionally. */
const chain = (): ReadonlyArray<AnyStage> => {
  const emit = (name: string, inputs: ReadonlyArray<string>) =>
    defineStage({
      name,
      version: "1",
      description: name,
      inputs,
      outputs: [{ name: `${name}.out`, kind: "json", file: `${name}.json`, schema: Doc, description: name }],
      params: Schema.Struct({}),
      selectParams: () => ({}),
      run: (ctx) => Effect.sync(() => (fs.writeFileSync(ctx.outputs[`${name}.out`], JSON.stringify({ total: 1 })), { rows: {} }))
    })
  const summary = defineStage({
    name: "summary",
    version: "1",
    description: "what was computed",
    inputs: [],
    optionalInputs: ["a.out", "b.out"],
    outputs: [{ name: "seen", kind: "json", file: "seen.json", schema: Schema.Array(Schema.String), description: "inputs seen" }],
    params: Schema.Struct({}),
    selectParams: () => ({}),
    run: (ctx) => Effect.sync(() => (fs.writeFileSync(ctx.outputs.seen, JSON.stringify(Object.keys(ctx.inputs).sort())), { rows: {} }))
  })
  return [emit("a", []), emit("b", ["a.out"]), summary]
}

describe("declared output shapes", () => {
  it("a JSON output that does not match its Schema fails the stage, naming the field; nothing is published", async () => {
    const ws = makeWorkspace("shape-json")
    const { report } = await Effect.runPromise(runToy(ws, [producer({ total: "three" })]))
    const s = report.stages[0]
    expect(s.status).toBe("failed")
    expect(s.error).toMatch(/doc\.json: output doc does not match its declared schema: total: Expected number, got "three"/)
    expect(publishedKeys(ws, "produce")).toEqual([])
    const extra = await Effect.runPromise(runToy(makeWorkspace("shape-extra"), [producer({ total: 3, other: 1 })]))
    expect(extra.report.stages[0].error).toMatch(/other/)
    const ok = await Effect.runPromise(runToy(makeWorkspace("shape-ok"), [producer({ total: 3 })]))
    expect(ok.report.stages[0].status).toBe("ran")
  })

  it("a Parquet output whose columns differ from the declaration fails the stage", async () => {
    const ws = makeWorkspace("shape-parquet")
    const { report } = await Effect.runPromise(runToy(ws, [tableStage]))
    expect(report.stages[0].status).toBe("failed")
    expect(report.stages[0].error).toMatch(/output rows has columns \[id: float64\], but its declaration says \[id: int32\]/)
  })
})

describe("optional inputs", () => {
  it("--until runs the summary on what the selection computed; a full run gives it everything", async () => {
    const ws = makeWorkspace("optional")
    const partial = await Effect.runPromise(runToy(ws, chain(), { until: "a" }))
    expect(statusOf(partial.report)).toEqual({ a: "ran", b: "skipped", summary: "ran" })
    const seen = (r: typeof partial.report) => JSON.parse(fs.readFileSync(r.manifest.stages["summary"].outputs["seen"].path, "utf8"))
    expect(seen(partial.report)).toEqual(["a.out"])
    const full = await Effect.runPromise(runToy(ws, chain()))
    expect(statusOf(full.report)).toEqual({ a: "cached", b: "ran", summary: "ran" })
    expect(seen(full.report)).toEqual(["a.out", "b.out"])
  })
})
