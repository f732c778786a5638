// A toy sharded stage for the shard tests: `nums` writes 0..n-1 as a JSON table; `sq` (sharded, `size` rows per
// shard) writes each number's square plus a per-shard line, merged in plan order. Hooks count shard runs, fail a
// given shard, and remember which process-local order shards ran in.
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import type { AnyStage } from "../../src/pipeline/dag.ts"
import { StageError } from "../../src/pipeline/errors.ts"
import { defineStage, type ShardRange } from "../../src/pipeline/stage.ts"

export interface ShardToyConfig {
  readonly nums: { readonly n: number }
  readonly sq: { readonly size: number }
}

export interface ShardToyHooks {
  /** Shard start row → runs. */
  readonly runs: Record<number, number>
  /** The order shards ran in (start rows). */
  readonly order: Array<number>
  /** Shards whose start row is here fail (deterministically). */
  failAt?: ReadonlySet<number> | undefined
}

const fail = (message: string, cause?: unknown) => new StageError({ stage: "sq", message, cause })

export const makeShardToy = (hooks: ShardToyHooks): ReadonlyArray<AnyStage> => {
  const nums = defineStage({
    name: "nums",
    version: "1",
    description: "0..n-1",
    inputs: [],
    outputs: [{ name: "nums", kind: "json", file: "nums.json", schema: Schema.Unknown, description: "numbers" }],
    params: Schema.Struct({ n: Schema.Number }),
    selectParams: (config) => (config as ShardToyConfig).nums,
    run: (ctx) =>
      Effect.try({
        try: () => {
          fs.writeFileSync(ctx.outputs["nums"], JSON.stringify(Array.from({ length: ctx.params.n }, (_, i) => i)))
          return { rows: { nums: ctx.params.n } }
        },
        catch: (cause) => new StageError({ stage: "nums", message: "write", cause })
      })
  })
  const readNums = (file: string) =>
    Effect.try({ try: () => JSON.parse(fs.readFileSync(file, "utf8")) as Array<number>, catch: (c) => fail("read", c) })
  const sq = defineStage({
    name: "sq",
    version: "1",
    description: "squares, sharded",
    inputs: ["nums"],
    outputs: [{ name: "squares", kind: "json", file: "squares.json", schema: Schema.Unknown, description: "squares" }],
    params: Schema.Struct({ size: Schema.Number }),
    selectParams: (config) => (config as ShardToyConfig).sq,
    run: () => Effect.fail(fail("a sharded stage's run is not called by the runner")),
    sharding: {
      plan: (ctx) =>
        Effect.map(readNums(ctx.inputs["nums"]), (xs) => {
          const out: Array<ShardRange> = []
          for (let start = 0; start < xs.length; start += ctx.params.size) {
            out.push({ table: "nums", start, end: Math.min(xs.length, start + ctx.params.size) })
          }
          return out
        }),
      runShard: (ctx) =>
        Effect.gen(function*() {
          const { start, end } = ctx.range
          hooks.runs[start] = (hooks.runs[start] ?? 0) + 1
          hooks.order.push(start)
          if (hooks.failAt?.has(start) === true) return yield* fail(`bad row ${start}`)
          const xs = (yield* readNums(ctx.inputs["nums"])).slice(start, end)
          yield* Effect.try({
            try: () => fs.writeFileSync(path.join(ctx.outDir, "part.json"), JSON.stringify(xs.map((x) => x * x))),
            catch: (c) => fail("write", c)
          })
          return { rows: xs.length, metrics: { first: xs[0] ?? null } }
        }),
      merge: (ctx, shards) =>
        Effect.try({
          try: () => {
            const all = shards.flatMap((s) => JSON.parse(fs.readFileSync(path.join(s.dir, "part.json"), "utf8")) as Array<number>)
            fs.writeFileSync(ctx.outputs["squares"], JSON.stringify({ all, shards: shards.map((s) => [s.range.start, s.rows]) }))
            return { rows: { squares: all.length }, metrics: { shards: shards.length } }
          },
          catch: (c) => fail("merge", c)
        })
    }
  })
  return [nums, sq]
}
