/**
 * `synthesize`: the offline template synthesizer (deterministic, filters, quarantine, bucket quotas), invalid replies
 * re-sampled then quarantined (scripted endpoint), and the real HTTP path against the fake server with 20% faults:
 * no row lost, and no answer paid for twice across an interrupted run and its rerun.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Fiber } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { synthesize } from "../../../src/nodes/synthesize/stage.ts"
import { reasonCode, seededOrder, type SynthesizeParams } from "../../../src/nodes/synthesize/work.ts"
import { type ChatRequest, LlmEndpoint, makeEndpointConfig } from "../../../src/services/endpoint.ts"
import { FOREIGN_EMB } from "../../../src/prompts/synthesis.ts"
import { type FakeOpenAI, type FakeRequest, seededRate, startFakeOpenAI } from "../../support/fakeOpenAI.ts"
import { configOf, fixturePairs, makeContext, paramsOf, readRows, tmpDir, writePairs } from "../../support/stageB.ts"

const SHORT = "ផ្ទះ" // 4 code points: below the 12-character minimum
const LONG = "ក".repeat(300)

const setup = async (label: string) => {
  const base = tmpDir(label)
  const trainPairs = fixturePairs(60)
  trainPairs[3] = { english: "A short one.", foreign: SHORT }
  trainPairs[10] = { english: "A long one.", foreign: LONG }
  trainPairs[11] = { english: "  ", foreign: "ក្រុមហ៊ុន សាលារៀន ប្រទេស" }
  const evalPairs = fixturePairs(12, 3).map((p) => ({ ...p, english: p.english.replace("(item", "(eval item") }))
  evalPairs[0] = { english: "Too short.", foreign: SHORT }
  const train = await writePairs(path.join(base, "train.parquet"), trainPairs)
  const evalFile = await writePairs(path.join(base, "eval.parquet"), evalPairs, 1000)
  return { base, trainPairs, evalPairs, inputs: { train, eval: evalFile } }
}

const offlineParams = (extra: Record<string, unknown> = {}): SynthesizeParams =>
  paramsOf(synthesize, configOf({ synth: { mode: "offline", train: 20, val: 5, evalPerBucket: 4, ...extra } }))

const runOffline = async (inputs: Record<string, string>, params: SynthesizeParams) => {
  const ctx = makeContext(synthesize, params, inputs)
  const outcome = await Effect.runPromise(synthesize.run(ctx))
  const read = async (name: string) => readRows(ctx.outputs[name])
  return {
    ctx,
    outcome,
    train: await read("sft.train"),
    val: await read("sft.val"),
    evalRows: await read("sft.eval"),
    quarantine: await read("synthesize.quarantine")
  }
}

describe("synthesize offline", () => {
  it("is deterministic, fills every split, marks rows offline and keeps the row index", async () => {
    const { inputs, trainPairs, evalPairs } = await setup("offline")
    const a = await runOffline(inputs, offlineParams())
    const b = await runOffline(inputs, offlineParams())
    expect(a.train).toEqual(b.train)
    expect(a.val).toEqual(b.val)
    expect(a.evalRows).toEqual(b.evalRows)
    expect(a.quarantine).toEqual(b.quarantine)
    expect(a.train.length).toBe(20)
    expect(a.val.length).toBe(5)
    expect(a.evalRows.filter((r) => r["bucket"] === "content").length).toBe(4)
    expect(a.evalRows.filter((r) => r["bucket"] === "qa").length).toBe(4)
    for (const r of [...a.train, ...a.val]) {
      expect(r["offline"]).toBe(true)
      expect(String(r["input"])).toContain(FOREIGN_EMB)
      expect(String(r["output"]).trim()).not.toBe("")
      const pair = trainPairs[Number(r["row"])]
      expect(r["foreign_raw"]).toBe(pair.foreign)
      expect(r["english_ref"]).toBe(pair.english)
      expect(r["id"]).toBe(Number(r["row"]))
    }
    for (const r of a.evalRows) {
      expect(r["foreign_raw"]).toBe(evalPairs[Number(r["row"])].foreign)
      expect(r["id"]).toBe(1000 + Number(r["row"]))
      expect(r["bucket"]).toBe(r["task_type"] === "qa_about_text" ? "qa" : "content")
    }
    // Train and val are disjoint pairs; eval rows are distinct (pair, task) examples.
    const trainRows = new Set([...a.train, ...a.val].map((r) => r["row"]))
    expect(trainRows.size).toBe(25)
    // Round-robin task types over the synthesized candidates: the four types are balanced within one.
    const counts = new Map<string, number>()
    for (const r of [...a.val, ...a.train]) counts.set(String(r["task_type"]), (counts.get(String(r["task_type"])) ?? 0) + 1)
    expect([...counts.keys()].sort()).toEqual(["bullet_pointify", "qa_about_text", "summarize_in_english", "translate_to_english"])
    expect(Math.max(...counts.values()) - Math.min(...counts.values())).toBeLessThanOrEqual(1)
    expect(a.outcome.metrics?.["offline"]).toBe(true)
    expect(a.outcome.metrics?.["mode"]).toBe("offline")
    expect(a.outcome.metrics?.["endpoint"]).toBe(null)
  })

  it("filters foreign length 12–256 and empty English into the quarantine, with reasons, before any request", async () => {
    // Ask for more rows than there are pairs, so every pair is visited.
    const { inputs } = await setup("filters")
    const r = await runOffline(inputs, offlineParams({ train: 100, val: 0, evalPerBucket: 20 }))
    const reasons = r.quarantine.map((q) => `${q["split"]}:${q["row"]}:${reasonCode(String(q["reason"]))}`)
    expect(reasons).toContain("train:3:foreign text too short")
    expect(reasons).toContain("train:10:foreign text too long")
    expect(reasons).toContain("train:11:empty English reference")
    expect(reasons).toContain("eval:0:foreign text too short")
    // The eval pair is quarantined once, not again on the second pass.
    expect(reasons.filter((x) => x.startsWith("eval:0:")).length).toBe(1)
    for (const q of r.quarantine) expect(q["attempts"]).toBe(0)
    expect(r.train.length).toBe(57)
    for (const row of r.train) expect([3, 10, 11]).not.toContain(row["row"])
    // 11 usable eval pairs: pass 1 alternates the buckets, pass 2 offers each pair to the other bucket.
    expect(r.evalRows.filter((x) => x["bucket"] === "qa").length).toBe(11)
    expect(r.evalRows.filter((x) => x["bucket"] === "content").length).toBe(11)
    expect(r.outcome.metrics?.["filtered"]).toEqual({
      "foreign text too short": 2,
      "foreign text too long": 1,
      "empty English reference": 1
    })
    expect(r.outcome.metrics?.["shortfall"]).toEqual({ train: 43, val: 0, content: 9, qa: 9 })
  })

  it("uses the first pass's distinct pairs when they fill both buckets", async () => {
    const { inputs } = await setup("distinct")
    const r = await runOffline(inputs, offlineParams({ evalPerBucket: 5 }))
    const rows = r.evalRows.map((x) => x["row"])
    expect(new Set(rows).size).toBe(10)
  })

  it("seededOrder is a permutation that depends on the seed", () => {
    const a = Array.from(seededOrder(50, 17, "x"))
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(Array.from(seededOrder(50, 17, "x"))).toEqual(a)
    expect(Array.from(seededOrder(50, 18, "x"))).not.toEqual(a)
  })
})

/** A valid reply for the synthesis prompt in `text` (the user message). */
const validReply = (text: string): string => {
  const task = /^Task type: (\S+)/m.exec(text)?.[1] ?? ""
  const english = /Reference English translation:\n([\s\S]*?)\n\nReturn exactly/.exec(text)?.[1] ?? ""
  return task === "qa_about_text"
    ? JSON.stringify({ question: "What does the foreign text say?", answer: english })
    : JSON.stringify({ instruction: `Please do ${task} for the foreign text.`, answer: english })
}

const userText = (request: ChatRequest): string => request.messages[request.messages.length - 1].content

describe("synthesize with an endpoint", () => {
  it("re-samples invalid replies as variants, then quarantines with every reason and the raw reply", async () => {
    const { inputs } = await setup("scripted")
    const params = paramsOf(synthesize, configOf({ synth: { mode: "endpoint", train: 100, val: 2, evalPerBucket: 2, retries: 2 } }))
    const seen: Array<{ readonly item: string; readonly variant: number; readonly temperature: number | undefined }> = []
    const layer = LlmEndpoint.scripted((request) => {
      const text = userText(request)
      const variant = request.variant ?? 0
      const item = /\(item (\d+)\)/.exec(text)?.[1] ?? "?"
      seen.push({ item, variant, temperature: request.temperature })
      // item 5: never valid; item 6: valid on the second try; everything else valid at once.
      if (text.includes("(item 5)")) return variant === 2 ? "Sure! Here you go." : "{\"instruction\": \"\", \"answer\": \"x\"}"
      if (text.includes("(item 6)") && variant === 0) return "not json"
      return "```json\n" + validReply(text) + "\n```"
    })
    const ctx = makeContext(synthesize, params, inputs)
    const outcome = await Effect.runPromise(synthesize.run(ctx).pipe(Effect.provide(layer)))
    const quarantine = await readRows(ctx.outputs["synthesize.quarantine"])
    const train = await readRows(ctx.outputs["sft.train"])
    const val = await readRows(ctx.outputs["sft.val"])
    const bad = quarantine.filter((q) => q["split"] === "train" && q["row"] === 5)
    expect(bad.length).toBe(1)
    expect(bad[0]["attempts"]).toBe(3)
    expect(bad[0]["reason"]).toBe(
      "attempt 1: empty instruction; attempt 2: empty instruction; attempt 3: reply is not a JSON object or a ```json block"
    )
    expect(bad[0]["raw"]).toBe("Sure! Here you go.")
    expect(seen.filter((s) => s.item === "5").map((s) => [s.variant, s.temperature])).toEqual([
      [0, undefined],
      [1, 0.7],
      [2, 0.7]
    ])
    expect(seen.filter((s) => s.item === "6").map((s) => s.variant)).toEqual([0, 1])
    const all = [...train, ...val]
    // 57 usable training pairs (3 filtered), one of them quarantined.
    expect(all.length).toBe(56)
    expect(all.some((r) => r["row"] === 5)).toBe(false)
    expect(all.some((r) => r["row"] === 6)).toBe(true)
    for (const r of all) {
      expect(r["offline"]).toBe(false)
      expect(String(r["input"])).toContain(FOREIGN_EMB)
      expect(r["output"]).toBe(r["english_ref"])
    }
    expect(outcome.metrics?.["offline"]).toBe(false)
    expect(outcome.metrics?.["quarantinedByReason"]).toEqual({ "reply is not a JSON object or a ```json block": 1 })
    const endpointStats = outcome.metrics?.["endpoint"] as { requestsSent: number }
    expect(endpointStats.requestsSent).toBe(seen.length)
  })

  it("quarantines a request the server refuses (HTTP 400) instead of failing the stage", async () => {
    const server = await startFakeOpenAI({
      content: (r) => validReply(r.prompt),
      faults: (r) => (r.prompt.includes("(item 2)") ? "bad_request" : undefined)
    })
    try {
      const { inputs } = await setup("refused")
      const params = paramsOf(synthesize, configOf({ synth: { mode: "endpoint", train: 100, val: 0, evalPerBucket: 1 } }))
      const ctx = makeContext(synthesize, params, inputs)
      const layer = LlmEndpoint.layer(endpointConfig(server), { env: {} })
      await Effect.runPromise(synthesize.run(ctx).pipe(Effect.provide(layer)))
      const quarantine = await readRows(ctx.outputs["synthesize.quarantine"])
      const refused = quarantine.filter((q) => q["row"] === 2 && q["split"] === "train")
      expect(refused.length).toBe(1)
      expect(String(refused[0]["reason"])).toMatch(/^attempt 1: endpoint refused the request: .*client status 400/)
      expect((await readRows(ctx.outputs["sft.train"])).length).toBe(56)
    } finally {
      await server.close()
    }
  })
})

const servers: Array<FakeOpenAI> = []
afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.close()
})

const endpointConfig = (server: FakeOpenAI) =>
  makeEndpointConfig({
    baseUrl: server.baseUrl,
    model: "fake-70b",
    timeoutMs: 10_000,
    maxRetries: 8,
    backoffBaseMs: 1,
    backoffMaxMs: 5,
    concurrency: 4
  })

describe("synthesize over HTTP with 20% faults", () => {
  const FAULTS = seededRate(0.2, 7, ["rate_limit", "server_error", "malformed", "empty", "reset"])
  const content = (r: FakeRequest) => validReply(r.prompt)
  const synthConfig = { mode: "endpoint", train: 24, val: 4, evalPerBucket: 4, endpoint: { concurrency: 4 } }

  it("loses no row: the tables equal a fault-free run's", async () => {
    const { inputs, base } = await setup("faults")
    const params = paramsOf(synthesize, configOf({ synth: synthConfig }))
    const clean = await startFakeOpenAI({ content })
    const faulty = await startFakeOpenAI({ content, faults: FAULTS })
    servers.push(clean, faulty)
    const runWith = async (server: FakeOpenAI, dir: string) => {
      const ctx = makeContext(synthesize, params, inputs, path.join(base, dir))
      const layer = LlmEndpoint.layer(endpointConfig(server), { cacheDir: path.join(base, dir, "requests"), env: {} })
      const outcome = await Effect.runPromise(synthesize.run(ctx).pipe(Effect.provide(layer)))
      const tables = await Promise.all(["sft.train", "sft.val", "sft.eval"].map((n) => readRows(ctx.outputs[n])))
      return { outcome, tables }
    }
    fs.mkdirSync(path.join(base, "a"))
    fs.mkdirSync(path.join(base, "b"))
    const a = await runWith(clean, "a")
    const b = await runWith(faulty, "b")
    expect(b.tables).toEqual(a.tables)
    expect(b.tables[0].length).toBe(24)
    const faults = [...faulty.faultsServed.values()].reduce((x, y) => x + y, 0)
    expect(faults).toBeGreaterThan(0)
    const stats = b.outcome.metrics?.["endpoint"] as { retriesTotal: number; answered: number; failures: number }
    expect(stats.retriesTotal).toBe(faults)
    expect(stats.failures).toBe(0)
    for (const n of faulty.answeredByPrompt.values()) expect(n).toBe(1)
  })

  it("an interrupted run and its rerun pay for no answer twice (the rerun's cache hits = the first run's answers)", async () => {
    const { inputs, base } = await setup("resume")
    // Every answer that is not a fault comes late, so the interrupt lands mid-run.
    const server = await startFakeOpenAI({ content, faults: (r) => FAULTS(r) ?? "slow", slowMs: 20 })
    servers.push(server)
    const params = paramsOf(synthesize, configOf({ synth: synthConfig }))
    const requests = path.join(base, "requests")
    const config = endpointConfig(server)

    // Run 1: interrupted once 10 answers have arrived.
    const ctx1 = makeContext(synthesize, params, inputs, path.join(base, "run1"))
    const answered = () => [...server.answeredByPrompt.values()].reduce((x, y) => x + y, 0)
    const first = Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(synthesize.run(ctx1))
      while (answered() < 10) yield* Effect.sleep(5)
      yield* Fiber.interrupt(fiber)
      return yield* LlmEndpoint.use((e) => e.stats)
    })
    const s1 = await Effect.runPromise(first.pipe(Effect.provide(LlmEndpoint.layer(config, { cacheDir: requests, env: {} }))))
    const answeredRun1 = answered()
    expect(answeredRun1).toBeGreaterThanOrEqual(10)
    expect(s1.answered).toBe(answeredRun1)
    expect(fs.existsSync(ctx1.outputs["sft.train"])).toBe(false)

    // Run 2: a fresh endpoint on the same request cache.
    const ctx2 = makeContext(synthesize, params, inputs, path.join(base, "run2"))
    const outcome = await Effect.runPromise(
      synthesize.run(ctx2).pipe(Effect.provide(LlmEndpoint.layer(config, { cacheDir: requests, env: {} })))
    )
    const stats = outcome.metrics?.["endpoint"] as { cacheHits: number; answered: number }
    expect(stats.cacheHits).toBe(answeredRun1)
    for (const [prompt, n] of server.answeredByPrompt) expect([prompt, n]).toEqual([prompt, 1])
    expect(answered()).toBe(answeredRun1 + stats.answered)
    expect((await readRows(ctx2.outputs["sft.train"])).length).toBe(24)
  })
})

describe("synthesize without a provided endpoint", () => {
  it("builds its own from synth.endpoint, caches answers under <cacheDir>/requests, and a rerun sends nothing", async () => {
    const server = await startFakeOpenAI({ content: (r) => validReply(r.prompt) })
    servers.push(server)
    const { inputs, base } = await setup("own-endpoint")
    const saved = process.env["OPENAI_BASE_URL"]
    delete process.env["OPENAI_BASE_URL"]
    try {
      // auto + a configured base URL → endpoint mode, and the URL (redacted) enters the params.
      const params = paramsOf(synthesize, configOf({ synth: { train: 6, val: 2, evalPerBucket: 2, endpoint: { baseUrl: server.baseUrl, backoffBaseMs: 1 } } }))
      expect(params.mode).toBe("endpoint")
      expect(params.baseUrl).toBe(server.baseUrl)
      expect(paramsOf(synthesize, configOf({})).mode).toBe("offline")
      const ctx1 = makeContext(synthesize, params, inputs, path.join(base, "first"))
      const o1 = await Effect.runPromise(synthesize.run(ctx1))
      const s1 = o1.metrics?.["endpoint"] as { requestsSent: number; cacheHits: number; promptTokens: number }
      expect(s1.requestsSent).toBeGreaterThan(0)
      expect(s1.cacheHits).toBe(0)
      expect(s1.promptTokens).toBeGreaterThan(0)
      // scratch is <base>/first/cache/synthesize/k.partial → the request cache is <base>/first/cache/requests
      expect(fs.existsSync(path.join(base, "first", "cache", "requests"))).toBe(true)
      // Same cache root, another run: every answer comes from the cache.
      const ctx2 = makeContext(synthesize, params, inputs, path.join(base, "first"))
      const o2 = await Effect.runPromise(synthesize.run(ctx2))
      const s2 = o2.metrics?.["endpoint"] as { requestsSent: number; cacheHits: number }
      expect(s2.requestsSent).toBe(0)
      expect(s2.cacheHits).toBe(s1.requestsSent)
      expect(await readRows(ctx2.outputs["sft.train"])).toEqual(await readRows(ctx1.outputs["sft.train"]))
    } finally {
      if (saved !== undefined) process.env["OPENAI_BASE_URL"] = saved
    }
  })
})
