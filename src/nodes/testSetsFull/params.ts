/**
 * What `testSetsFull` depends on: no section of its own. It scores the named test sets (`eval.testSets`) exactly as
 * `retrievalFull` and `retrievalPeers` score the eval slice: `retrievalFull.vector` and `.batchSize`, the teacher's
 * prompt (the fine-tune's vector is read from the same prompt), `retrieval.bootstrap`, and `encode.batchSize` for the
 * peers' encoder passes.
 */
import { Schema } from "effect"
import { TeacherPromptConfig } from "../../prompts/teacher.ts"
import { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { Size } from "../../schemas/fields.ts"
import { RetrievalFullVector } from "../../schemas/retrieval.ts"

export const TestSetsFullParams = Schema.Struct({
  vector: RetrievalFullVector,
  batchSize: Size,
  teacher: TeacherPromptConfig,
  bootstrap: BootstrapConfig,
  /** `encode.batchSize`: sentences per encoder pass (the peers' query vectors). */
  encoderBatch: Size
})
export type TestSetsFullParams = typeof TestSetsFullParams.Type
