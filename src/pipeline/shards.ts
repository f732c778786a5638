/**
 * Sharded stages: a stage with a `sharding` declaration (`stage.ts`) splits its heavy work into row ranges of its
 * input tables. Each shard is a durable unit of work whose output is published through the artifact store under a
 * shard key, the stage key plus the range:
 *
 *   `<cacheDir>/<stage>/<key>.shards/<table>.<start>-<end>/`   the shard's files plus `_shard.json`
 *                                                              (range, rows, metrics, sha256 of every file)
 *   `<cacheDir>/<stage>/<key>.shards/.tmp-<id>-<host>-<pid>-<n>/` where a shard is written before the rename
 *
 * A shard counts as finished only when `_shard.json` exists and every file it lists has that digest; a finished
 * shard is never recomputed (a rerun after a crash computes only the others). Once every shard is finished, the
 * stage's `merge` writes the declared outputs in `plan` order, so the merged artifact does not depend on where, when
 * or in which order the shards ran. The stage is then published as usual and its `.shards` folder removed.
 *
 * Where shards run: in this process, one after another, unless the context holds a `ShardExecutor` (the cluster
 * client of `src/cluster/`), which hands the pending shards to runners and returns once they are all published.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Option, Schema } from "effect"
import { canonicalJson, listFilesSync } from "./digest.ts"
import { ArtifactError, StageError } from "./errors.ts"
import { errnoCode } from "../formats/file.ts"
import { fsyncDir, readTextIfExists, trySync, uniqueSuffix, writeFileDurableSync } from "./fsAtomic.ts"
import type { AnyStage } from "./dag.ts"
import type { FinishedShard, Progress, ShardRange, StageContext, StageOutcome } from "./stage.ts"
import * as crypto from "node:crypto"
import { describeError } from "../errors/describe.ts"

export const ShardRangeSchema = Schema.Struct({ table: Schema.String, start: Schema.Number, end: Schema.Number })

/** `_shard.json` of a published shard. */
export const ShardRecord = Schema.Struct({
  stage: Schema.String,
  key: Schema.String,
  range: ShardRangeSchema,
  rows: Schema.Number,
  metrics: Schema.Record(Schema.String, Schema.Unknown),
  /** File (relative to the shard folder) → sha256. */
  files: Schema.Record(Schema.String, Schema.String),
  /** `host:pid` of the process that computed it. */
  computedBy: Schema.String,
  durationMs: Schema.Number
})
export type ShardRecord = typeof ShardRecord.Type

const SHARD_META = "_shard.json"

/** `train.000000000-000002048`: the shard's folder name (sorts in row order). */
export const shardId = (r: ShardRange): string =>
  `${r.table}.${String(r.start).padStart(9, "0")}-${String(r.end).padStart(9, "0")}`

/** `train[0, 2048)`: the range in messages. */
export const describeRange = (r: ShardRange): string => `${r.table}[${r.start}, ${r.end})`

/** `<root>/<stage>/<key>.shards`. */
export const shardsRoot = (root: string, stage: string, key: string): string => path.join(root, stage, `${key}.shards`)

export const shardDir = (root: string, stage: string, key: string, range: ShardRange): string =>
  path.join(shardsRoot(root, stage, key), shardId(range))

/**
 * `<root>/<stage>/<key>.shards/.scratch/<shard id>/`: a shard's resumable state (finished batches), kept across
 * attempts, so a shard whose runner died resumes where it was on the runner that takes it over (every runner sees
 * the same folder); removed once the shard is published, and with the `.shards` folder when the stage is.
 */
export const shardScratchDir = (root: string, stage: string, key: string, range: ShardRange): string =>
  path.join(shardsRoot(root, stage, key), ".scratch", shardId(range))

const fileSha256 = (file: string): string => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/**
 * The published shard of `range`, or None. A folder whose `_shard.json` is unreadable or whose files disagree with
 * their recorded digests (a torn copy on a shared folder) counts as not finished.
 */
export const lookupShard = (
  root: string,
  stage: string,
  key: string,
  range: ShardRange
): Effect.Effect<Option.Option<FinishedShard & { readonly record: ShardRecord }>, ArtifactError> => {
  const dir = shardDir(root, stage, key, range)
  const metaFile = path.join(dir, SHARD_META)
  return Effect.gen(function*() {
    const text = yield* readTextIfExists(metaFile)
    if (text === undefined) return Option.none()
    const decoded = yield* Effect.result(
      Effect.try({ try: () => JSON.parse(text) as unknown, catch: (cause) => cause }).pipe(
        Effect.flatMap((json) => Schema.decodeUnknownEffect(ShardRecord)(json))
      )
    )
    if (decoded._tag === "Failure") return Option.none()
    const record = decoded.success
    if (record.key !== key || canonicalJson(record.range) !== canonicalJson(range)) return Option.none()
    for (const [file, digest] of Object.entries(record.files)) {
      const ok = yield* trySync(path.join(dir, file), "digest shard file", () => {
        try {
          return fileSha256(path.join(dir, file)) === digest
        } catch (cause) {
          if (errnoCode(cause) === "ENOENT") return false
          throw cause
        }
      })
      if (!ok) return Option.none()
    }
    return Option.some({ range, dir, rows: record.rows, metrics: record.metrics, record })
  })
}

/** What a shard run needs besides the stage itself; plain JSON apart from `params` (sent to cluster runners). */
export interface ShardJob {
  readonly stage: string
  readonly key: string
  /** The artifact store root (a folder every runner sees at the same path). */
  readonly root: string
  /** The stage's decoded parameters. */
  readonly params: unknown
  readonly inputs: Readonly<Record<string, string>>
}

export interface ShardRunHooks {
  readonly log: (message: string) => void
  readonly progress: (label: string, total?: number) => Progress
}

const rangeError = (stage: string, range: ShardRange, cause: unknown): StageError =>
  new StageError({
    stage,
    message: `shard ${describeRange(range)} failed: ${cause instanceof StageError ? cause.message : describeError(cause)}`,
    ...(cause instanceof StageError && cause.file !== undefined ? { file: cause.file } : {}),
    ...(cause instanceof StageError && cause.line !== undefined ? { line: cause.line } : {}),
    cause
  })

/**
 * Runs one shard unless it is already published: writes into a temporary folder, digests every file, writes
 * `_shard.json` and renames the folder into place (if another runner published it meanwhile, theirs is kept: same
 * key, same content). This is the activity a cluster runner executes for each shard message.
 */
export const runShard = <R>(
  stage: AnyStage<R>,
  job: ShardJob,
  range: ShardRange,
  hooks: ShardRunHooks
): Effect.Effect<{ readonly shard: FinishedShard; readonly reused: boolean }, StageError | ArtifactError, R> =>
  Effect.gen(function*() {
    const sharding = stage.sharding
    if (sharding === undefined) {
      return yield* new StageError({ stage: stage.name, message: "the stage declares no sharding" })
    }
    const found = yield* lookupShard(job.root, stage.name, job.key, range)
    if (Option.isSome(found)) return { shard: found.value, reused: true }
    const parent = shardsRoot(job.root, stage.name, job.key)
    const target = shardDir(job.root, stage.name, job.key, range)
    const tmp = path.join(parent, `.tmp-${shardId(range)}-${os.hostname()}-${uniqueSuffix()}`)
    const scratch = shardScratchDir(job.root, stage.name, job.key, range)
    const t0 = performance.now()
    return yield* Effect.acquireUseRelease(
      trySync(tmp, "create shard folder", () => {
        fs.mkdirSync(tmp, { recursive: true })
        fs.mkdirSync(scratch, { recursive: true })
      }),
      () =>
        Effect.gen(function*() {
          const outcome = yield* sharding.runShard({
            params: job.params,
            inputs: job.inputs,
            range,
            root: job.root,
            outDir: tmp,
            scratchDir: scratch,
            progress: hooks.progress,
            log: hooks.log
          }).pipe(Effect.mapError((e) => rangeError(stage.name, range, e)))
          const metrics = yield* Effect.try({
            try: () => JSON.parse(canonicalJson(outcome.metrics ?? {})) as Record<string, unknown>,
            catch: (cause) => rangeError(stage.name, range, `metrics are not JSON: ${describeError(cause)}`)
          })
          const record = yield* trySync(tmp, "digest shard files", (): ShardRecord => {
            const files: Record<string, string> = {}
            for (const rel of listFilesSync(tmp)) {
              const file = path.join(tmp, rel)
              const fd = fs.openSync(file, "r")
              try {
                fs.fsyncSync(fd)
              } finally {
                fs.closeSync(fd)
              }
              files[rel] = fileSha256(file)
            }
            return {
              stage: stage.name,
              key: job.key,
              range,
              rows: outcome.rows,
              metrics,
              files,
              computedBy: `${os.hostname()}:${process.pid}`,
              durationMs: Math.round(performance.now() - t0)
            }
          })
          yield* trySync(path.join(tmp, SHARD_META), "write", () =>
            writeFileDurableSync(path.join(tmp, SHARD_META), `${canonicalJson(record)}\n`))
          yield* fsyncDir(tmp)
          const renamed = yield* trySync(target, "publish shard (rename)", () => {
            try {
              fs.renameSync(tmp, target)
              return true
            } catch (cause) {
              const code = errnoCode(cause)
              if (code === "ENOTEMPTY" || code === "EEXIST") return false
              throw cause
            }
          })
          if (!renamed) {
            // Published meanwhile by another runner (same key and range: same bytes), or a broken leftover.
            const theirs = yield* lookupShard(job.root, stage.name, job.key, range)
            if (Option.isSome(theirs)) return { shard: theirs.value, reused: true }
            yield* trySync(target, "replace broken shard", () => {
              const aside = `${tmp}.old`
              fs.renameSync(target, aside)
              fs.rmSync(aside, { recursive: true, force: true })
              fs.renameSync(tmp, target)
            })
          }
          yield* fsyncDir(parent)
          // published: what an earlier, interrupted attempt left for resuming is no longer needed
          yield* trySync(scratch, "remove shard scratch folder", () => fs.rmSync(scratch, { recursive: true, force: true }))
          return {
            shard: { range, dir: target, rows: record.rows, metrics: record.metrics },
            reused: false
          }
        }),
      () => trySync(tmp, "remove shard temporary folder", () => fs.rmSync(tmp, { recursive: true, force: true })).pipe(Effect.ignore)
    )
  })

/** Hands pending shards to other processes (the cluster); returns once each is published or one failed. */
export interface ShardExecutorShape {
  /** For logs: where shards go, e.g. `cluster (3 runners)`. */
  readonly describe: Effect.Effect<string>
  readonly runAll: (
    job: ShardJob,
    pending: ReadonlyArray<ShardRange>,
    onDone: (range: ShardRange, computedBy: string) => void
  ) => Effect.Effect<void, StageError | ArtifactError>
}

/** Absent: shards run in this process. The CLI provides it with `--cluster`. */
export class ShardExecutor extends Context.Service<ShardExecutor, ShardExecutorShape>()("llink/ShardExecutor") {}

/** Whether shards go to other processes (a `ShardExecutor` is in context): stages that only shard there ask this. */
export const onCluster: Effect.Effect<boolean> = Effect.map(Effect.serviceOption(ShardExecutor), Option.isSome)

/** Rows `[0, n)` of `table` cut into ranges of `size` (the last one shorter). */
export const consecutiveRanges = (table: string, n: number, size: number): Array<ShardRange> => {
  const out: Array<ShardRange> = []
  for (let start = 0; start < n; start += size) out.push({ table, start, end: Math.min(n, start + size) })
  return out
}

/**
 * Runs a sharded stage (the runner calls this instead of `stage.run`): plans the shards, runs the ones not yet
 * published (here, or through the `ShardExecutor`), then merges them in plan order into `ctx.outputs`.
 */
export const runShardedStage = <R>(
  stage: AnyStage<R>,
  ctx: StageContext<unknown>,
  store: { readonly root: string; readonly key: string }
): Effect.Effect<StageOutcome, StageError | ArtifactError, R> =>
  Effect.gen(function*() {
    const sharding = stage.sharding!
    const ranges = yield* sharding.plan({ params: ctx.params, inputs: ctx.inputs })
    const ids = new Set<string>()
    for (const r of ranges) {
      if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start) {
        return yield* new StageError({ stage: stage.name, message: `invalid shard range ${describeRange(r)}` })
      }
      if (ids.has(shardId(r))) {
        return yield* new StageError({ stage: stage.name, message: `shard ${describeRange(r)} is planned twice` })
      }
      ids.add(shardId(r))
    }
    const job: ShardJob = { stage: stage.name, key: store.key, root: store.root, params: ctx.params, inputs: ctx.inputs }
    const pending: Array<ShardRange> = []
    for (const r of ranges) {
      const found = yield* lookupShard(store.root, stage.name, store.key, r)
      if (Option.isNone(found)) pending.push(r)
    }
    const executor = yield* Effect.serviceOption(ShardExecutor)
    const where = Option.isSome(executor) ? yield* executor.value.describe : "this process"
    // No shards (e.g. a stage that shards only on a cluster, run in one process): the merge does the whole job.
    if (ranges.length > 0) {
      ctx.log(`${ranges.length} shard(s): ${ranges.length - pending.length} already published, ${pending.length} to run in ${where}`)
    }
    if (pending.length > 0) {
      if (Option.isNone(executor)) {
        for (const r of pending) yield* runShard(stage, job, r, { log: ctx.log, progress: ctx.progress })
      } else {
        const bar = ctx.progress("shards", pending.length)
        yield* executor.value.runAll(job, pending, () => bar.advance(1))
        bar.done()
      }
    }
    const finished: Array<FinishedShard> = []
    for (const r of ranges) {
      const found = yield* lookupShard(store.root, stage.name, store.key, r)
      if (Option.isNone(found)) {
        return yield* new StageError({
          stage: stage.name,
          message: `shard ${describeRange(r)} is not published after its run`,
          file: shardDir(store.root, stage.name, store.key, r)
        })
      }
      const { record: _record, ...shard } = found.value
      finished.push(shard)
    }
    return yield* sharding.merge(ctx, finished)
  })

/** Removes the `.shards` folder of a published stage run (its shards are in the published outputs now). */
export const removeShards = (root: string, stage: string, key: string): Effect.Effect<void, ArtifactError> =>
  trySync(shardsRoot(root, stage, key), "remove shard folder", () =>
    fs.rmSync(shardsRoot(root, stage, key), { recursive: true, force: true }))
