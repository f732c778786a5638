/**
 * `tinyDecoder`: the tiny Llama of a run with `models.decoder = "tiny"`, seeded, with the real Llama-3 tokenizer and
 * the Llama-3.2-Instruct chat layout. At `models.tinySize: "mini"` it is pretrained as an English instruction model
 * on the English side of `train` only (`pretrain.ts`), with the curve and a few greedy samples in its pretrain
 * document. A snapshot decoder leaves the folder empty and the document's parts null.
 *
 * It runs beside `tinyEncoder`; every later stage waits for it, so its micro-batches (`models.pretrain.
 * decoderMicroBatches`) run on worker threads over every core (src/train/decoderWorkers.ts). The `models` stage
 * puts the two checkpoints together.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { PretrainDoc } from "../../schemas/pretrain.ts"
import type { LlinkConfig } from "../config.ts"
import { TinyDecoderParams } from "./params.ts"

export const tinyDecoder = defineStage<TinyDecoderParams, TensorBackend>({
  name: "tinyDecoder",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 60,
  description: "The tiny Llama (models.decoder \"tiny\"): seeded, Llama-3 tokenizer, English-only pretraining at \"mini\"",
  inputs: ["train"],
  outputs: [
    { name: "tinyDecoder", kind: "dir", file: "decoder", description: "the tiny decoder checkpoint (empty for a snapshot)" },
    { name: "tinyDecoder.pretrain", kind: "json", file: "pretrain.json", schema: PretrainDoc, description: "its LM curve and samples (encoder part null)" }
  ],
  params: TinyDecoderParams,
  selectParams: (config) => {
    const m = (config as LlinkConfig).models
    return {
      tiny: m.decoder === "tiny",
      size: m.tinySize,
      seed: m.seed,
      steps: m.pretrain.decoderSteps,
      batch: m.pretrain.decoderBatch,
      microBatches: m.pretrain.decoderMicroBatches,
      lr: m.pretrain.decoderLr,
      warmupSteps: m.pretrain.warmupSteps,
      weightDecay: m.pretrain.weightDecay,
      numberDrill: m.pretrain.numberDrill === true
    }
  },
  run: (ctx) => Effect.flatMap(importWork("tinyDecoder", () => import("./work.ts")), (work) => work.runTinyDecoder(ctx))
})
