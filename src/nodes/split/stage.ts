/**
 * `split`: a seeded, deterministic subset of the cleaned pairs, cut into disjoint `train` and `holdout` tables and
 * an `eval` slice (the first `split.evalN` holdout pairs), as in the paper (100k train + 40k held out; retrieval on
 * 1,024 held-out pairs).
 *
 * Every pair is ranked by `sha1(seed + "\0" + english + "\0" + foreign)` (the first 8 bytes, big-endian): the
 * `train + holdout` lowest form the subset, in hash order; the first `train` of them are `train`, the rest
 * `holdout`, and `eval` is the head of `holdout`. The choice depends only on the pairs' content and the seed, so it
 * is the same on every rerun, whatever the input order, and a different seed gives a different split. The rank is
 * easy to recompute elsewhere, e.g. in Python: `hashlib.sha1(f"{seed}\0{en}\0{km}".encode()).digest()[:8]`.
 *
 * Memory: pass 1 keeps only a bounded max-heap of (hash, row index) for the `train + holdout` lowest; pass 2
 * re-reads the table and keeps only the chosen rows, which are written in hash order.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { PairColumns } from "../../schemas/rows.ts"
import type { LlinkConfig } from "../config.ts"
import { SplitConfig, type SplitParams } from "./params.ts"

export const split = defineStage<SplitParams>({
  name: "split",
  source: import.meta.url,
  version: "1",
  description: "Seeded content-hash split of the clean pairs into disjoint train and holdout tables, plus an eval slice",
  inputs: ["clean"],
  outputs: [
    { name: "train", kind: "parquet", file: "train.parquet", columns: PairColumns, description: "training pairs (hash order)" },
    { name: "holdout", kind: "parquet", file: "holdout.parquet", columns: PairColumns, description: "held-out pairs (hash order)" },
    { name: "eval", kind: "parquet", file: "eval.parquet", columns: PairColumns, description: "the first evalN held-out pairs" }
  ],
  params: SplitConfig,
  selectParams: (config) => (config as LlinkConfig).split,
  run: (ctx) => Effect.flatMap(importWork("split", () => import("./work.ts")), (work) => work.runSplit(ctx))
})
