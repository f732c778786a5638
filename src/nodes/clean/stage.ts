/**
 * `clean`: normalises the ingested pairs and removes the unusable ones — never silently: every removed pair is in
 * `clean.rejects` with its reason, and `clean.quality` summarises the data.
 *
 * Per pair, in this order:
 * 1. Unicode NFC on both sides.
 * 2. Zero-width removal (`clean.removeZeroWidth`, default on): U+200B ZERO WIDTH SPACE (invisible word separator,
 *    frequent in Khmer text: FLORES has thousands), U+FEFF (BOM / ZWNBSP) and U+2060 WORD JOINER. U+200C ZWNJ and
 *    U+200D ZWJ are KEPT: they change how Khmer (and many Indic scripts) render and join, so they carry meaning.
 * 3. Whitespace: every run of whitespace (tabs, newlines, NBSP, the U+2000 spaces, ...) becomes one space; ends
 *    are trimmed.
 * 4. Rejects, in this order: `empty-english` / `empty-foreign` (nothing left after 1–3); `script-share` (the
 *    share of the foreign side's letters inside `clean.scriptRanges` is below `clean.minScriptShare`, e.g. a
 *    romanised Khmer line); `duplicate` (same english + foreign as an earlier pair after normalisation, with
 *    `clean.dedupe`; the first is kept).
 * 5. Truncation of the foreign side to `clean.maxForeignChars` code points (the paper: 256), never splitting a
 *    surrogate pair; counted.
 *
 * The quality summary (JSON) holds counts per reason, normalisation counts, code-point length histograms of both
 * sides (the foreign side before truncation), the truncated count, and suspected damaged Khmer (spaces around
 * COENG, COENG at a word end, dependent vowels with no base: see `src/nodes/clean/script.ts`) with example ids. Damaged rows
 * are only reported, not removed.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { QualityDoc } from "../../schemas/quality.ts"
import { PairColumns, RejectColumns } from "../../schemas/rows.ts"
import type { LlinkConfig } from "../config.ts"
import { CleanConfig, type CleanParams } from "./params.ts"

export const clean = defineStage<CleanParams>({
  name: "clean",
  source: import.meta.url,
  version: "1",
  description: "Normalise pairs (NFC, zero-width, whitespace), reject empty/off-script/duplicate pairs, truncate the foreign side",
  inputs: ["pairs"],
  outputs: [
    { name: "clean", kind: "parquet", file: "clean.parquet", columns: PairColumns, description: "normalised pairs: id, english, foreign, origin, score" },
    { name: "clean.rejects", kind: "parquet", file: "rejects.parquet", columns: RejectColumns, description: "removed pairs: id, reason, english, foreign" },
    { name: "clean.quality", kind: "json", file: "quality.json", schema: QualityDoc, description: "data-quality summary" }
  ],
  params: CleanConfig,
  selectParams: (config) => (config as LlinkConfig).clean,
  run: (ctx) => Effect.flatMap(importWork("clean", () => import("./work.ts")), (work) => work.runClean(ctx))
})
