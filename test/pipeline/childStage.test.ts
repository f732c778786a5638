/**
 * Heavy stages in child processes (src/pipeline/childStage.ts) and run slots by priority (src/pipeline/permits.ts):
 * a stage run in a child publishes exactly what it publishes in process, its log lines reach the parent's reporter,
 * its failure keeps its file and line, and a freed slot goes to the waiting stage with the longest chain below it.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Deferred, Effect, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { buildDag } from "../../src/pipeline/dag.ts"
import { makePriorityPermits, stagePriorities } from "../../src/pipeline/permits.ts"
import { stages } from "../../src/nodes/index.ts"
import { makeToyStages, makeWorkspace, runToy, statusOf, type ToyHooks } from "../support/toy.ts"

const script = path.resolve(import.meta.dirname, "../support/toyChild.ts")
const heavyDouble = (hooks: ToyHooks) => makeToyStages(hooks).map((s) => (s.name === "double" ? { ...s, heavy: true } : s))
const run = (...args: Parameters<typeof runToy>) => Effect.runPromise(runToy(...args))

describe("heavy stages in a child process", () => {
  it("publish the same keys and bytes as in process, and their log lines reach the parent", async () => {
    const hooks: ToyHooks = { calls: {} }
    const child = await run(makeWorkspace("child"), heavyDouble(hooks), { childScript: script })
    expect(statusOf(child.report)).toEqual({ gen: "ran", double: "ran", sum: "ran", side: "ran" })
    expect(hooks.calls.double).toBeUndefined() // the parent never ran it
    expect(hooks.calls.gen).toBe(1)
    expect(child.lines).toContain("[double] doubled 3 numbers")
    const inProcess = await run(makeWorkspace("inproc"), heavyDouble({ calls: {} }))
    for (const name of ["double", "sum"]) {
      const a = child.report.manifest.stages[name]
      const b = inProcess.report.manifest.stages[name]
      expect(a.key).toBe(b.key)
      for (const [out, o] of Object.entries(a.outputs)) {
        expect(o.digest).toBe(b.outputs[out].digest)
        expect(fs.readFileSync(o.path, "utf8")).toBe(fs.readFileSync(b.outputs[out].path, "utf8"))
      }
    }
    expect(child.report.manifest.stages.double.outputs.doubled.rows).toBe(3)
  })

  it("a failure in the child names its file and line, publishes nothing, and a rerun recovers", async () => {
    const ws = makeWorkspace("childfail")
    process.env.TOY_FAIL_DOUBLE = "the factor is cursed"
    try {
      const failed = await run(ws, heavyDouble({ calls: {} }), { childScript: script })
      const double = failed.report.stages.find((s) => s.stage === "double")!
      expect(double.status).toBe("failed")
      expect(double.error).toMatch(/numbers\.json:1: the factor is cursed$/)
      expect(statusOf(failed.report).sum).toBe("skipped")
    } finally {
      delete process.env.TOY_FAIL_DOUBLE
    }
    const again = await run(ws, heavyDouble({ calls: {} }), { childScript: script })
    expect(statusOf(again.report)).toEqual({ gen: "cached", double: "ran", sum: "ran", side: "cached" })
  })

  it("a script that cannot serve the request fails the stage with the script's last lines", async () => {
    const bad = path.join(makeWorkspace("badchild").root, "bad.mjs")
    fs.writeFileSync(bad, "console.error('no model here'); process.exit(3)\n")
    const r = await run(makeWorkspace("badrun"), heavyDouble({ calls: {} }), { childScript: bad })
    const double = r.report.stages.find((s) => s.stage === "double")!
    expect(double.status).toBe("failed")
    expect(double.error).toContain("exit 3")
    expect(double.error).toContain("no model here")
  })
})

describe("run slots by priority", () => {
  it("a freed slot goes to the highest waiting priority, then the earliest; an interrupted waiter takes none", async () => {
    const permits = makePriorityPermits(1)
    const order: Array<string> = []
    const program = Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(permits.withPermit(0)(Deferred.await(release)))
      yield* Effect.yieldNow
      const fibers = []
      for (const [name, p] of [["low", 1], ["high", 3], ["mid", 2], ["gone", 9], ["mid2", 2]] as const) {
        fibers.push([name, yield* Effect.forkChild(permits.withPermit(p)(Effect.sync(() => order.push(name))))] as const)
        yield* Effect.yieldNow
      }
      yield* Fiber.interrupt(fibers.find(([n]) => n === "gone")![1])
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      for (const [name, f] of fibers) if (name !== "gone") yield* Fiber.join(f)
    })
    await Effect.runPromise(program)
    expect(order).toEqual(["high", "mid", "mid2", "low"])
  })

  it("a stage woken by the one that frees a slot gets it before a lower one that asked earlier", async () => {
    // one slot: gen and side are ready at once; double is ready only when gen ends, yet goes before side (gen →
    // double → sum is the longer path), and so does sum
    const r = await run(makeWorkspace("prio"), makeToyStages({ calls: {} }), { concurrency: 1 })
    const started = r.lines.filter((l) => l.endsWith("] running")).map((l) => l.slice(1, l.indexOf("]")))
    expect(started).toEqual(["gen", "double", "sum", "side"])
  })

  it("ranks a stage by the longest path through it, then the longest chain below it, then its dependants", async () => {
    const dag = await Effect.runPromise(buildDag(makeToyStages({ calls: {} })))
    const p = stagePriorities(dag)
    // gen → double → sum: a path of 3 through each, chains of 3, 2, 1 below; side: a lone stage
    expect(p.get("gen")).toBe(3e9 + 3e4 + 2)
    expect(p.get("double")).toBe(3e9 + 2e4 + 1)
    expect(p.get("sum")).toBe(3e9 + 1e4)
    expect(p.get("side")).toBe(1e9 + 1e4)
  })

  it("weighs the paths by the stages' declared costs", async () => {
    // side costs 10: its lone path outweighs gen → double → sum (3), so the slot gen frees goes to side, not double
    const weighted = makeToyStages({ calls: {} }).map((s) => (s.name === "side" ? { ...s, cost: 10 } : s))
    const p = stagePriorities(await Effect.runPromise(buildDag(weighted)))
    expect(p.get("side")).toBe(10e9 + 10e4)
    expect(p.get("gen")).toBe(3e9 + 3e4 + 2)
    const r = await run(makeWorkspace("cost"), weighted, { concurrency: 1 })
    const started = r.lines.filter((l) => l.endsWith("] running")).map((l) => l.slice(1, l.indexOf("]")))
    expect(started).toEqual(["gen", "side", "double", "sum"])
  })

  it("puts the LLINK chain ahead of the baselines in the real DAG, and the longer baseline ahead of the shorter", async () => {
    const dag = await Effect.runPromise(buildDag(stages))
    const p = stagePriorities(dag)
    for (const baseline of ["finetune", "langbridge", "mindmerger"]) {
      expect(p.get("stageA")!).toBeGreaterThan(p.get(baseline)!)
      expect(p.get("stageB")!).toBeGreaterThan(p.get(baseline)!)
    }
    expect(p.get("teacher")!).toBeGreaterThan(p.get("tokstats")!)
    expect(p.get("finetune")!).toBeGreaterThan(p.get("mindmerger")!)
    expect(p.get("mindmerger")!).toBeGreaterThan(p.get("langbridge")!)
  })
})
