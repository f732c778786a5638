/**
 * What `testSetsFull` depends on: no section of its own. It scores the named test sets (`eval.testSets`) exactly as
 * `retrievalFull` scores the eval slice: `retrievalFull.vector` and `.batchSize`, the teacher's prompt (the
 * fine-tune's vector is read from the same prompt) and `retrieval.bootstrap`.
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
  bootstrap: BootstrapConfig
})
export type TestSetsFullParams = typeof TestSetsFullParams.Type
