/**
 * `generations`: every evaluation example with every system's answer, the one table the judge and the report read
 * (and `llink compare`): `generate`'s rows (LLINK, base, fine-tune) with `generatePeers`' columns joined on `id`.
 */
import { Effect } from "effect"
import { importWork } from "../../pipeline/lazy.ts"
import { defineStage } from "../../pipeline/stage.ts"
import { GenerationColumns } from "../../schemas/sft.ts"
import { GenerationsParams } from "./params.ts"

export const generations = defineStage<GenerationsParams>({
  name: "generations",
  source: import.meta.url,
  version: "1",
  cost: 1,
  description: "Every system's answer per evaluation example: generate's table joined with generatePeers' on id",
  inputs: ["generations.main", "generations.peers"],
  outputs: [
    {
      name: "generations",
      kind: "parquet",
      file: "generations.parquet",
      columns: GenerationColumns,
      description: "per example: task, bucket, instruction, reference, every system's output and prompt token counts"
    }
  ],
  params: GenerationsParams,
  selectParams: () => ({}),
  run: (ctx) => Effect.flatMap(importWork("generations", () => import("./work.ts")), (work) => work.runGenerations(ctx))
})
