/**
 * `retrievalPeers`: bilingual retrieval (Table 1) of the peer baselines that are on, on the same eval slice and
 * against the same teacher vectors h_E as LLINK's rows. Each peer's query vector is its pooled soft input: the
 * encoder reads the foreign sentence alone, and the bridge's map of every token state is averaged (the end vector
 * left out); see src/nodes/retrievalPeers/work.ts.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { RetrievalPeersDoc } from "../../schemas/retrieval.ts"
import type { LlinkConfig } from "../config.ts"
import { RetrievalPeersParams } from "./params.ts"

export const retrievalPeers = defineStage<RetrievalPeersParams, TensorBackend>({
  name: "retrievalPeers",
  source: import.meta.url,
  version: "1",
  description: "Bilingual retrieval of the peer baselines' pooled soft inputs (mean mapped encoder state)",
  inputs: ["models", "langbridge", "mindmerger", "hE.holdout", "eval"],
  outputs: [
    { name: "retrieval.peers", kind: "json", file: "retrieval.peers.json", schema: RetrievalPeersDoc, description: "retrieval metrics of the peers that are on" }
  ],
  params: RetrievalPeersParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return { n: c.retrieval.n, evalN: c.split.evalN, bootstrap: c.retrieval.bootstrap, encoderBatch: c.encode.batchSize }
  },
  run: (ctx) => Effect.flatMap(importWork("retrievalPeers", () => import("./work.ts")), (work) => work.runRetrievalPeers(ctx))
})
