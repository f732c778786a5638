/**
 * `generatePeers` has no config section of its own: it reads the part of `generate` that its answers depend on (the
 * decoding settings, the batch and the example limit). `generate.slots` is LLINK's alone, so zeroing LLINK's slots
 * does not make the peers answer again.
 */
import { Schema } from "effect"
import { Count, Size } from "../../schemas/fields.ts"

export const GeneratePeersParams = Schema.Struct({
  /** `generate.maxNewTokens`, `noRepeatNgram`, `batchSize`, `copyNumbers`, `limit`. */
  maxNewTokens: Size,
  noRepeatNgram: Count,
  batchSize: Size,
  copyNumbers: Schema.Literals(["off", "on"]),
  limit: Count
})
export type GeneratePeersParams = typeof GeneratePeersParams.Type
