/**
 * `models`: which frozen encoder (XLM-R) and decoder (Llama) the later stages load, and the reserved tokens the
 * decoder gains (`<foreign>`, `</foreign>`, `<foreign_emb>`, `<f0>`…`<f{K−1}>`) with their embedding-row rule.
 *
 * `models.encoder` / `models.decoder` = `"tiny"` takes the seeded tiny checkpoints (Hugging Face layout) that the
 * `tinyEncoder` and `tinyDecoder` stages made side by side (pretrained at `models.tinySize: "mini"`, the embedded
 * default's miniature) into the `models.tiny` folder, and their curves and samples into the `models.pretrain`
 * document. A folder path names a local snapshot (its content enters the cache key through `externalInputs` and the
 * document's fingerprints). The `models` document (see `src/artifacts/models.ts`) is what consumers read:
 * `readModelsRef(ctx.inputs["models"])`.
 */
import * as path from "node:path"
import { Effect } from "effect"
import { ModelsDoc } from "../../artifacts/models.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import type { LlinkConfig } from "../config.ts"
import { ModelsConfig, type ModelsParams } from "./params.ts"
import { PretrainDoc } from "../../schemas/pretrain.ts"

export const models = defineStage<ModelsParams>({
  name: "models",
  source: import.meta.url,
  version: "3",
  cost: 1,
  description: "The frozen encoder and decoder (tiny seeded checkpoints or local snapshots) and the reserved tokens",
  inputs: ["tinyEncoder", "tinyEncoder.pretrain", "tinyDecoder", "tinyDecoder.pretrain"],
  outputs: [
    { name: "models", kind: "json", file: "models.json", schema: ModelsDoc, description: "encoder/decoder folders, fingerprints, added tokens" },
    { name: "models.tiny", kind: "dir", file: "tiny", description: "tiny checkpoints (encoder/, decoder/) when asked for; else empty" },
    { name: "models.pretrain", kind: "json", file: "pretrain.json", schema: PretrainDoc, description: "pretraining of the tiny checkpoints: loss curves and greedy samples (null parts: not pretrained)" }
  ],
  params: ModelsConfig,
  selectParams: (config) => (config as LlinkConfig).models,
  externalInputs: (p) => [p.encoder, p.decoder].filter((m) => m !== "tiny").map((m) => path.resolve(m)),
  preflight: (p) =>
    Effect.flatMap(Effect.promise(() => import("../../models/snapshot.ts")), ({ snapshotProblems }) =>
      Effect.map(
        Effect.all([
          p.encoder === "tiny" ? Effect.succeed([]) : snapshotProblems(path.resolve(p.encoder), "xlmr"),
          p.decoder === "tiny" ? Effect.succeed([]) : snapshotProblems(path.resolve(p.decoder), "llama")
        ]),
        ([enc, dec]) => [
          ...enc.map((message) => ({ field: "models.encoder", message })),
          ...dec.map((message) => ({ field: "models.decoder", message }))
        ]
      )),
  run: (ctx) => Effect.flatMap(importWork("models", () => import("./work.ts")), (work) => work.runModels(ctx))
})
