/**
 * `tinyEncoder`: the tiny XLM-R of a run with `models.encoder = "tiny"`, seeded, with a Unigram tokenizer trained on
 * the first `models.tinyTokenizerPairs` training pairs (both sides), so it covers the corpus's script. At
 * `models.tinySize: "mini"` it is pretrained by masked-LM on both sides of `train` (`pretrain.ts`), with the curve
 * in its pretrain document. A snapshot encoder leaves the folder empty and the document's parts null.
 *
 * It runs beside `tinyDecoder`, on the other core; the `models` stage puts the two together.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { PretrainDoc } from "../../schemas/pretrain.ts"
import type { LlinkConfig } from "../config.ts"
import { TinyEncoderParams } from "./params.ts"

export const tinyEncoder = defineStage<TinyEncoderParams, TensorBackend>({
  name: "tinyEncoder",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 35,
  description: "The tiny XLM-R (models.encoder \"tiny\"): seeded, tokenizer from train, masked-LM pretraining at \"mini\"",
  inputs: ["train"],
  outputs: [
    { name: "tinyEncoder", kind: "dir", file: "encoder", description: "the tiny encoder checkpoint (empty for a snapshot)" },
    { name: "tinyEncoder.pretrain", kind: "json", file: "pretrain.json", schema: PretrainDoc, description: "its masked-LM curve (decoder part null)" }
  ],
  params: TinyEncoderParams,
  selectParams: (config) => {
    const m = (config as LlinkConfig).models
    return {
      tiny: m.encoder === "tiny",
      size: m.tinySize,
      seed: m.seed,
      tokenizerPairs: m.tinyTokenizerPairs,
      steps: m.pretrain.encoderSteps,
      batch: m.pretrain.encoderBatch,
      lr: m.pretrain.encoderLr,
      maskProb: m.pretrain.maskProb,
      warmupSteps: m.pretrain.warmupSteps,
      weightDecay: m.pretrain.weightDecay
    }
  },
  run: (ctx) => Effect.flatMap(importWork("tinyEncoder", () => import("./work.ts")), (work) => work.runTinyEncoder(ctx))
})
