/**
 * The cluster protocol: one persisted entity type, `LlinkShard`, whose single message `RunShard` asks a runner to
 * compute one shard of a stage (`src/pipeline/shards.ts`). The entity id is `<stage>/<key>/<shard id>`, so the
 * cluster hashes shards over its runners and one entity handles its messages one at a time; the primary key adds
 * the run id, so a shard sent twice by one run is one request, and a second run's message for a shard that is
 * being computed waits for it and then finds it published. Messages and replies live in PostgreSQL (`SqlMessageStorage`), so a
 * shard whose runner dies is redelivered to the runner that takes over its cluster shard once the lease expires.
 */
import { Schema } from "effect"
import { ClusterSchema, Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import { ShardRangeSchema, shardId } from "../pipeline/shards.ts"

/** A shard that failed on a runner: the stage, the range and the error (as the runner formatted it). */
export class ShardFailed extends Schema.TaggedError<ShardFailed>()("ShardFailed", {
  stage: Schema.String,
  range: ShardRangeSchema,
  message: Schema.String
}) {}

export const RunShardPayload = {
  stage: Schema.String,
  key: Schema.String,
  /** The artifact store root, the same path on every machine (a shared mount). */
  root: Schema.String,
  /** The stage's decoded parameters as JSON; the runner decodes them with the stage's own Schema. */
  params: Schema.Unknown,
  inputs: Schema.Record(Schema.String, Schema.String),
  range: ShardRangeSchema,
  /** The coordinator's code digest of the stage: a runner with other code refuses the shard. */
  code: Schema.String,
  /** The `llink run` that sent it (part of the primary key: a later run retries a shard that failed). */
  runId: Schema.String
}

export const RunShardResult = Schema.Struct({
  computedBy: Schema.String,
  reused: Schema.Boolean,
  rows: Schema.Number
})

/** Between a shard's entity id and the salt the coordinator adds to place it on a runner (`executor.ts`). */
export const SALT = "~"

/** `<stage>/<key>/<shard id>`: the entity id (before any placement salt) and primary key of a shard. */
export const shardEntityId = (stage: string, key: string, range: typeof ShardRangeSchema.Type): string =>
  `${stage}/${key}/${shardId(range)}`

export const RunShard = Rpc.make("RunShard", {
  payload: RunShardPayload,
  success: RunShardResult,
  error: ShardFailed,
  primaryKey: (p) => `${shardEntityId(p.stage, p.key, p.range)}#${p.runId}`
}).annotate(ClusterSchema.Persisted, true)

export const ShardEntity = Entity.make("LlinkShard", [RunShard])
