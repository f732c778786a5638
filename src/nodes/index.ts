/**
 * All pipeline stages in DAG order. Stages never import each other; the runner wires them by artifact names.
 */
import type { AnyStage } from "../pipeline/dag.ts"
import { clean } from "./clean.ts"
import { encode } from "./encode.ts"
import { finetune } from "./finetune.ts"
import { generate } from "./generate.ts"
import { ingest } from "./ingest.ts"
import { judge } from "./judge.ts"
import { models } from "./models.ts"
import { report } from "./report.ts"
import { retrieval } from "./retrieval.ts"
import { retrievalFull } from "./retrievalFull.ts"
import { split } from "./split.ts"
import { stageA } from "./stageA.ts"
import { stageB } from "./stageB.ts"
import { synthesize } from "./synthesize.ts"
import { teacher } from "./teacher.ts"
import { tokstats } from "./tokstats.ts"

export const stages: ReadonlyArray<AnyStage> = [ingest, clean, split, tokstats, models, encode, teacher, stageA, retrieval, synthesize, stageB, finetune, generate, judge, retrievalFull, report]
