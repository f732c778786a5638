/**
 * `tokstats`: how much the decoder's tokenizer inflates the foreign language — the motivation of LLINK. With the
 * real Llama-3 tokenizer (or `tokstats.tokenizer`, a folder holding a tokenizer.json), over the training pairs
 * (or the first `tokstats.maxPairs`): tokens per character and per sentence for both sides, the foreign/English
 * token ratio, and the decoder tokens saved by replacing a foreign sentence with K = `tokstats.slots` slot tokens
 * (foreign tokens − K per sentence; negative when a sentence is shorter than K tokens).
 *
 * Tokens are counted without special tokens (no BOS); characters are code points.
 * Outputs: `tokstats` (JSON summary), `tokstats.table` (per pair: tokens and chars of each side) and `tokstats.svg`
 * (a folder holding `tokens-per-sentence.svg`, the histogram of tokens per sentence of both sides; a folder because
 * the stage contract has no plain-file kind).
 */
import * as path from "node:path"
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { maxSlots } from "../../prompts/slotPolicy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { TokstatsColumns } from "../../schemas/rows.ts"
import { TokstatsDoc } from "../../schemas/tokstats.ts"
import type { LlinkConfig } from "../config.ts"
import { TokstatsParams } from "./params.ts"

/** The histogram's file name inside the `tokstats.svg` folder artifact. */
export const SVG_FILE = "tokens-per-sentence.svg"

export const tokstats = defineStage<TokstatsParams>({
  name: "tokstats",
  source: import.meta.url,
  version: "1",
  heavy: true,
  cost: 2,
  description: "Tokenization inflation of the foreign side with the Llama-3 tokenizer, and tokens saved by K slots",
  inputs: ["train"],
  outputs: [
    { name: "tokstats", kind: "json", file: "tokstats.json", schema: TokstatsDoc, description: "token/char statistics of both sides" },
    { name: "tokstats.table", kind: "parquet", file: "tokstats.parquet", columns: TokstatsColumns, description: "per pair: tokens and chars of each side" },
    { name: "tokstats.svg", kind: "dir", file: "plots", description: `folder with ${SVG_FILE}: histogram of tokens per sentence, both sides` }
  ],
  params: TokstatsParams,
  selectParams: (config) => {
    const c = config as LlinkConfig
    // under a slot policy, its largest K (`{ fixed: K }`: that K; byLength: its max, so "saved" is a floor)
    return { ...c.tokstats, slots: maxSlots(c.stageB.slotPolicy, c.models.slots) }
  },
  externalInputs: (p) => (p.tokenizer === "" ? [] : [path.resolve(p.tokenizer)]),
  run: (ctx) => Effect.flatMap(importWork("tokstats", () => import("./work.ts")), (work) => work.runTokstats(ctx))
})
