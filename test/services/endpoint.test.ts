/**
 * The LLM endpoint over real HTTP against the fake OpenAI-compatible server: success, every fault kind retried and
 * counted, 4xx not retried, timeouts, the on-disk cache, in-flight dedup, a seeded 20% fault run, kill-and-resume
 * with no answer paid twice, and the API key never leaking into files, logs, stats or errors.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Deferred, Effect, Fiber, Layer, Logger, References } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import {
  type ChatRequest,
  EndpointError,
  type EndpointConfigInput,
  EndpointLimits,
  LlmEndpoint,
  makeEndpointConfig
} from "../../src/services/endpoint.ts"
import * as RequestCache from "../../src/services/requestCache.ts"
import {
  everyNth,
  type FakeOpenAI,
  type FakeRequest,
  type Fault,
  firstAttempts,
  seededRate,
  startFakeOpenAI
} from "../support/fakeOpenAI.ts"

const KEY_ENV = "LLINK_TEST_ENDPOINT_KEY"
const SECRET = "sk-test-SECRETdoNotLeak-0123456789abcdef"
const env = { [KEY_ENV]: SECRET }

const servers: Array<FakeOpenAI> = []
const start = async (options: Parameters<typeof startFakeOpenAI>[0] = {}) => {
  const server = await startFakeOpenAI(options)
  servers.push(server)
  return server
}
afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.close()
})

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "llink-endpoint-"))

const configFor = (server: FakeOpenAI, extra: Partial<EndpointConfigInput> = {}) =>
  makeEndpointConfig({
    baseUrl: server.baseUrl,
    model: "fake-70b",
    apiKeyEnv: KEY_ENV,
    // Generous, so a loaded machine never turns a normal answer into a timeout; hang tests set their own.
    timeoutMs: 10_000,
    maxRetries: 3,
    backoffBaseMs: 2,
    backoffMaxMs: 20,
    concurrency: 4,
    ...extra
  })

const ask = (prompt: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  messages: [{ role: "system", content: "You are terse." }, { role: "user", content: prompt }],
  ...extra
})

const run = <A, E>(effect: Effect.Effect<A, E, LlmEndpoint>, layer: Layer.Layer<LlmEndpoint, EndpointError>) =>
  Effect.runPromise(effect.pipe(Effect.provide(layer)))

const chat = (request: ChatRequest) => LlmEndpoint.use((e) => e.chat(request))
const stats = LlmEndpoint.use((e) => e.stats)

const allFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? allFiles(path.join(dir, d.name)) : [path.join(dir, d.name)]
  )

describe("LlmEndpoint over HTTP", () => {
  it("answers a request, sends the key as a bearer token, and counts tokens", async () => {
    const server = await start()
    const layer = LlmEndpoint.layer(configFor(server, { temperature: 0.3, seed: 7 }), { cacheDir: tmpDir(), env })
    const [result, s] = await run(Effect.all([chat(ask("hello world")), stats]), layer)
    expect(result.content).toBe("answer to: hello world")
    expect(result.cached).toBe(false)
    expect(result.attempts).toBe(1)
    expect(result.finishReason).toBe("stop")
    expect(result.key).toMatch(/^[0-9a-f]{64}$/)
    expect(server.authorizations).toEqual([`Bearer ${SECRET}`])
    const body = server.bodies[0]
    expect(body["model"]).toBe("fake-70b")
    expect(body["temperature"]).toBe(0.3)
    expect(body["seed"]).toBe(7)
    expect(body["max_tokens"]).toBe(512)
    expect(s.requestsSent).toBe(1)
    expect(s.answered).toBe(1)
    expect(s.retriesTotal).toBe(0)
    expect(s.promptTokens).toBe(2)
    expect(s.completionTokens).toBe(4)
  })

  const retried: ReadonlyArray<[Fault, keyof import("../../src/services/endpoint.ts").EndpointStats["retries"]]> = [
    ["rate_limit", "rate_limit"],
    ["server_error", "server"],
    ["hang", "timeout"],
    ["timeout", "timeout"],
    ["reset", "connection"],
    ["malformed", "malformed"],
    ["empty", "empty"]
  ]
  for (const [fault, cause] of retried) {
    it(`retries a ${fault} fault twice and counts it as ${cause}`, async () => {
      const server = await start({ faults: firstAttempts(2, fault) })
      // a hang needs the client's own timer; 2 s leaves the normal third answer a wide margin on loopback
      const layer = LlmEndpoint.layer(configFor(server, fault === "hang" ? { timeoutMs: 2_000 } : {}), { env })
      const [result, s] = await run(Effect.all([chat(ask(`p-${fault}`)), stats]), layer)
      expect(result.content).toBe(`answer to: p-${fault}`)
      expect(result.attempts).toBe(3)
      expect(server.received()).toBe(3)
      expect(s.requestsSent).toBe(3)
      expect(s.retries[cause]).toBe(2)
      expect(s.retriesTotal).toBe(2)
      expect(s.answered).toBe(1)
      expect(s.failures).toBe(0)
    })
  }

  it("waits for a slow answer without retrying", async () => {
    const server = await start({ faults: () => "slow", slowMs: 50 })
    const layer = LlmEndpoint.layer(configFor(server), { env })
    const [result, s] = await run(Effect.all([chat(ask("slowly")), stats]), layer)
    expect(result.content).toBe("answer to: slowly")
    expect(s.requestsSent).toBe(1)
    expect(s.retriesTotal).toBe(0)
  })

  it("does not retry a 400 and reports a tagged error", async () => {
    const server = await start({ faults: () => "bad_request" })
    const layer = LlmEndpoint.layer(configFor(server), { env })
    const [error, s] = await run(Effect.all([Effect.flip(chat(ask("bad"))), stats]), layer)
    expect(error).toBeInstanceOf(EndpointError)
    expect(error._tag).toBe("EndpointError")
    expect(error.kind).toBe("client")
    expect(error.status).toBe(400)
    expect(error.attempts).toBe(1)
    expect(error.url).toBe(`${server.baseUrl}/chat/completions`)
    expect(error.message).toContain("client status 400")
    expect(server.received()).toBe(1)
    expect(s.failures).toBe(1)
    expect(s.retriesTotal).toBe(0)
  })

  it("gives up after maxRetries on a persistent 500 and on a server that never answers", async () => {
    const server = await start({ faults: (r) => (r.prompt === "down" ? "server_error" : "hang") })
    const layer = LlmEndpoint.layer(configFor(server, { maxRetries: 2, timeoutMs: 150 }), { env })
    const [down, hung, s] = await run(
      Effect.all([Effect.flip(chat(ask("down"))), Effect.flip(chat(ask("hung"))), stats]),
      layer
    )
    expect(down.kind).toBe("server")
    expect(down.status).toBe(500)
    expect(down.attempts).toBe(3)
    expect(hung.kind).toBe("timeout")
    expect(hung.attempts).toBe(3)
    expect(hung.reason).toContain("150 ms")
    expect(server.receivedByPrompt.get("down")).toBe(3)
    expect(server.receivedByPrompt.get("hung")).toBe(3)
    expect(s.failures).toBe(2)
    expect(s.retries.server).toBe(2)
    expect(s.retries.timeout).toBe(2)
  })

  it("fails to build without a base URL, naming the fix", async () => {
    const config = makeEndpointConfig({ model: "m" })
    const error = await Effect.runPromise(
      Effect.flip(chat(ask("x")).pipe(Effect.provide(LlmEndpoint.layer(config, { env: {} }))))
    )
    expect(error.kind).toBe("config")
    expect(error.reason).toContain("OPENAI_BASE_URL")
  })

  it("takes the base URL from OPENAI_BASE_URL when the config leaves it empty", async () => {
    const server = await start()
    const config = makeEndpointConfig({ model: "m", apiKeyEnv: KEY_ENV, maxRetries: 0 })
    const layer = LlmEndpoint.layer(config, { env: { ...env, OPENAI_BASE_URL: server.baseUrl } })
    const result = await run(chat(ask("via env")), layer)
    expect(result.content).toBe("answer to: via env")
  })

  it("rejects a request that cannot be keyed (non-finite sampling) without sending it", async () => {
    const server = await start()
    const layer = LlmEndpoint.layer(configFor(server), { env })
    const error = await run(Effect.flip(chat(ask("nan", { temperature: Number.NaN }))), layer)
    expect(error.kind).toBe("client")
    expect(error.attempts).toBe(0)
    expect(error.reason).toContain("non-finite")
    expect(server.received()).toBe(0)
  })

  it("uses max_completion_tokens when configured and sends JSON mode when asked", async () => {
    const server = await start()
    const layer = LlmEndpoint.layer(configFor(server, { maxTokensField: "max_completion_tokens", maxTokens: 64 }), { env })
    await run(chat(ask("json please", { responseFormat: "json_object", stop: ["\n\n"] })), layer)
    const body = server.bodies[0]
    expect(body["max_completion_tokens"]).toBe(64)
    expect(body["max_tokens"]).toBeUndefined()
    expect(body["response_format"]).toEqual({ type: "json_object" })
    expect(body["stop"]).toEqual(["\n\n"])
  })
})

describe("LlmEndpoint request cache", () => {
  it("answers an identical request from the cache without sending anything, across layers", async () => {
    const server = await start()
    const cacheDir = tmpDir()
    const config = configFor(server)
    const first = await run(Effect.all([chat(ask("cache me")), chat(ask("cache me")), stats]), LlmEndpoint.layer(config, { cacheDir, env }))
    expect(first[0].cached).toBe(false)
    expect(first[1].cached).toBe(true)
    expect(first[1].content).toBe(first[0].content)
    expect(first[1].key).toBe(first[0].key)
    expect(first[2].cacheHits).toBe(1)
    expect(server.received()).toBe(1)

    const second = await run(Effect.all([chat(ask("cache me")), stats]), LlmEndpoint.layer(config, { cacheDir, env }))
    expect(second[0].cached).toBe(true)
    expect(second[0].content).toBe("answer to: cache me")
    expect(second[1].requestsSent).toBe(0)
    expect(second[1].cacheHits).toBe(1)
    expect(server.received()).toBe(1)

    // A different sampling setting is a different request.
    await run(chat(ask("cache me", { temperature: 0.9 })), LlmEndpoint.layer(config, { cacheDir, env }))
    await run(chat(ask("cache me", { variant: 1 })), LlmEndpoint.layer(config, { cacheDir, env }))
    expect(server.received()).toBe(3)
    const size = await Effect.runPromise(Effect.flatMap(RequestCache.open(cacheDir), (c) => c.size))
    expect(size).toBe(3)
  })

  it("deduplicates identical requests in flight", async () => {
    const server = await start({ faults: () => "slow", slowMs: 80 })
    const layer = LlmEndpoint.layer(configFor(server), { cacheDir: tmpDir(), env })
    const [results, s] = await run(
      Effect.all([Effect.all(Array.from({ length: 5 }, () => chat(ask("same"))), { concurrency: "unbounded" }), stats]),
      layer
    )
    expect(results.map((r) => r.content)).toEqual(Array(5).fill("answer to: same"))
    expect(server.received()).toBe(1)
    expect(s.dedupedInFlight).toBe(4)
    expect(s.requestsSent).toBe(1)
  })

  it("re-requests a corrupt cache entry, moves it aside and counts it", async () => {
    const server = await start()
    const cacheDir = tmpDir()
    const config = configFor(server)
    const first = await run(chat(ask("fragile")), LlmEndpoint.layer(config, { cacheDir, env }))
    const file = RequestCache.entryPath(cacheDir, first.key)
    fs.writeFileSync(file, "{ truncated")
    const [again, s] = await run(Effect.all([chat(ask("fragile")), stats]), LlmEndpoint.layer(config, { cacheDir, env }))
    expect(again.cached).toBe(false)
    expect(s.cacheCorrupt).toBe(1)
    expect(server.received()).toBe(2)
    expect(fs.readdirSync(path.dirname(file)).some((n) => n.startsWith(`${first.key}.json.corrupt-`))).toBe(true)
    expect(JSON.parse(fs.readFileSync(file, "utf8")).answer.content).toBe("answer to: fragile")
  })

  it("loses no answer in a seeded 20% fault run of 50 distinct requests at concurrency 4", async () => {
    // Timeouts come as the server's injected 408s, and the client's timer stays at the generous default: a short
    // timer would race the normal answers on a loaded machine and break the exact counts below.
    const kinds: Array<Fault> = ["rate_limit", "server_error", "malformed", "empty", "reset", "timeout"]
    const server = await start({ faults: seededRate(0.2, 1234, kinds) })
    const layer = LlmEndpoint.layer(configFor(server, { maxRetries: 8 }), { cacheDir: tmpDir(), env })
    const prompts = Array.from({ length: 50 }, (_, i) => `question ${i}`)
    const [results, s] = await run(
      Effect.all([Effect.forEach(prompts, (p) => chat(ask(p)), { concurrency: 4 }), stats]),
      layer
    )
    expect(results.map((r) => r.content)).toEqual(prompts.map((p) => `answer to: ${p}`))
    const faults = [...server.faultsServed.values()].reduce((a, b) => a + b, 0)
    expect(faults).toBeGreaterThan(0)
    expect(s.retriesTotal).toBe(faults)
    expect(s.requestsSent).toBe(50 + faults)
    expect(server.received()).toBe(50 + faults)
    for (const p of prompts) expect(server.answeredByPrompt.get(p)).toBe(1)
    expect(s.answered).toBe(50)
    expect(s.failures).toBe(0)
  })

  it("kill and resume: an interrupted batch rerun on the same cache pays for no answer twice", async () => {
    const server = await start({ faults: () => "slow", slowMs: 25 })
    const cacheDir = tmpDir()
    const config = configFor(server, { concurrency: 4 })
    const prompts = Array.from({ length: 20 }, (_, i) => `item ${i}`)
    const K = 6

    // Run 1: interrupt the batch once K answers have come back.
    const firstRun = Effect.gen(function*() {
      const reachedK = yield* Deferred.make<void>()
      let answers = 0
      const batch = Effect.forEach(
        prompts,
        (p) =>
          chat(ask(p)).pipe(
            Effect.tap(() =>
              Effect.suspend(() => (++answers === K ? Deferred.succeed(reachedK, undefined) : Effect.succeed(false)))
            )
          ),
        { concurrency: 4 }
      )
      const fiber = yield* Effect.forkChild(batch)
      yield* Deferred.await(reachedK)
      yield* Fiber.interrupt(fiber)
      return yield* stats
    })
    const s1 = await run(firstRun, LlmEndpoint.layer(config, { cacheDir, env }))
    const answeredRun1 = [...server.answeredByPrompt.values()].reduce((a, b) => a + b, 0)
    expect(answeredRun1).toBeGreaterThanOrEqual(K)
    expect(answeredRun1).toBeLessThan(prompts.length)
    // Everything the server answered was kept (in-flight attempts finished and were cached).
    expect(s1.answered).toBe(answeredRun1)
    expect(server.received()).toBe(answeredRun1)

    // Run 2: a fresh layer on the same cache finishes the batch.
    const [results, s2] = await run(
      Effect.all([Effect.forEach(prompts, (p) => chat(ask(p)), { concurrency: 4 }), stats]),
      LlmEndpoint.layer(config, { cacheDir, env })
    )
    expect(results.map((r) => r.content)).toEqual(prompts.map((p) => `answer to: ${p}`))
    expect(s2.cacheHits).toBe(answeredRun1)
    expect(s2.requestsSent).toBe(prompts.length - answeredRun1)
    for (const p of prompts) {
      expect(server.receivedByPrompt.get(p)).toBe(1)
      expect(server.answeredByPrompt.get(p)).toBe(1)
    }
    const size = await Effect.runPromise(Effect.flatMap(RequestCache.open(cacheDir), (c) => c.size))
    expect(size).toBe(prompts.length)
  })

  it("with finishInFlightOnInterrupt off, an interrupt aborts the request on the wire", async () => {
    const server = await start({ faults: () => "hang" })
    const layer = LlmEndpoint.layer(configFor(server, { timeoutMs: 60_000, finishInFlightOnInterrupt: false }), { env })
    const program = Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(chat(ask("never")))
      while (server.received() === 0) yield* Effect.sleep(5)
      yield* Fiber.interrupt(fiber)
      while (server.abandoned() === 0) yield* Effect.sleep(5)
      return yield* stats
    })
    const s = await run(program, layer)
    expect(server.abandoned()).toBe(1)
    expect(s.answered).toBe(0)
    expect(s.failures).toBe(0)
  })

  it("paces requests with the token bucket (lower bound only)", async () => {
    const server = await start()
    const layer = LlmEndpoint.layer(configFor(server, { requestsPerMinute: 1200, concurrency: 1 }), { env })
    const t0 = Date.now()
    await run(Effect.forEach(["a", "b", "c", "d", "e", "f"], (p) => chat(ask(p)), { concurrency: 6 }), layer)
    // 20 requests/s with a bucket of 1: six requests need at least five 50 ms refills.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5 * 50 - 5)
    expect(server.received()).toBe(6)
  })
})

describe("LlmEndpoint secrecy", () => {
  it("never writes the API key to the cache, the logs, the stats or an error", async () => {
    const server = await start({
      faults: (r) => (r.prompt === "echo" ? "unauthorized_echo" : r.attemptForPrompt === 0 ? "server_error" : undefined)
    })
    const cacheDir = tmpDir()
    const lines: Array<string> = []
    const capture = Logger.make((o) => {
      lines.push(`${o.logLevel} ${JSON.stringify(o.message)} ${String(o.cause)}`)
    })
    const layer = LlmEndpoint.layer(configFor(server), { cacheDir, env })
    const program = Effect.gen(function*() {
      const ok = yield* chat(ask("fine"))
      const error = yield* Effect.flip(chat(ask("echo")))
      const s = yield* stats
      return { ok, error, s }
    }).pipe(
      Effect.provide(Layer.merge(layer, Logger.layer([capture]))),
      Effect.provideService(References.MinimumLogLevel, "All")
    )
    const { ok, error, s } = await Effect.runPromise(program)
    expect(ok.content).toBe("answer to: fine")
    expect(s.retries.server).toBe(1)
    // The key really was sent, and the server echoed it back in its error body.
    expect(server.authorizations.every((a) => a === `Bearer ${SECRET}`)).toBe(true)
    expect(error.kind).toBe("client")
    expect(error.status).toBe(401)
    expect(error.reason).toContain("Incorrect API key provided")
    expect(lines.some((l) => l.includes("retrying"))).toBe(true)

    const texts = [
      error.message,
      error.reason,
      String(error),
      JSON.stringify(error),
      JSON.stringify(s),
      JSON.stringify(ok),
      ...lines,
      ...allFiles(cacheDir).map((f) => fs.readFileSync(f, "utf8"))
    ]
    expect(allFiles(cacheDir).length).toBeGreaterThan(0)
    for (const t of texts) {
      expect(t).not.toContain(SECRET)
      expect(t).not.toContain("SECRETdoNotLeak")
    }
  })
})

describe("fake server fault schedules", () => {
  const req = (index: number, prompt: string, attemptForPrompt: number): FakeRequest => ({ index, prompt, attemptForPrompt, body: {} })
  it("are deterministic functions of the request", () => {
    const nth = everyNth(3, "server_error")
    expect([0, 1, 2, 3, 4, 5].map((i) => nth(req(i, "p", 0)))).toEqual([undefined, undefined, "server_error", undefined, undefined, "server_error"])
    const rate = seededRate(0.2, 7, ["rate_limit", "empty"])
    const draws = Array.from({ length: 2000 }, (_, i) => rate(req(i, `p${i % 500}`, Math.floor(i / 500))))
    expect(Array.from({ length: 2000 }, (_, i) => rate(req(i, `p${i % 500}`, Math.floor(i / 500))))).toEqual(draws)
    const share = draws.filter((d) => d !== undefined).length / draws.length
    expect(share).toBeGreaterThan(0.15)
    expect(share).toBeLessThan(0.25)
    expect(new Set(draws.filter((d) => d !== undefined))).toEqual(new Set(["rate_limit", "empty"]))
    expect(firstAttempts(1, "hang")(req(9, "q", 0))).toBe("hang")
    expect(firstAttempts(1, "hang")(req(9, "q", 1))).toBeUndefined()
  })
})

describe("LlmEndpoint.scripted", () => {
  it("answers from a function, fails with its errors and counts calls", async () => {
    const layer = LlmEndpoint.scripted((request, index) => {
      const last = request.messages[request.messages.length - 1]?.content ?? ""
      if (last === "fail") {
        return Effect.fail(new EndpointError({ kind: "server", attempts: 1, url: "scripted", model: "scripted", reason: "scripted failure" }))
      }
      return `#${index}: ${last.toUpperCase()}`
    })
    const program = Effect.gen(function*() {
      const a = yield* chat(ask("one"))
      const b = yield* chat(ask("two"))
      const e = yield* Effect.flip(chat(ask("fail")))
      return { a, b, e, s: yield* stats }
    })
    const { a, b, e, s } = await Effect.runPromise(program.pipe(Effect.provide(layer)))
    expect(a.content).toBe("#0: ONE")
    expect(b.content).toBe("#1: TWO")
    expect(a.key).not.toBe(b.key)
    expect(e.reason).toBe("scripted failure")
    expect(s.requestsSent).toBe(3)
    expect(s.answered).toBe(2)
    expect(s.failures).toBe(1)
  })
})

describe("EndpointLimits", () => {
  it("two endpoints on shared limits keep `concurrency` requests open between them; on their own, each has its own", async () => {
    const server = await start({ faults: () => "slow", slowMs: 60 })
    const config = configFor(server, { concurrency: 3 })
    const burst = (limits: EndpointLimits["Service"] | undefined, tag: string) =>
      Effect.forEach([0, 1], (e) =>
        Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(LlmEndpoint.layer(config, { env, limits: limits?.forConfig(config) }))
          const endpoint = Context.get(context, LlmEndpoint)
          yield* Effect.forEach(Array.from({ length: 9 }, (_, i) => i), (i) => endpoint.chat(ask(`${tag} endpoint ${e} request ${i}`)), { concurrency: "unbounded", discard: true })
        })), { concurrency: "unbounded", discard: true })
    await Effect.runPromise(burst(EndpointLimits.shared(), "shared"))
    expect(server.maxOpen()).toBe(3)
    server.resetMaxOpen()
    await Effect.runPromise(burst(undefined, "own"))
    expect(server.maxOpen()).toBe(6)
  })
})
