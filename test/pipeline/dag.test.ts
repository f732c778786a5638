import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { buildDag, toMermaid, type AnyStage } from "../../src/pipeline/dag.ts"
import { DagCycleError, DuplicateProducerError, MissingProducerError } from "../../src/pipeline/errors.ts"
import { defineStage } from "../../src/pipeline/stage.ts"
import { makeToyStages } from "../support/toy.ts"

const stage = (name: string, inputs: ReadonlyArray<string>, outputs: ReadonlyArray<string>): AnyStage =>
  defineStage({
    name,
    version: "1",
    description: name,
    inputs,
    outputs: outputs.map((o) => ({ name: o, kind: "json" as const, file: `${o}.json`, schema: Schema.Unknown, description: o })),
    params: Schema.Struct({}),
    selectParams: () => ({}),
    run: () => Effect.succeed({ rows: {} })
  })

const fail = (stages: ReadonlyArray<AnyStage>) => Effect.runSync(Effect.flip(buildDag(stages)))

describe("buildDag", () => {
  it("orders the toy pipeline topologically and answers ancestry questions", () => {
    const dag = Effect.runSync(buildDag(makeToyStages({ calls: {} })))
    const order = [...dag.order]
    expect(order.sort()).toEqual(["double", "gen", "side", "sum"])
    expect(dag.order.indexOf("gen")).toBeLessThan(dag.order.indexOf("double"))
    expect(dag.order.indexOf("double")).toBeLessThan(dag.order.indexOf("sum"))
    expect(dag.ancestors("sum")).toEqual(["gen", "double"])
    expect(dag.descendants("gen")).toEqual(["double", "sum"])
    expect(dag.upstream("double")).toEqual(["gen"])
    expect(dag.artifacts.get("doubled")?.stage).toBe("double")
  })

  it("names the stages of a cycle", () => {
    const error = fail([stage("a", ["z"], ["x"]), stage("b", ["x"], ["y"]), stage("c", ["y"], ["z"])])
    expect(error).toBeInstanceOf(DagCycleError)
    if (!(error instanceof DagCycleError)) return
    expect([...error.stages].sort()).toEqual(["a", "a", "b", "c"])
    expect(error.message).toMatch(/cycle: [abc] → [abc] → [abc] → [abc]/)
  })

  it("rejects a stage reading its own output", () => {
    expect(fail([stage("a", ["x"], ["x"])])).toBeInstanceOf(DagCycleError)
  })

  it("rejects an input no stage produces", () => {
    const error = fail([stage("a", [], ["x"]), stage("b", ["x", "ghost"], ["y"])])
    expect(error).toBeInstanceOf(MissingProducerError)
    expect(error.message).toBe(`stage b reads artifact "ghost", which no stage produces`)
  })

  it("rejects two producers of one artifact, and two stages with one name", () => {
    const dup = fail([stage("a", [], ["x"]), stage("b", [], ["x"])])
    expect(dup).toBeInstanceOf(DuplicateProducerError)
    expect(dup.message).toContain("a and b")
    const sameName = fail([stage("a", [], ["x"]), stage("a", [], ["y"])])
    expect(sameName).toBeInstanceOf(DuplicateProducerError)
    expect(sameName.message).toContain(`two stages are named "a"`)
  })

  it("prefixes artifact link names that two stages share", () => {
    const a = stage("a", [], ["x"])
    const b: AnyStage = { ...stage("b", [], ["y"]), outputs: [{ name: "y", kind: "json", file: "x.json", schema: Schema.Unknown, description: "" }] }
    const dag = Effect.runSync(buildDag([a, b]))
    expect(dag.artifacts.get("x")?.linkName).toBe("a.x.json")
    expect(dag.artifacts.get("y")?.linkName).toBe("b.x.json")
  })
})

describe("toMermaid", () => {
  it("prints graph TD with edges labelled by artifact", () => {
    const dag = Effect.runSync(
      buildDag([stage("ingest", [], ["pairs"]), stage("split", ["pairs"], ["train", "holdout"]), stage("eval", ["train", "holdout"], ["score"])])
    )
    expect(toMermaid(dag).split("\n")).toEqual([
      "graph TD",
      `  ingest["ingest"]`,
      `  split["split"]`,
      `  eval["eval"]`,
      `  ingest -->|"pairs"| split`,
      `  split -->|"train, holdout"| eval`
    ])
  })
})
