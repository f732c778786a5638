/** The pairwise judge protocol: prompt, strict parsing, both orders, combination, aggregation, offline judge. */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import {
  aggregate,
  aggregateByBucket,
  bucketOfTask,
  buildJudgeMessages,
  combineOrders,
  judgePair,
  offlineJudge,
  outcomeOf,
  type OrderJudgement,
  type PairItem,
  type PairOutcome,
  parseVerdict
} from "../../src/metrics/judge.ts"
import { LlmEndpoint } from "../../src/services/endpoint.ts"

const item = (over: Partial<PairItem> = {}): PairItem => ({
  id: "ex1",
  bucket: "content",
  instruction: "Translate the foreign text to English.",
  reference: "The plant produces 5 MW of power.",
  system: "The plant produces 5 MW of power.",
  baseline: "Factory make electricity.",
  ...over
})

describe("judge prompt and verdict parsing", () => {
  it("builds an anonymised A/B prompt with the reference shown", () => {
    const [system, user] = buildJudgeMessages({
      instruction: "Summarize.",
      reference: "REF TEXT",
      answerA: "ANSWER ONE",
      answerB: "ANSWER TWO",
      source: "អត្ថបទ"
    })
    expect(system.role).toBe("system")
    expect(system.content).toContain('"[[A]]" if assistant A is better')
    expect(system.content).toContain('"[[C]]" for a tie')
    expect(user.content).toContain("[User Instruction]\nSummarize.")
    expect(user.content).toContain("[Foreign Text]\nអត្ថបទ")
    expect(user.content).toContain("[The Start of Reference Translation]\nREF TEXT\n[The End of Reference Translation]")
    expect(user.content.indexOf("ANSWER ONE")).toBeLessThan(user.content.indexOf("ANSWER TWO"))
    expect(user.content).not.toMatch(/system|baseline|LLINK/i)
  })

  it("parses strictly: exactly one distinct marker", () => {
    expect(parseVerdict("Both are close... Final verdict: [[A]]")).toEqual({ _tag: "valid", verdict: "A" })
    expect(parseVerdict("[[B]] because ... so [[B]]")).toEqual({ _tag: "valid", verdict: "B" })
    expect(parseVerdict("It is a tie: [[C]]")).toEqual({ _tag: "valid", verdict: "C" })
    const conflict = parseVerdict('The format says "[[A]]" or "[[B]]"; I pick [[B]].')
    expect(conflict._tag).toBe("invalid")
    if (conflict._tag === "invalid") expect(conflict.reason).toContain("conflicting")
    for (const text of ["Assistant A is better.", "[[a]]", "[[ A ]]", "[A]", ""]) {
      const v = parseVerdict(text)
      expect(v._tag).toBe("invalid")
      if (v._tag === "invalid") expect(v.reason).toContain("no verdict marker")
    }
  })

  it("maps verdicts to the system's side for each order", () => {
    expect(outcomeOf("A", "system_first")).toBe("win")
    expect(outcomeOf("B", "system_first")).toBe("loss")
    expect(outcomeOf("A", "baseline_first")).toBe("loss")
    expect(outcomeOf("B", "baseline_first")).toBe("win")
    expect(outcomeOf("C", "baseline_first")).toBe("tie")
    expect(bucketOfTask("qa_about_text")).toBe("qa")
    expect(bucketOfTask("bullet_pointify")).toBe("content")
  })
})

const j = (order: OrderJudgement["order"], text: string): OrderJudgement => {
  const verdict = parseVerdict(text)
  return { order, verdict, outcome: verdict._tag === "valid" ? outcomeOf(verdict.verdict, order) : null }
}

describe("combining the two orders", () => {
  it("agreement → that outcome; disagreement → tie and a flip; invalid → invalid", () => {
    const win = combineOrders(item(), j("system_first", "[[A]]"), j("baseline_first", "[[B]]"))
    expect(win.outcome).toBe("win")
    expect(win.flipped).toBe(false)
    const biased = combineOrders(item(), j("system_first", "[[A]]"), j("baseline_first", "[[A]]"))
    expect(biased.outcome).toBe("tie")
    expect(biased.flipped).toBe(true)
    const half = combineOrders(item(), j("system_first", "[[C]]"), j("baseline_first", "[[B]]"))
    expect(half.outcome).toBe("tie")
    expect(half.flipped).toBe(true)
    const bad = combineOrders(item(), j("system_first", "no idea"), j("baseline_first", "[[B]]"))
    expect(bad.outcome).toBe("invalid")
    expect(bad.flipped).toBe(false)
    expect(bad.invalidReasons).toEqual(["system_first: no verdict marker [[A]], [[B]] or [[C]]"])
  })
})

describe("judgePair with an endpoint", () => {
  const userOf = (messages: ReadonlyArray<{ role: string; content: string }>) =>
    messages.find((m) => m.role === "user")?.content ?? ""
  const answerA = (u: string) => /\[The Start of Assistant A's Answer\]\n([\s\S]*?)\n\[The End/.exec(u)?.[1] ?? ""

  it("judges both orders; a fair judge gives a win, a position-biased one a flipped tie", async () => {
    const fair = LlmEndpoint.scripted((r) => (answerA(userOf(r.messages)).includes("5 MW") ? "A is right. [[A]]" : "B is right. [[B]]"))
    const biased = LlmEndpoint.scripted(() => "I always like the first one. [[A]]")
    const seen: Array<string> = []
    const recording = LlmEndpoint.scripted((r) => {
      seen.push(answerA(userOf(r.messages)))
      expect(r.temperature).toBe(0)
      return "[[C]]"
    })
    const a = await Effect.runPromise(judgePair(item()).pipe(Effect.provide(fair)))
    expect(a.outcome).toBe("win")
    expect(a.orders.map((o) => o.order)).toEqual(["system_first", "baseline_first"])
    expect(a.orders[0].raw).toBe("A is right. [[A]]")
    expect(a.offline).toBe(false)
    const b = await Effect.runPromise(judgePair(item()).pipe(Effect.provide(biased)))
    expect(b.outcome).toBe("tie")
    expect(b.flipped).toBe(true)
    const c = await Effect.runPromise(judgePair(item()).pipe(Effect.provide(recording)))
    expect(c.outcome).toBe("tie")
    expect(c.flipped).toBe(false)
    expect(seen.sort()).toEqual([item().baseline, item().system].sort())
  })
})

describe("aggregation", () => {
  const make = (bucket: "content" | "qa", outcome: PairOutcome["outcome"], flipped = false): PairOutcome => ({
    id: `${bucket}-${outcome}`,
    bucket,
    outcome,
    flipped,
    offline: false,
    invalidReasons: outcome === "invalid" ? ["x"] : [],
    orders: [
      { order: "system_first", verdict: outcome === "invalid" ? { _tag: "invalid", reason: "x" } : { _tag: "valid", verdict: "A" }, outcome: null },
      { order: "baseline_first", verdict: { _tag: "valid", verdict: "A" }, outcome: null }
    ]
  })

  it("reproduces the paper's preference from its win/loss/tie shares", () => {
    const outcomes = [
      ...Array.from({ length: 69 }, () => make("content", "win")),
      ...Array.from({ length: 11 }, () => make("content", "loss")),
      ...Array.from({ length: 20 }, () => make("content", "tie"))
    ]
    const a = aggregate(outcomes)
    expect(a.preference).toBeCloseTo(0.8625, 12) // Table 2: 86.3%
    expect(a.winShare).toBeCloseTo(0.69, 12)
    expect(a.tieShare).toBeCloseTo(0.2, 12)
  })

  it("counts invalid apart, computes the flip rate, and is NaN-safe", () => {
    const outcomes = [
      make("content", "win"),
      make("content", "tie", true),
      make("content", "invalid"),
      make("qa", "loss"),
      make("qa", "tie", true)
    ]
    const all = aggregate(outcomes)
    expect(all).toMatchObject({ n: 5, wins: 1, losses: 1, ties: 2, invalid: 1, bothValid: 4, flips: 2 })
    expect(all.preference).toBe(0.5)
    expect(all.flipRate).toBe(0.5)
    expect(all.winShare).toBe(0.25)
    const byBucket = aggregateByBucket(outcomes)
    expect(byBucket.content?.preference).toBe(1)
    expect(byBucket.qa?.preference).toBe(0)
    const ties = aggregate([make("qa", "tie")])
    expect(ties.preference).toBeNull()
    const none = aggregate([])
    expect(none.preference).toBeNull()
    expect(none.flipRate).toBeNull()
    expect(none.winShare).toBeNull()
    expect(JSON.stringify(none)).not.toContain("NaN")
  })
})

describe("offlineJudge", () => {
  it("prefers the higher chrF, ties within the margin, and is marked offline", () => {
    const win = offlineJudge(item())
    expect(win.outcome).toBe("win")
    expect(win.offline).toBe(true)
    expect(win.chrf?.system).toBe(100)
    expect(win.orders[0].verdict).toEqual({ _tag: "valid", verdict: "A" })
    expect(win.orders[1].verdict).toEqual({ _tag: "valid", verdict: "B" })
    const loss = offlineJudge(item({ system: "nothing alike", baseline: "The plant produces 5 kW of power." }))
    expect(loss.outcome).toBe("loss")
    // Symmetric edits: equal chrF, |Δ| = 0 < 1.
    const tie = offlineJudge(item({ system: "The plant produces 5 MW of powerX.", baseline: "The plant produces 5 MW of powerY." }))
    expect(tie.chrf?.system).toBe(tie.chrf?.baseline)
    expect(tie.outcome).toBe("tie")
    expect(tie.orders[0].verdict).toEqual({ _tag: "valid", verdict: "C" })
    expect(tie.flipped).toBe(false)
    // A huge margin turns a clear win into a tie.
    expect(offlineJudge(item(), { margin: 1000 }).outcome).toBe("tie")
    expect(aggregate([win, loss, tie]).offline).toBe(true)
  })
})
