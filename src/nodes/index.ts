/**
 * All pipeline stages, one folder each (`src/nodes/<stage>/stage.ts`), in DAG order. Stages never import each
 * other; the runner wires them by artifact names. They need the `TensorBackend` service (the model stages); the
 * CLI provides its live layer.
 */
import type { TensorBackend } from "../backend/tensorBackend.ts"
import type { AnyStage } from "../pipeline/dag.ts"
import { clean } from "./clean/stage.ts"
import { encode } from "./encode/stage.ts"
import { finetune } from "./finetune/stage.ts"
import { generate } from "./generate/stage.ts"
import { generatePeers } from "./generatePeers/stage.ts"
import { generations } from "./generations/stage.ts"
import { ingest } from "./ingest/stage.ts"
import { judge } from "./judge/stage.ts"
import { langbridge } from "./langbridge/stage.ts"
import { mindmerger } from "./mindmerger/stage.ts"
import { models } from "./models/stage.ts"
import { report } from "./report/stage.ts"
import { retrieval } from "./retrieval/stage.ts"
import { retrievalFull } from "./retrievalFull/stage.ts"
import { retrievalPeers } from "./retrievalPeers/stage.ts"
import { split } from "./split/stage.ts"
import { stageA } from "./stageA/stage.ts"
import { stageB } from "./stageB/stage.ts"
import { synthesize } from "./synthesize/stage.ts"
import { teacher } from "./teacher/stage.ts"
import { testSets } from "./testSets/stage.ts"
import { testSetsFull } from "./testSetsFull/stage.ts"
import { tinyDecoder } from "./tinyDecoder/stage.ts"
import { tinyEncoder } from "./tinyEncoder/stage.ts"
import { tokstats } from "./tokstats/stage.ts"

export const stages: ReadonlyArray<AnyStage<TensorBackend>> = [
  ingest,
  clean,
  split,
  tokstats,
  tinyEncoder,
  tinyDecoder,
  models,
  encode,
  teacher,
  stageA,
  retrieval,
  testSets,
  synthesize,
  stageB,
  finetune,
  langbridge,
  mindmerger,
  generate,
  generatePeers,
  generations,
  judge,
  retrievalFull,
  testSetsFull,
  retrievalPeers,
  report
]
