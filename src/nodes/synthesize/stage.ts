/**
 * `synthesize`: the Stage B instruction data (paper §5.1). For each foreign sentence, a task type and a prompt to a
 * 70B instruct model conditioned on the reference English, asking for one JSON object (src/prompts/synthesis.ts); the
 * reply becomes a row whose `input` is the Stage B prompt holding `<foreign_emb>`.
 *
 * Selection (all deterministic given `synth.seed`):
 * - Training pairs are visited in a seeded random order. Pairs failing the paper's filters (foreign length
 *   `minForeignChars`–`maxForeignChars` code points, non-empty English) are quarantined without a request. The
 *   others get task types round-robin over `synth.taskTypes` (so the mix is balanced), are synthesized, and the
 *   accepted rows fill `sft.val` (the first `synth.val`) and then `sft.train` (the next `synth.train`).
 * - Evaluation pairs (`eval`, the first `split.evalN` holdout pairs) are visited in a seeded order, alternately for
 *   the Q&A bucket (`qa_about_text`) and the content-understanding bucket (the other configured task types, round
 *   robin); a second pass offers each pair to the other bucket, used only when the first pass did not fill both.
 *   The first `synth.evalPerBucket` accepted rows of each bucket form `sft.eval` (content rows first, then Q&A).
 * - Work goes in chunks of candidates; within a chunk requests run concurrently (bounded by the endpoint), and
 *   accepted rows are taken in candidate order, so the result does not depend on timing or chunk size.
 *
 * An invalid reply (not JSON, wrong keys, empty fields, leaked reference, failing `checkRow`) is re-sampled with
 * request `variant` 1, 2, … (temperature `retryTemperature`, seed + variant) up to `synth.retries` times, then the
 * pair is quarantined with every attempt's reason and the last raw reply. A request the server refuses outright
 * (HTTP 4xx other than 408/429) is quarantined too; any other endpoint failure fails the stage — the request cache
 * (`<cacheDir>/requests`) keeps every answer already received, so the rerun pays for none of them again.
 *
 * Modes (`synth.mode`): "endpoint" (the LLM), "offline" (the deterministic template synthesizer `offlineRow`: rows
 * marked `offline: true`, and `offline: true` in the metrics), "auto" (endpoint when a base URL is configured). The
 * mode is resolved when the stage is planned, so it is part of the cache key.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { publicBaseUrl, resolveLlmMode } from "../../schemas/endpoint.ts"
import { SftColumns, SynthQuarantineColumns } from "../../schemas/sft.ts"
import type { LlinkConfig } from "../config.ts"
import { SynthesizeParams } from "./params.ts"

export const synthesize = defineStage<SynthesizeParams>({
  name: "synthesize",
  source: import.meta.url,
  version: "1",
  description: "Stage B instruction data from the parallel pairs (70B endpoint or the offline template synthesizer)",
  inputs: ["train", "eval"],
  outputs: [
    { name: "sft.train", kind: "parquet", file: "sft.train.parquet", columns: SftColumns, description: "Stage B training rows (from train pairs)" },
    { name: "sft.val", kind: "parquet", file: "sft.val.parquet", columns: SftColumns, description: "Stage B validation rows (from train pairs)" },
    { name: "sft.eval", kind: "parquet", file: "sft.eval.parquet", columns: SftColumns, description: "evaluation rows per bucket (from eval pairs)" },
    {
      name: "synthesize.quarantine",
      kind: "parquet",
      file: "quarantine.parquet",
      columns: SynthQuarantineColumns,
      description: "pairs filtered out or whose replies stayed invalid, with the reasons and the last raw reply"
    }
  ],
  params: SynthesizeParams,
  // The resolved mode and the redacted URL enter the key: setting OPENAI_BASE_URL later does not reuse offline rows.
  selectParams: (config) => {
    const synth = (config as LlinkConfig).synth
    const mode = resolveLlmMode(synth.mode, synth.endpoint)
    return { synth, mode, baseUrl: mode === "offline" ? "" : publicBaseUrl(synth.endpoint) }
  },
  preflight: (p, { env }) =>
    p.mode !== "endpoint"
      ? Effect.succeed([])
      : Effect.flatMap(Effect.promise(() => import("../../services/endpoint.ts")), ({ probeEndpoint }) =>
        Effect.map(probeEndpoint(p.synth.endpoint, env), (messages) =>
          messages.map((message) => ({
            field: message.startsWith("$") ? "synth.endpoint.apiKeyEnv" : "synth.endpoint.baseUrl",
            message
          })))),
  run: (ctx) => Effect.flatMap(importWork("synthesize", () => import("./work.ts")), (work) => work.runSynthesize(ctx)),
  // With an endpoint: shards send the requests of ranges of training candidates into the shared request cache; the
  // merge is `run`, which then finds them all answered (work.ts, `planSynthesizeShards`).
  sharding: {
    inline: true,
    plan: (ctx) => Effect.flatMap(importWork("synthesize", () => import("./work.ts")), (work) => work.planSynthesizeShards(ctx.params, ctx.inputs)),
    runShard: (ctx) => Effect.flatMap(importWork("synthesize", () => import("./work.ts")), (work) => work.runSynthesizeShard(ctx)),
    merge: (ctx, shards) => Effect.flatMap(importWork("synthesize", () => import("./work.ts")), (work) => work.runSynthesize(ctx, shards))
  }
})
