/** Config section `generate`: greedy generation of every evaluated system (the code's settings). */
import { Schema } from "effect"
import { Count, dflt, Size } from "../../schemas/fields.ts"

export const GenerateConfig = Schema.Struct({
  /** Greedy decoding, this many new tokens (code: 64). */
  maxNewTokens: dflt(Size, 64),
  /** No-repeat n-gram size (code: 3; 0 = off). */
  noRepeatNgram: dflt(Count, 3),
  /** Prompts per batch (left padding) and per resumable scratch file. */
  batchSize: dflt(Size, 8),
  /** Ablation: "on" (the method) or "zeroed" (LLINK's K slot vectors replaced by zero vectors at inference, so its
   *  answers cannot use the foreign sentence: how much the slots carry). The other systems are unaffected. */
  slots: dflt(Schema.Literals(["on", "zeroed"]), "on"),
  /** Beyond the paper (§7.3's copying path): "on" writes every number of every system's answer by copying one of
   *  the foreign text's numerals (the number pointer, src/text/numberPointer.ts: the decoder chooses where a number
   *  goes, the rule which one); "off" (the default, the paper) trusts the decoder's digits. */
  copyNumbers: dflt(Schema.Literals(["off", "on"]), "off"),
  /** Generate for the first this-many `sft.eval` rows only (0 = all). */
  limit: dflt(Count, 0),
  /** On a cluster (`--cluster`): batches per shard, each shard loading the systems once (128 examples by default:
   *  8 shards for the paper's 1,000). Where the work is cut, not what it computes; a single process ignores it. */
  shardBatches: dflt(Size, 16)
})

export type GenerateParams = typeof GenerateConfig.Type
