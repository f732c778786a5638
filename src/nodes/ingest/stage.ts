/**
 * `ingest`: reads the user's corpus in whatever format it came (ParaCrawl bonus TSV, WMT20 `.xz` + LASER scores,
 * OPUS Moses plain or zipped, TMX plain or zipped, Parquet, JSONL; see `src/corpus/corpus.ts` for detection) and
 * writes two tables:
 * - `pairs`: `id` (0-based, file order), `english`, `foreign`, `origin` (`file:line`), `score` (WMT20 LASER or null);
 * - `ingest.quarantine`: every row that could not be used as it is (`file`, `line`, `reason`, `raw` ≤ 500 chars);
 * - `ingest.summary`: the counts per quarantine reason, and a Moses line-count mismatch when one was accepted
 *   (`corpus.allowLineCountMismatch`), for the report.
 *
 * Rows stream through in batches (one per 64 KiB chunk; 1 MiB for a plain TSV, read on bytes: formats/tsvBytes.ts),
 * so memory stays flat whatever the corpus size. Nothing is
 * altered here (no normalisation): that is `clean`'s job. A structurally broken file (truncated gzip/xz, unreadable
 * zip, not TMX) fails the stage naming the file and the byte or line; a corpus with no usable pair fails too.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { IngestSummaryDoc } from "../../schemas/ingestSummary.ts"
import { PairColumns, QuarantineColumns } from "../../schemas/rows.ts"
import type { LlinkConfig } from "../config.ts"
import { corpusFiles } from "../../corpus/corpus.ts"
import { CorpusConfig, type CorpusParams } from "./params.ts"

export const ingest = defineStage<CorpusParams>({
  name: "ingest",
  source: import.meta.url,
  version: "1",
  description: "Read the parallel corpus (TSV/WMT20/Moses/TMX/Parquet/JSONL) into a pairs table; quarantine bad rows",
  inputs: [],
  outputs: [
    { name: "pairs", kind: "parquet", file: "pairs.parquet", columns: PairColumns, description: "sentence pairs: id, english, foreign, origin, score" },
    { name: "ingest.quarantine", kind: "parquet", file: "quarantine.parquet", columns: QuarantineColumns, description: "rows not ingested: file, line, reason, raw" },
    { name: "ingest.summary", kind: "json", file: "summary.json", schema: IngestSummaryDoc, description: "quarantine counts by reason; an accepted Moses line-count mismatch" }
  ],
  params: CorpusConfig,
  selectParams: (config) => (config as LlinkConfig).corpus,
  externalInputs: (params) => corpusFiles(params),
  preflight: (params) => Effect.flatMap(Effect.promise(() => import("../../corpus/preflight.ts")), (m) => m.corpusPreflight(params)),
  run: (ctx) => Effect.flatMap(importWork("ingest", () => import("./work.ts")), (work) => work.runIngest(ctx))
})
