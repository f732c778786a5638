/**
 * `judge`: the paper's LLM-as-judge evaluation (§5.2, Table 2) over the `generations` table, plus numeric fidelity.
 *
 * For every example, two comparisons: LLINK vs the base model (`vsBase`) and LLINK vs the direct fine-tune
 * (`vsFinetune`). Each is an anonymised A/B comparison with the human reference translation shown (the protocol and
 * prompt of src/metrics/judge.ts), judged in BOTH orders (LLINK first, then the baseline first): equal verdicts give
 * that outcome, different ones a tie (an order flip), an unparseable verdict makes the pair `invalid` (counted
 * apart, never as a tie). An unparseable answer is re-sampled (request `variant` 1, 2, …, temperature
 * `judge.retryTemperature`) up to `judge.invalidRetries` times first. A request the server refuses outright (4xx)
 * makes that order invalid with the reason; other endpoint failures fail the stage (answers already received stay
 * in the request cache `<cacheDir>/requests`, so a rerun pays for none of them again).
 *
 * Modes (`judge.mode`): "endpoint" (the judge model, paper: Llama 3.1 70B Instruct), "offline" (the chrF judge of
 * src/metrics/judge.ts: higher sentence chrF against the reference wins, |Δ| < `judge.margin` is a tie; marked
 * `offline` everywhere), "auto" (endpoint when a base URL is configured; resolved at planning, so in the key).
 *
 * Aggregates per bucket (content understanding, Q&A) and comparison: wins, losses, ties, invalid, shares,
 * preference = wins / (wins + losses), order-flip rate. Numeric fidelity (src/metrics/numeric.ts) of each system's
 * outputs against the human reference, overall and per bucket.
 *
 * Sharded in endpoint mode (`work.ts`, `planJudgeShards`): ranges of `generations` rows, each judged by a cluster
 * runner into the shared request cache; the merge is the single-process run on those cached answers.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { publicBaseUrl, resolveLlmMode } from "../../schemas/endpoint.ts"
import { JudgeDoc } from "../../schemas/judge.ts"
import { JudgePairColumns } from "../../schemas/sft.ts"
import type { LlinkConfig } from "../config.ts"
import { JudgeParams } from "./params.ts"

export const judge = defineStage<JudgeParams>({
  name: "judge",
  source: import.meta.url,
  version: "1",
  cost: 2,
  description: "Pairwise judge (LLINK vs base, vs fine-tune; both orders, human reference shown) and numeric fidelity",
  inputs: ["generations"],
  outputs: [
    { name: "judge", kind: "json", file: "judge.json", schema: JudgeDoc, description: "win/loss/tie, preference and flip rate per bucket and comparison; numeric fidelity" },
    { name: "judge.pairs", kind: "parquet", file: "pairs.parquet", columns: JudgePairColumns, description: "every judgement: both orders' verdicts and the outcome" }
  ],
  params: JudgeParams,
  selectParams: (config) => {
    const judgeConfig = (config as LlinkConfig).judge
    const mode = resolveLlmMode(judgeConfig.mode, judgeConfig.endpoint)
    return { judge: judgeConfig, mode, baseUrl: mode === "offline" ? "" : publicBaseUrl(judgeConfig.endpoint) }
  },
  preflight: (p, { env }) =>
    p.mode !== "endpoint"
      ? Effect.succeed([])
      : Effect.flatMap(Effect.promise(() => import("../../services/endpoint.ts")), ({ probeEndpoint }) =>
        Effect.map(probeEndpoint(p.judge.endpoint, env), (messages) =>
          messages.map((message) => ({
            field: message.startsWith("$") ? "judge.endpoint.apiKeyEnv" : "judge.endpoint.baseUrl",
            message
          })))),
  run: (ctx) => Effect.flatMap(importWork("judge", () => import("./work.ts")), (work) => work.runJudge(ctx)),
  // endpoint mode: shards of `generations` rows fill the shared request cache; the merge is `run` on those answers
  sharding: {
    inline: true,
    plan: (ctx) => Effect.flatMap(importWork("judge", () => import("./work.ts")), (work) => work.planJudgeShards(ctx.params, ctx.inputs)),
    runShard: (ctx) => Effect.flatMap(importWork("judge", () => import("./work.ts")), (work) => work.runJudgeShard(ctx)),
    merge: (ctx, shards) => Effect.flatMap(importWork("judge", () => import("./work.ts")), (work) => work.runJudge(ctx, shards))
  }
})
