/**
 * Config section `retrievalFull`, plus what the stage shares with others: `retrieval.n` and `split.evalN` (the same
 * eval slice as Table 1's Stage A row) and the teacher's prompt settings (the fine-tune baseline's vector is read
 * from the same prompt).
 */
import { Schema } from "effect"
import { TeacherPromptConfig } from "../../prompts/teacher.ts"
import { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { RetrievalFullVector } from "../../schemas/retrieval.ts"
import { Count, dflt, Size } from "../../schemas/fields.ts"

export { RetrievalFullVector }

export const RetrievalFullConfig = Schema.Struct({
  /** LLINK (full)'s query vector: the mean of the K injected slot vectors (what Stage B's alignment auxiliaries pull
   *  toward the teacher), or the decoder's final hidden state at the last slot with the Stage B LoRA on. */
  vector: dflt(RetrievalFullVector, "meanSlot"),
  /** Prompts per decoder forward pass (fine-tune baseline, and the `lastSlotHidden` variant). */
  batchSize: dflt(Size, 8),
  /** On a cluster (`--cluster`): batches per shard, each shard loading the systems once (128 pairs by default: 8
   *  shards for the paper's 1,024). Where the work is cut, not what it computes; a single process ignores it. */
  shardBatches: dflt(Size, 16)
})

export const RetrievalFullParams = Schema.Struct({
  ...RetrievalFullConfig.fields,
  n: Count,
  evalN: Count,
  teacher: TeacherPromptConfig,
  /** `retrieval.bootstrap`: the same intervals as the Stage A row. */
  bootstrap: BootstrapConfig
})
export type RetrievalFullParams = typeof RetrievalFullParams.Type
