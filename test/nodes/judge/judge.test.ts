/**
 * `judge`: verdicts through the endpoint path (scripted judge answers in both orders: agreement, disagreement → tie,
 * invalid, re-sampled invalid), and the aggregation and numeric fidelity checked by hand on a small offline example.
 */
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { judge } from "../../../src/nodes/judge/stage.ts"
import type { JudgeParams, JudgeSummary } from "../../../src/nodes/judge/work.ts"
import { type ChatRequest, LlmEndpoint } from "../../../src/services/endpoint.ts"
import { configOf, generationRow, makeContext, paramsOf, readRows, tmpDir, writeGenerations } from "../../support/stageB.ts"
import * as fs from "node:fs"

const answersOf = (request: ChatRequest): { readonly a: string; readonly b: string } => {
  const text = request.messages[request.messages.length - 1].content
  const a = /\[The Start of Assistant A's Answer\]\n([\s\S]*?)\n\[The End of Assistant A's Answer\]/.exec(text)?.[1] ?? ""
  const b = /\[The Start of Assistant B's Answer\]\n([\s\S]*?)\n\[The End of Assistant B's Answer\]/.exec(text)?.[1] ?? ""
  return { a, b }
}

const runJudge = async (params: JudgeParams, file: string, layer?: ReturnType<typeof LlmEndpoint.scripted>) => {
  const ctx = makeContext(judge, params, { generations: file })
  const run = judge.run(ctx)
  const outcome = await Effect.runPromise(layer === undefined ? run : run.pipe(Effect.provide(layer)))
  const summary = JSON.parse(fs.readFileSync(ctx.outputs["judge"], "utf8")) as JudgeSummary
  const pairs = await readRows(ctx.outputs["judge.pairs"])
  return { outcome, summary, pairs }
}

describe("judge through the endpoint", () => {
  it("combines both orders: agreement, position-bias flip → tie, [[C]], invalid, and a re-sampled invalid answer", async () => {
    const base = tmpDir("judge-endpoint")
    const rows = [
      generationRow({ id: 0, bucket: "content", llink: "L0", base: "B0", finetune: "F0" }),
      generationRow({ id: 1, bucket: "content", llink: "L1", base: "B1", finetune: "F1" }),
      generationRow({ id: 2, bucket: "qa", llink: "L2", base: "B2", finetune: "F2" }),
      generationRow({ id: 3, bucket: "qa", llink: "L3", base: "B3", finetune: "F3" })
    ]
    const file = await writeGenerations(path.join(base, "generations.parquet"), rows)
    const requests: Array<{ readonly a: string; readonly b: string; readonly variant: number }> = []
    const prefer = (winner: string, a: string) => (a === winner ? "Explanation. [[A]]" : "Explanation. [[B]]")
    const layer = LlmEndpoint.scripted((request) => {
      const { a, b } = answersOf(request)
      const variant = request.variant ?? 0
      requests.push({ a, b, variant })
      const pair = [a, b].sort().join("/")
      switch (pair) {
        case "B0/L0": return prefer("L0", a) // LLINK better in both orders → win
        case "F0/L0": return "Both fine, but [[A]]" // always A: the orders disagree → tie (flip)
        case "B1/L1": return prefer("B1", a) // base better → loss
        case "F1/L1": return "Equally good. [[C]]" // tie in both orders
        case "B2/L2": return a === "L2" ? "I cannot decide." : prefer("L2", a) // LLINK-first order never parses → invalid
        case "F2/L2": // the baseline-first order first answers with two markers, then a clean verdict on the re-sample
          return a === "F2" && variant === 0 ? "[[A]] or maybe [[B]]" : prefer("L2", a)
        case "B3/L3": return prefer("L3", a)
        case "F3/L3": return prefer("F3", a)
        default: return "??"
      }
    })
    const params = paramsOf(judge, configOf({ judge: { mode: "endpoint", invalidRetries: 1, comparisons: "vsLLINK" } }))
    const { summary, pairs, outcome } = await runJudge(params, file, layer)
    expect(summary.mode).toBe("endpoint")
    expect(summary.offline).toBe(false)
    expect(summary.judge).toBe("meta-llama/Llama-3.1-70B-Instruct")
    const c = summary.byBucket.content!
    expect([c.vsBase.wins, c.vsBase.losses, c.vsBase.ties, c.vsBase.invalid, c.vsBase.preference]).toEqual([1, 1, 0, 0, 0.5])
    expect([c.vsFinetune.wins, c.vsFinetune.losses, c.vsFinetune.ties, c.vsFinetune.flips, c.vsFinetune.flipRate]).toEqual([0, 0, 2, 1, 0.5])
    expect(c.vsFinetune.preference).toBe(null)
    const q = summary.byBucket.qa!
    expect([q.vsBase.wins, q.vsBase.losses, q.vsBase.ties, q.vsBase.invalid, q.vsBase.preference]).toEqual([1, 0, 0, 1, 1])
    expect([q.vsFinetune.wins, q.vsFinetune.losses, q.vsFinetune.invalid, q.vsFinetune.preference]).toEqual([1, 1, 0, 0.5])

    const find = (id: number, comparison: string) => pairs.find((p) => p["id"] === id && p["comparison"] === comparison)!
    expect(find(0, "vsFinetune")).toMatchObject({
      verdictSystemFirst: "A",
      verdictBaselineFirst: "A",
      outcomeSystemFirst: "win",
      outcomeBaselineFirst: "loss",
      outcome: "tie",
      flipped: true,
      offline: false
    })
    expect(find(1, "vsFinetune")).toMatchObject({ verdictSystemFirst: "C", verdictBaselineFirst: "C", outcome: "tie", flipped: false })
    expect(find(2, "vsBase")).toMatchObject({ verdictSystemFirst: "invalid", outcome: "invalid", rawSystemFirst: "I cannot decide." })
    expect(String(find(2, "vsBase")["invalidReasons"])).toBe(
      "system_first: no verdict marker [[A]], [[B]] or [[C]]; no verdict marker [[A]], [[B]] or [[C]]"
    )
    expect(find(2, "vsFinetune")).toMatchObject({ verdictBaselineFirst: "B", outcomeBaselineFirst: "win", outcome: "win" })
    // 16 first requests (8 pairs × 2 orders) + one re-sample for each invalid first answer (2 for pair B2/L2's LLINK-first
    // order: it never parses, so it is asked twice; 1 for F2/L2's baseline-first order).
    expect(requests.length).toBe(18)
    expect(requests.filter((r) => r.variant === 1).length).toBe(2)
    expect(outcome.metrics?.["offline"]).toBe(false)
    expect(outcome.rows["judge.pairs"]).toBe(8)
  })
})

describe("judge offline (chrF), aggregation by hand", () => {
  it("counts wins, losses, ties and preference per bucket, and numeric fidelity per system", async () => {
    const base = tmpDir("judge-offline")
    const ref0 = "The fee is $50 per person."
    const rows = [
      // content: vsBase win (exact vs unrelated), vsFinetune tie (both exact)
      generationRow({ id: 0, bucket: "content", reference: ref0, llink: ref0, base: "zzz", finetune: ref0 }),
      // content: vsBase loss, vsFinetune tie (both unrelated: chrF 0 and 0)
      generationRow({ id: 1, bucket: "content", reference: "The reference.", llink: "zzz", base: "The reference.", finetune: "qqq" }),
      // qa: vsBase tie (identical outputs), vsFinetune win
      generationRow({ id: 2, bucket: "qa", reference: "The reference.", llink: "The reference.", base: "The reference.", finetune: "zzz" }),
      // qa: vsBase win (closer to the reference), vsFinetune loss (the fine-tune is exact)
      generationRow({ id: 3, bucket: "qa", reference: "Built in 1985.", llink: "Built in 1980s.", base: "Built", finetune: "Built in 1985." })
    ]
    const file = await writeGenerations(path.join(base, "generations.parquet"), rows)
    const params = paramsOf(judge, configOf({ judge: { mode: "offline" } }))
    const { summary, pairs } = await runJudge(params, file)
    expect(summary.mode).toBe("offline")
    expect(summary.offline).toBe(true)
    expect(summary.judge).toBe("chrF (offline)")
    expect(summary.endpoint).toBe(null)
    const pick = (a: JudgeSummary["overall"]["vsBase"]) => [a.n, a.wins, a.losses, a.ties, a.invalid, a.preference]
    expect(pick(summary.byBucket.content!.vsBase)).toEqual([2, 1, 1, 0, 0, 0.5])
    expect(pick(summary.byBucket.content!.vsFinetune)).toEqual([2, 0, 0, 2, 0, null])
    expect(pick(summary.byBucket.qa!.vsBase)).toEqual([2, 1, 0, 1, 0, 1])
    expect(pick(summary.byBucket.qa!.vsFinetune)).toEqual([2, 1, 1, 0, 0, 0.5])
    expect(pick(summary.overall.vsBase)).toEqual([4, 2, 1, 1, 0, 2 / 3])
    expect(summary.overall.vsBase.tieShare).toBe(0.25)
    expect(summary.overall.vsBase.offline).toBe(true)
    for (const p of pairs) {
      expect(p["offline"]).toBe(true)
      expect(typeof p["chrfSystem"]).toBe("number")
      expect(p["rawSystemFirst"]).toBe(null)
    }
    expect(pairs.find((p) => p["id"] === 0 && p["comparison"] === "vsBase")?.["chrfSystem"]).toBe(100)

    // Numeric fidelity: references with numbers are rows 0 ($50) and 3 (1985).
    const nf = summary.numericFidelity
    expect([nf.llink.applicable, nf.llink.mentions, nf.llink.micro, nf.llink.macro, nf.llink.perfect]).toEqual([2, 2, 0.5, 0.5, 1])
    expect([nf.base.micro, nf.base.perfect]).toEqual([0, 0])
    expect([nf.finetune.micro, nf.finetune.perfect]).toEqual([1, 2])
    expect(summary.numericFidelityByBucket.qa!.llink.micro).toBe(0)
    expect(summary.numericFidelityByBucket.content!.llink.micro).toBe(1)
  })

  it("judges every pair of systems by default, the outcome from the first-named system's side; vsLLINK keeps the paper's four", async () => {
    const base = tmpDir("judge-all")
    const ref = "The shop opens at eight."
    const rows = [
      // base is exact, finetune is unrelated, the peers are off (null): only llink/base/finetune take part
      generationRow({ id: 0, bucket: "content", reference: ref, llink: "zzz", base: ref, finetune: "qqq" }),
      generationRow({ id: 1, bucket: "qa", reference: ref, llink: ref, base: "zzz", finetune: ref })
    ]
    const file = await writeGenerations(path.join(base, "generations.parquet"), rows)
    const all = await runJudge(paramsOf(judge, configOf({ judge: { mode: "offline" } })), file)
    const byComparison = (pairs: ReadonlyArray<Record<string, unknown>>) =>
      pairs.map((p) => `${String(p["id"])} ${String(p["comparison"])} ${String(p["outcome"])}`).sort()
    expect(byComparison(all.pairs)).toEqual([
      "0 base~finetune win",
      "0 vsBase loss",
      "0 vsFinetune tie",
      "1 base~finetune loss",
      "1 vsBase win",
      "1 vsFinetune tie"
    ])
    // the paper's aggregates (Table 2) are LLINK's comparisons only, whichever protocol ran
    const paper = await runJudge(paramsOf(judge, configOf({ judge: { mode: "offline", comparisons: "vsLLINK" } })), file)
    expect(byComparison(paper.pairs)).toEqual(byComparison(all.pairs).filter((p) => !p.includes("~")))
    expect(paper.summary.overall).toEqual(all.summary.overall)
  })

  it("auto mode without a base URL judges offline", () => {
    const saved = process.env["OPENAI_BASE_URL"]
    delete process.env["OPENAI_BASE_URL"]
    try {
      const params = paramsOf(judge, configOf({}))
      expect(params.mode).toBe("offline")
      expect(params.baseUrl).toBe("")
      const withUrl = paramsOf(judge, configOf({ judge: { endpoint: { baseUrl: "http://user:pw@127.0.0.1:9/v1?k=1" } } }))
      expect(withUrl.mode).toBe("endpoint")
      expect(withUrl.baseUrl).toBe("http://127.0.0.1:9/v1")
    } finally {
      if (saved !== undefined) process.env["OPENAI_BASE_URL"] = saved
    }
  })
})
