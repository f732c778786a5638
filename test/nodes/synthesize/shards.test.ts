/**
 * `synthesize` sharded (endpoint mode): shards send the requests of ranges of training candidates into the shared
 * request cache, last shard first; the merge (`run`) then finds them answered. The tables are
 * byte for byte those of the single-process run, and the server sees exactly the requests of the single-process run:
 * none sent twice, none extra (re-samples of invalid replies included).
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { synthesize } from "../../../src/nodes/synthesize/stage.ts"
import type { AnyStage } from "../../../src/pipeline/dag.ts"
import { runShardedStage } from "../../../src/pipeline/shards.ts"
import { testExecutor } from "../../support/shardExecutor.ts"
import type { ShardRange } from "../../../src/pipeline/stage.ts"
import { type FakeOpenAI, type FakeRequest, startFakeOpenAI } from "../../support/fakeOpenAI.ts"
import { configOf, fixturePairs, makeContext, paramsOf, tmpDir, writePairs } from "../../support/stageB.ts"

const servers: Array<FakeOpenAI> = []
afterAll(async () => {
  for (const s of servers) await s.close()
})

/** A valid reply, except the first answer to every 7th item (an invalid one, so a re-sample is requested). */
const reply = (r: FakeRequest): string => {
  const item = Number(/\(item (\d+)\)/.exec(r.prompt)?.[1] ?? "0")
  if (item % 7 === 0 && r.attemptForPrompt === 0) return "Sure! Here you go."
  const task = /^Task type: (\S+)/m.exec(r.prompt)?.[1] ?? ""
  const english = /Reference English translation:\n([\s\S]*?)\n\nReturn exactly/.exec(r.prompt)?.[1] ?? ""
  return task === "qa_about_text"
    ? JSON.stringify({ question: "What does the foreign text say?", answer: english })
    : JSON.stringify({ instruction: `Please do ${task} for the foreign text.`, answer: english })
}

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")
const OUTPUTS = ["sft.train", "sft.val", "sft.eval", "synthesize.quarantine"]

describe("sharded synthesize", () => {
  it("gives the single-process bytes and sends exactly the single-process requests", async () => {
    const base = tmpDir("synth-shards")
    const train = await writePairs(path.join(base, "train.parquet"), fixturePairs(60))
    const evalFile = await writePairs(path.join(base, "eval.parquet"), fixturePairs(12, 3), 1000)
    const inputs = { train, eval: evalFile }
    const saved = process.env["OPENAI_BASE_URL"]
    delete process.env["OPENAI_BASE_URL"]
    try {
      const a = await startFakeOpenAI({ content: reply })
      const b = await startFakeOpenAI({ content: reply })
      servers.push(a, b)
      const params = (url: string) =>
        paramsOf(synthesize, configOf({ synth: { train: 30, val: 6, evalPerBucket: 3, endpoint: { baseUrl: url, concurrency: 1, backoffBaseMs: 1 } } }))
      const single = makeContext(synthesize, params(a.baseUrl), inputs, path.join(base, "single"))
      const singleOutcome = await Effect.runPromise(synthesize.run(single))

      const sharded = makeContext(synthesize, params(b.baseUrl), inputs, path.join(base, "sharded"))
      const done: Array<ShardRange> = []
      const outcome = await Effect.runPromise(
        runShardedStage(synthesize as unknown as AnyStage, sharded, { root: path.join(base, "sharded", "cache"), key: "k" }).pipe(
          Effect.provide(testExecutor([synthesize as unknown as AnyStage], { reorder: (p) => [...p].reverse(), ran: done, provide: (e) => e }))
        )
      )
      // 36 positions in shards of 16 (concurrency 1 × 16)
      expect(done.map((r) => r.start)).toEqual([32, 16, 0])
      for (const name of OUTPUTS) expect(sha(sharded.outputs[name])).toBe(sha(single.outputs[name]))
      // every request once, exactly as many as the single-process run sent, re-samples included
      expect(b.received()).toBe(a.received())
      expect([...b.receivedByPrompt.entries()].sort()).toEqual([...a.receivedByPrompt.entries()].sort())
      expect(Math.max(...b.receivedByPrompt.values())).toBe(2)
      // the stage's counters add the shards' calls to the merge's (which found the shards' answers in the cache
      // and sent only the rest, the eval pairs): what the single-process run reports
      type Counters = { requestsSent: number; cacheHits: number; answered: number }
      const stats = outcome.metrics?.["endpoint"] as Counters
      const singleStats = singleOutcome.metrics?.["endpoint"] as Counters
      expect(stats.requestsSent).toBe(b.received())
      expect([stats.requestsSent, stats.answered, stats.cacheHits]).toEqual([singleStats.requestsSent, singleStats.answered, singleStats.cacheHits])
    } finally {
      if (saved !== undefined) process.env["OPENAI_BASE_URL"] = saved
    }
  })
})
