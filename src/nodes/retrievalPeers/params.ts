/**
 * `retrievalPeers` has no config section of its own: it evaluates the slice of Table 1 (`retrieval.n`, else
 * `split.evalN`) with `retrieval.bootstrap`, and runs the encoder in batches of `encode.batchSize`.
 */
import { Schema } from "effect"
import { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { Count, Size } from "../../schemas/fields.ts"

export const RetrievalPeersParams = Schema.Struct({
  n: Count,
  evalN: Count,
  bootstrap: BootstrapConfig,
  /** `encode.batchSize`: sentences per encoder pass. */
  encoderBatch: Size
})
export type RetrievalPeersParams = typeof RetrievalPeersParams.Type
