/**
 * `judge` sharded (endpoint mode): shards of `generations` rows send their comparisons' requests (both orders,
 * re-samples of unparseable verdicts) into the shared request cache, in an order unlike the single-process run's;
 * the merge (`run`) then finds them answered. `judge.pairs` and `judge.json` are byte for byte those of the
 * single-process run (endpoint counters included: they add the shards' calls), and the server sees exactly the
 * single-process requests, none twice.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { judge } from "../../../src/nodes/judge/stage.ts"
import type { AnyStage } from "../../../src/pipeline/dag.ts"
import { runShardedStage } from "../../../src/pipeline/shards.ts"
import type { ShardRange } from "../../../src/pipeline/stage.ts"
import { type FakeOpenAI, type FakeRequest, startFakeOpenAI } from "../../support/fakeOpenAI.ts"
import { shuffle, testExecutor } from "../../support/shardExecutor.ts"
import { configOf, generationRow, makeContext, paramsOf, tmpDir, writeGenerations } from "../../support/stageB.ts"

const servers: Array<FakeOpenAI> = []
afterAll(async () => {
  for (const s of servers) await s.close()
})

/** Prefers the LLINK answer of even examples; the first answer about every 5th example is unparseable. */
const reply = (r: FakeRequest): string => {
  const a = /\[The Start of Assistant A's Answer\]\n([\s\S]*?)\n\[The End of Assistant A's Answer\]/.exec(r.prompt)?.[1] ?? ""
  const b = /\[The Start of Assistant B's Answer\]\n([\s\S]*?)\n\[The End of Assistant B's Answer\]/.exec(r.prompt)?.[1] ?? ""
  const id = Number(/(\d+)$/.exec(a)?.[1] ?? "0")
  if (id % 5 === 0 && r.attemptForPrompt === 0) return "I cannot decide."
  const llinkWins = id % 2 === 0
  const llinkIsA = a.startsWith("L")
  return llinkWins === llinkIsA ? "Explanation. [[A]]" : b.startsWith("F") && id % 3 === 0 ? "Tie. [[C]]" : "Explanation. [[B]]"
}

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

describe("sharded judge", () => {
  it("gives the single-process bytes and sends exactly the single-process requests", async () => {
    const base = tmpDir("judge-shards")
    const rows = Array.from({ length: 21 }, (_, id) =>
      generationRow({ id, bucket: id % 2 === 0 ? "content" : "qa", llink: `L${id}`, base: `B${id}`, finetune: `F${id}` }))
    const file = await writeGenerations(path.join(base, "generations.parquet"), rows)
    const saved = process.env["OPENAI_BASE_URL"]
    delete process.env["OPENAI_BASE_URL"]
    try {
      const a = await startFakeOpenAI({ content: reply })
      const b = await startFakeOpenAI({ content: reply })
      servers.push(a, b)
      // the base URL is in the params but not in judge.json; concurrency 1 → shards of 8 examples
      const params = (url: string) =>
        paramsOf(judge, configOf({ judge: { mode: "endpoint", invalidRetries: 1, endpoint: { baseUrl: url, concurrency: 1, backoffBaseMs: 1 } } }))
      const single = makeContext(judge, params(a.baseUrl), { generations: file }, path.join(base, "single"))
      await Effect.runPromise(judge.run(single))

      const sharded = makeContext(judge, params(b.baseUrl), { generations: file }, path.join(base, "sharded"))
      const done: Array<ShardRange> = []
      await Effect.runPromise(
        runShardedStage(judge as unknown as AnyStage, sharded, { root: path.join(base, "sharded", "cache"), key: "k" }).pipe(
          Effect.provide(testExecutor([judge as unknown as AnyStage], { reorder: shuffle(3), ran: done, concurrency: 2, provide: (e) => e }))
        )
      )
      expect(done.map((r) => `${r.start}-${r.end}`).sort()).toEqual(["0-8", "16-21", "8-16"])
      expect(sha(sharded.outputs["judge.pairs"])).toBe(sha(single.outputs["judge.pairs"]))
      expect(sha(sharded.outputs["judge"])).toBe(sha(single.outputs["judge"]))
      // 21 examples × 2 comparisons × 2 orders, plus the re-samples; each prompt as often as in the single run
      expect(a.received()).toBeGreaterThan(84)
      expect(b.received()).toBe(a.received())
      expect([...b.receivedByPrompt.entries()].sort()).toEqual([...a.receivedByPrompt.entries()].sort())
    } finally {
      if (saved !== undefined) process.env["OPENAI_BASE_URL"] = saved
    }
  })
})
