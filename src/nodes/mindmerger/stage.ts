/**
 * `mindmerger`: the MindMerger peer baseline (Huang et al., NeurIPS 2024). Every token state of the run's frozen
 * encoder → a 2-layer MLP (d → 2d → D, ReLU) → `[BOS, mapped states, boundary vector, the decoder's own embeddings of
 * the prompt with the original text]` into the frozen decoder (no LoRA). Phase 1 ("mapping") trains the MLP on the
 * parallel `train` pairs (foreign → English, no text prompt), phase 2 ("task") on the Stage B instruction data.
 * Resumable exactly. Details: `src/nodes/mindmerger/work.ts`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { BRIDGE_CONFIG, BRIDGE_METRICS_COLUMNS, BridgeDoc } from "../../schemas/bridge.ts"
import { selectPeerParams } from "../../train/sftParams.ts"
import type { LlinkConfig } from "../config.ts"
import { MindMergerParams } from "./params.ts"

export const mindmerger = defineStage<MindMergerParams, TensorBackend>({
  name: "mindmerger",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 75,
  description: "MindMerger peer: encoder token states → MLP → [BOS, states, boundary, prompt tokens] into the frozen decoder; mapping, then task phase",
  inputs: ["models", "train", "sft.train", "sft.val"],
  outputs: [
    {
      name: "mindmerger",
      kind: "dir",
      file: "mindmerger",
      document: { file: BRIDGE_CONFIG, schema: BridgeDoc },
      description: "bridge.safetensors (mlp.linear1/2 weights and biases, end_boundary) + config.json"
    },
    {
      name: "mindmerger.metrics",
      kind: "parquet",
      file: "mindmerger.metrics.parquet",
      columns: BRIDGE_METRICS_COLUMNS,
      description: "per step and phase (mapping, task): loss, lr, grad norm; val loss with and without the mapped states"
    }
  ],
  params: MindMergerParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return selectPeerParams("mindmerger", c.mindmerger, c.baselines, c.encode)
  },
  run: (ctx) => Effect.flatMap(importWork("mindmerger", () => import("./work.ts")), (work) => work.runMindMerger(ctx))
})
