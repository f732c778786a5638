/**
 * A small OpenAI-compatible chat-completions server for tests. It listens on 127.0.0.1 on a random port, answers
 * `POST /v1/chat/completions` with `content(request)`, and injects faults on demand from a deterministic schedule.
 * It counts what it received (per distinct prompt = the last user message) and what it answered, so tests can prove
 * that no answer was paid for twice. Call `close()` at the end of each test: it destroys open (hung) sockets too.
 */
import { createHash } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"

/**
 * Faults the server can inject. `slow` still answers (after `slowMs`); `reset` drops the connection unanswered;
 * `hang` never answers (the client's own timer must fire); `timeout` answers 408 at once, a timeout injected on
 * purpose, so a test can count timeouts exactly without racing a short client timer against normal answers.
 */
export type Fault =
  | "slow"
  | "rate_limit"
  | "server_error"
  | "hang"
  | "timeout"
  | "malformed"
  | "empty"
  | "bad_request"
  | "unauthorized_echo"
  | "reset"

export interface FakeRequest {
  /** 0-based arrival index over the server's life. */
  readonly index: number
  /** The last user message (the "prompt" used for counting). */
  readonly prompt: string
  /** 0-based count of earlier requests with the same prompt. */
  readonly attemptForPrompt: number
  /** The decoded JSON body. */
  readonly body: Record<string, unknown>
}

/** Decides the fault (or none) for each request. Should be a pure function of the request for reproducibility. */
export type FaultSchedule = (request: FakeRequest) => Fault | undefined

export interface FakeOpenAIOptions {
  /** Answer text; default `answer to: <prompt>`. */
  readonly content?: (request: FakeRequest) => string
  readonly faults?: FaultSchedule
  /** Delay of a `slow` answer. Default 30 ms. */
  readonly slowMs?: number
  /** `retry-after` seconds sent with 429. Default 0. */
  readonly retryAfterSeconds?: number
  /** Called as each successful answer is fully written, with the count so far: an event a test can act on at once. */
  readonly onAnswered?: (request: FakeRequest, answeredTotal: number) => void
}

export interface FakeOpenAI {
  /** e.g. `http://127.0.0.1:43121/v1`. */
  readonly baseUrl: string
  /** Requests received (any outcome). */
  readonly received: () => number
  /** The most requests that were open at once (received, response not yet finished), since the start or `resetMaxOpen`. */
  readonly maxOpen: () => number
  readonly resetMaxOpen: () => void
  readonly receivedByPrompt: ReadonlyMap<string, number>
  /** Successful answers fully written, per prompt. */
  readonly answeredByPrompt: ReadonlyMap<string, number>
  readonly faultsServed: ReadonlyMap<Fault, number>
  /** Requests whose connection closed before an answer was written (client aborts, hung requests at close). */
  readonly abandoned: () => number
  /** GET /v1/models requests answered (the pre-flight's probe). */
  readonly modelListings: () => number
  /** Every Authorization header seen (to check the key was sent). */
  readonly authorizations: ReadonlyArray<string>
  /** Every decoded request body, in arrival order. */
  readonly bodies: ReadonlyArray<Record<string, unknown>>
  setFaults(schedule: FaultSchedule | undefined): void
  close(): Promise<void>
}

/** Fault on every n-th request overall (1-based: n, 2n, ...). */
export const everyNth = (n: number, fault: Fault): FaultSchedule => (r) => ((r.index + 1) % n === 0 ? fault : undefined)

/** Fault on the first `k` requests of every prompt. */
export const firstAttempts = (k: number, fault: Fault): FaultSchedule => (r) => (r.attemptForPrompt < k ? fault : undefined)

/** A well-mixed 32-bit hash (first 4 bytes of sha256), for a seeded, order-independent coin. */
const hash32 = (text: string): number => createHash("sha256").update(text, "utf8").digest().readUInt32BE(0)

/**
 * A seeded fault rate: the (prompt, attemptForPrompt, seed) triple decides, so the schedule does not depend on the
 * arrival order under concurrency. Faults are drawn from `kinds` by the same hash.
 */
export const seededRate = (rate: number, seed: number, kinds: ReadonlyArray<Fault>): FaultSchedule => (r) => {
  const h = hash32(`${seed}\u0000${r.prompt}\u0000${r.attemptForPrompt}`)
  if (h / 0x1_0000_0000 >= rate) return undefined
  return kinds[hash32(`kind\u0000${h}`) % kinds.length]
}

const isLoopback = (address: string | undefined): boolean =>
  address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1"

const bump = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1)

const lastUserMessage = (body: Record<string, unknown>): string => {
  const messages = body["messages"]
  if (!Array.isArray(messages)) return ""
  for (let i = messages.length - 1; i >= 0; i--) {
    const m: unknown = messages[i]
    if (typeof m === "object" && m !== null && (m as { role?: unknown }).role === "user") {
      const content = (m as { content?: unknown }).content
      return typeof content === "string" ? content : JSON.stringify(content)
    }
  }
  return ""
}

const sendJson = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers })
  res.end(text)
}

/** Starts a server; resolves once it listens. */
export const startFakeOpenAI = async (options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> => {
  const content = options.content ?? ((r: FakeRequest) => `answer to: ${r.prompt}`)
  let faults = options.faults
  const slowMs = options.slowMs ?? 30
  const retryAfter = options.retryAfterSeconds ?? 0
  let index = 0
  let abandoned = 0
  let answeredTotal = 0
  let modelListings = 0
  const receivedByPrompt = new Map<string, number>()
  let open = 0
  let maxOpen = 0
  const answeredByPrompt = new Map<string, number>()
  const faultsServed = new Map<Fault, number>()
  const authorizations: Array<string> = []
  const bodies: Array<Record<string, unknown>> = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()

  const answer = (res: http.ServerResponse, req: FakeRequest, text: string) => {
    const model = typeof req.body["model"] === "string" ? req.body["model"] : "fake"
    const words = (s: string) => s.split(/\s+/).filter((w) => w !== "").length
    res.on("finish", () => {
      if (text === "") return
      bump(answeredByPrompt, req.prompt)
      answeredTotal++
      options.onAnswered?.(req, answeredTotal)
    })
    sendJson(res, 200, {
      id: `chatcmpl-${req.index}`,
      object: "chat.completion",
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
      usage: { prompt_tokens: words(req.prompt), completion_tokens: words(text), total_tokens: words(req.prompt) + words(text) }
    })
  }

  const handle = (httpReq: http.IncomingMessage, res: http.ServerResponse, raw: string) => {
    if (httpReq.method === "GET" && (httpReq.url ?? "").startsWith("/v1/models")) {
      // what vLLM answers; llink's pre-flight asks for it
      modelListings++
      sendJson(res, 200, { object: "list", data: [{ id: "fake-70b", object: "model", owned_by: "llink-test" }] })
      return
    }
    if (httpReq.method !== "POST" || !(httpReq.url ?? "").startsWith("/v1/chat/completions")) {
      sendJson(res, 404, { error: { message: `no route ${httpReq.method} ${httpReq.url}`, type: "not_found" } })
      return
    }
    authorizations.push(String(httpReq.headers["authorization"] ?? ""))
    let parsed: unknown
    try {
      parsed = JSON.parse(raw)
    } catch (cause) {
      sendJson(res, 400, { error: { message: `body is not JSON: ${String(cause)}`, type: "invalid_request_error" } })
      return
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      sendJson(res, 400, { error: { message: "body is not an object", type: "invalid_request_error" } })
      return
    }
    const body = parsed as Record<string, unknown>
    bodies.push(body)
    open++
    maxOpen = Math.max(maxOpen, open)
    res.on("close", () => void open--)
    const prompt = lastUserMessage(body)
    const request: FakeRequest = { index: index++, prompt, attemptForPrompt: receivedByPrompt.get(prompt) ?? 0, body }
    bump(receivedByPrompt, prompt)
    const fault = faults?.(request)
    if (fault !== undefined) bump(faultsServed, fault)
    switch (fault) {
      case undefined:
        answer(res, request, content(request))
        return
      case "slow": {
        const t = setTimeout(() => {
          timers.delete(t)
          answer(res, request, content(request))
        }, slowMs)
        timers.add(t)
        return
      }
      case "rate_limit":
        sendJson(res, 429, { error: { message: "Rate limit reached", type: "rate_limit_exceeded" } }, {
          "retry-after": String(retryAfter)
        })
        return
      case "server_error":
        sendJson(res, 500, { error: { message: "The server had an error", type: "server_error" } })
        return
      case "timeout":
        sendJson(res, 408, { error: { message: "Request timed out", type: "timeout" } })
        return
      case "bad_request":
        sendJson(res, 400, { error: { message: "Invalid request: bad parameter", type: "invalid_request_error" } })
        return
      case "unauthorized_echo":
        // Like some hosted APIs: the error text quotes the key that was sent.
        sendJson(res, 401, {
          error: {
            message: `Incorrect API key provided: ${String(httpReq.headers["authorization"] ?? "").replace(/^Bearer /, "")}`,
            type: "invalid_request_error"
          }
        })
        return
      case "malformed": {
        const text = `{"id":"chatcmpl-${request.index}","object":"chat.completion","choices":[{"message":`
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
        res.end(text)
        return
      }
      case "empty":
        answer(res, request, "")
        return
      case "reset":
        // Drop the connection without an answer (a connection error for the client).
        httpReq.socket.destroy()
        return
      case "hang":
        // Never answer; the socket is destroyed by the client's abort or by close().
        return
    }
  }

  const server = http.createServer((req, res) => {
    if (!isLoopback(req.socket.remoteAddress)) {
      req.socket.destroy()
      return
    }
    res.on("close", () => {
      if (!res.writableFinished) abandoned++
    })
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")))
  })
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const port = (server.address() as AddressInfo).port

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    received: () => index,
    maxOpen: () => maxOpen,
    resetMaxOpen: () => void (maxOpen = open),
    abandoned: () => abandoned,
    modelListings: () => modelListings,
    receivedByPrompt,
    answeredByPrompt,
    faultsServed,
    authorizations,
    bodies,
    setFaults: (schedule) => {
      faults = schedule
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const t of timers) clearTimeout(t)
        timers.clear()
        for (const s of sockets) s.destroy()
        server.close((err) => (err === undefined ? resolve() : reject(err)))
      })
  }
}
