/**
 * `langbridge`: the LangBridge peer baseline (Yoon et al., ACL 2024). Every token state of the run's frozen encoder
 * → a linear map, plus a learned end vector → soft inputs of the frozen decoder (no LoRA). Trained on English-only
 * instruction data: the encoder reads the instruction and the pair's English side, the target is the Stage B
 * target; at evaluation the foreign text goes through the encoder instead. Resumable exactly. Details:
 * `src/nodes/langbridge/work.ts`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { BRIDGE_CONFIG, BRIDGE_METRICS_COLUMNS, BridgeDoc } from "../../schemas/bridge.ts"
import { selectPeerParams } from "../../train/sftParams.ts"
import type { LlinkConfig } from "../config.ts"
import { LangBridgeParams } from "./params.ts"

export const langbridge = defineStage<LangBridgeParams, TensorBackend>({
  name: "langbridge",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 40,
  description: "LangBridge peer: encoder token states → linear map + end vector → soft inputs of the frozen decoder",
  inputs: ["models", "sft.train", "sft.val"],
  outputs: [
    {
      name: "langbridge",
      kind: "dir",
      file: "langbridge",
      document: { file: BRIDGE_CONFIG, schema: BridgeDoc },
      description: "bridge.safetensors (linear.weight, linear.bias, enc_eos) + config.json"
    },
    {
      name: "langbridge.metrics",
      kind: "parquet",
      file: "langbridge.metrics.parquet",
      columns: BRIDGE_METRICS_COLUMNS,
      description: "per step: loss, lr, grad norm; val loss with and without the mapped states"
    }
  ],
  params: LangBridgeParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    return selectPeerParams("langbridge", c.langbridge, c.baselines, c.encode)
  },
  run: (ctx) => Effect.flatMap(importWork("langbridge", () => import("./work.ts")), (work) => work.runLangBridge(ctx))
})
