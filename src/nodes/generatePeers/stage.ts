/**
 * `generatePeers`: every `sft.eval` example answered by the peer baselines that are on (LangBridge, MindMerger),
 * greedily with `generate`'s settings, batch by batch as `generate` cuts them, resumable per batch. It is apart from
 * `generate` so that LLINK's, the base model's and the fine-tune's answers need not wait for the peers' training
 * (on the embedded default the two run on the two cores); `generations` joins the two tables.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { PeerGenerationColumns } from "../../schemas/sft.ts"
import type { LlinkConfig } from "../config.ts"
import { GeneratePeersParams } from "./params.ts"

export const generatePeers = defineStage<GeneratePeersParams, TensorBackend>({
  name: "generatePeers",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 9,
  description: "Generations of the peer baselines (LangBridge, MindMerger) on the evaluation examples",
  inputs: ["models", "langbridge", "mindmerger", "sft.eval"],
  outputs: [
    {
      name: "generations.peers",
      kind: "parquet",
      file: "generations.peers.parquet",
      columns: PeerGenerationColumns,
      description: "per example (id): the peers' outputs and prompt token counts (null for a peer that is off)"
    }
  ],
  params: GeneratePeersParams,
  selectParams: (config) => {
    const g = (config as LlinkConfig).generate
    return { maxNewTokens: g.maxNewTokens, noRepeatNgram: g.noRepeatNgram, batchSize: g.batchSize, copyNumbers: g.copyNumbers, limit: g.limit }
  },
  run: (ctx) => Effect.flatMap(importWork("generatePeers", () => import("./work.ts")), (work) => work.runGeneratePeers(ctx))
})
