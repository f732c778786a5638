/**
 * The `retrievalFull` stage's work: bilingual retrieval (paper Table 1) of the full LLINK pipeline and of the direct
 * fine-tune, on the same slice and against the same teacher vectors as the Stage A row (`retrieval`): the first n
 * pairs of `eval` (= of the holdout table), n = `retrieval.n` or else `split.evalN`; cosine between L2-normalised
 * query vectors and the L2-normalised teacher vectors h_E of all n English sentences.
 *
 * Query vectors:
 * - "full" (`retrievalFull.vector`):
 *   - "meanSlot" (default): the mean of the K injected slot vectors, v = projector(z_F) → ForeignScale → gated
 *     adapter → expander (after Stage B). This is the vector Stage B's alignment auxiliaries pull toward h_E (paper
 *     §4.2: "a unit-vector matching term increases the cosine similarity to the teacher slot, and an InfoNCE loss …
 *     against the same teacher"; the code aligns the mean slot), so it is the pipeline's representation in the
 *     teacher's space, just as g(z_F) is for Stage A. It needs no decoder pass.
 *   - "lastSlotHidden": the decoder's final hidden state (after the final norm, Stage B LoRA on) at the last slot
 *     `<f{K−1}>` of the Stage B translation prompt — the decoder-side reading of the slots, comparable in kind to
 *     h_E (also a final hidden state), but never trained toward it.
 * - "finetune": the fine-tuned decoder's (its LoRA on) final hidden state at a `<foreign_emb>` appended after the
 *   foreign text tokenised directly, built exactly like the teacher's prompt for the English side (the `teacher`
 *   section's template and token limit: "paper" = BOS `User:{foreign}<foreign_emb>`), so both sides of the
 *   comparison are read at the same reserved position.
 */
import * as path from "node:path"
import { Effect } from "effect"
import { goldRanks, withIntervals } from "../../metrics/retrieval.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { StageError } from "../../pipeline/errors.ts"
import { consecutiveRanges, onCluster } from "../../pipeline/shards.ts"
import type { FinishedShard, ShardContext, ShardOutcome, ShardRange, StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { readTableAll } from "../../formats/parquet/table.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { RetrievalFullDoc } from "../../schemas/retrieval.ts"
import type { RetrievalFullParams } from "./params.ts"
import { PAPER_RETRIEVAL } from "../../schemas/paper.ts"
import { hostMatmul } from "../../backend/host.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readF32File, writeF32File } from "../../artifacts/f32File.ts"
import { readMatrixHead } from "../../artifacts/matrixHead.ts"
import { loadEvalSystems } from "../../artifacts/systems.ts"
import { llinkAndFinetuneVectors } from "../../metrics/systemVectors.ts"
import { describeError } from "../../errors/describe.ts"

export type { RetrievalFullParams }

const STAGE = "retrievalFull"

/** The eval slice: n (what is available of `retrieval.n` or `split.evalN`), its foreign texts, z_F and h_E heads. */
const prepare = (p: RetrievalFullParams, inputs: Readonly<Record<string, string>>, log: (line: string) => void) =>
  Effect.gen(function*() {
    const want = p.n === 0 ? p.evalN : p.n
    if (want < 1) return yield* new StageError({ stage: STAGE, message: `nothing to evaluate: retrieval.n = 0 and split.evalN = ${p.evalN}` })
    const evalRows = yield* readTableAll(inputs["eval"], { columns: ["foreign"] }).pipe(asStageError(STAGE))
    const z = yield* readMatrixHead(inputs["zF.holdout"], want).pipe(asStageError(STAGE))
    const h = yield* readMatrixHead(inputs["hE.holdout"], want).pipe(asStageError(STAGE))
    const n = Math.min(want, z.rows, h.rows, evalRows.length)
    if (n === 0) return yield* new StageError({ stage: STAGE, message: "no evaluation pairs (eval or the holdout matrices are empty)" })
    if (n < want) log(`only ${n} pairs available; evaluating ${n} instead of ${want}`)
    const foreign: Array<string> = []
    for (let i = 0; i < n; i++) {
      const f = evalRows[i]["foreign"]
      if (typeof f !== "string") return yield* new StageError({ stage: STAGE, message: `eval row ${i}: column "foreign" is not a string`, file: inputs["eval"] })
      foreign.push(f)
    }
    return { n, foreign, z, h }
  })

type Slice = Effect.Success<ReturnType<typeof prepare>>

interface QueryVectors {
  /** LLINK (full) and the fine-tune's query vectors of rows [from, to), row-major, width d. */
  readonly full: Float32Array
  readonly finetune: Float32Array
}

/** The query vectors of rows `[from, to)` in batches of `batchSize` starting at `from` (the systems loaded once). */
const queryVectors = (
  p: RetrievalFullParams,
  inputs: Readonly<Record<string, string>>,
  slice: Slice,
  from: number,
  to: number,
  bar: { readonly advance: (n?: number) => void }
): Effect.Effect<QueryVectors, StageError> =>
  Effect.acquireUseRelease(
    loadEvalSystems(STAGE, inputs),
    (sys) =>
      Effect.tryPromise({
        try: async () => {
          const { z, h, foreign } = slice
          const d = h.dim
          if (sys.base.config.hidden_size !== d) throw new Error(`h_E has width ${d} but the decoder's hidden size is ${sys.base.config.hidden_size}`)
          return await llinkAndFinetuneVectors(sys, p, z, foreign, from, to, (rows) => bar.advance(rows))
        },
        catch: (cause) => new StageError({ stage: STAGE, message: `retrieval failed: ${describeError(cause)}`, cause })
      }),
    (sys) => Effect.sync(() => sys.dispose())
  )

/** A shard's vectors: `full.f32` and `finetune.f32`, rows × d little-endian float32. */
const SHARD_FILES = { full: "full.f32", finetune: "finetune.f32" } as const

const writeShardVectors = (dir: string, v: QueryVectors): Effect.Effect<void, StageError> =>
  Effect.try({
    try: () => {
      for (const k of ["full", "finetune"] as const) writeF32File(path.join(dir, SHARD_FILES[k]), v[k])
    },
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot write the shard's vectors: ${String(cause)}`, file: dir, cause })
  })

const readShardVectors = (shard: FinishedShard, d: number): Effect.Effect<QueryVectors, StageError> =>
  Effect.try({
    try: () => {
      const count = (shard.range.end - shard.range.start) * d
      return { full: readF32File(path.join(shard.dir, SHARD_FILES.full), count), finetune: readF32File(path.join(shard.dir, SHARD_FILES.finetune), count) }
    },
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot read a shard's vectors: ${describeError(cause)}`, file: shard.dir, cause })
  })

/**
 * Shards for a cluster (runs of `retrievalFull.shardBatches` batches of `eval` rows, each loading the systems once);
 * none in a single process, where the merge (`runRetrievalFull`) computes every vector itself.
 */
export const planRetrievalFullShards = (p: RetrievalFullParams, inputs: Readonly<Record<string, string>>): Effect.Effect<Array<ShardRange>, StageError> =>
  Effect.gen(function*() {
    if (!(yield* onCluster)) return []
    const { n } = yield* prepare(p, inputs, () => {})
    const size = p.shardBatches * p.batchSize
    return consecutiveRanges("eval", n, size)
  })

/** One shard: the query vectors of its rows (the single-process run's batches: ranges start at batch boundaries). */
export const runRetrievalFullShard = (ctx: ShardContext<RetrievalFullParams>): Effect.Effect<ShardOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const { start, end } = ctx.range
    if (start % p.batchSize !== 0) return yield* new StageError({ stage: STAGE, message: `shard [${start}, ${end}) does not start at a batch of ${p.batchSize}` })
    const slice = yield* prepare(p, ctx.inputs, ctx.log)
    const backend = (yield* startBackend(STAGE)).tfBackend
    const bar = ctx.progress(`pairs [${start}, ${end})`, 2 * (end - start))
    const v = yield* queryVectors(p, ctx.inputs, slice, start, Math.min(end, slice.n), bar)
    bar.done()
    yield* writeShardVectors(ctx.outDir, v)
    return { rows: end - start, metrics: { backend } }
  })

/** The stage, or the merge of its shards (their vectors, in row order, instead of computing them). */
export const runRetrievalFull = (ctx: StageContext<RetrievalFullParams>, shards: ReadonlyArray<FinishedShard> = []): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const slice = yield* prepare(p, ctx.inputs, ctx.log)
    const { n, h } = slice
    const d = h.dim
    const started = yield* startBackend(STAGE)
    const backend = started.tfBackend
    const { matmul } = hostMatmul(started)
    const bar = ctx.progress("pairs", 2 * n)
    let vectors: QueryVectors
    if (shards.length === 0) {
      vectors = yield* queryVectors(p, ctx.inputs, slice, 0, n, bar)
    } else {
      const full = new Float32Array(n * d)
      const finetune = new Float32Array(n * d)
      let next = 0
      for (const shard of shards) {
        if (shard.range.start !== next || shard.range.end > n) {
          return yield* new StageError({ stage: STAGE, message: `shards do not cover rows [0, ${n}) in order: expected row ${next}, got [${shard.range.start}, ${shard.range.end})`, file: shard.dir })
        }
        const v = yield* readShardVectors(shard, d)
        full.set(v.full, next * d)
        finetune.set(v.finetune, next * d)
        bar.advance(2 * (shard.range.end - next))
        next = shard.range.end
      }
      if (next !== n) return yield* new StageError({ stage: STAGE, message: `shards end at row ${next}, not ${n}` })
      vectors = { full, finetune }
    }
    bar.done()
    const teacher = h.data.subarray(0, n * d)
    const ranks = {
      full: goldRanks(vectors.full, teacher, d, { matmul, normalize: true }),
      finetune: goldRanks(vectors.finetune, teacher, d, { matmul, normalize: true })
    }
    const result = { full: withIntervals(ranks.full, n, p.bootstrap, "full"), finetune: withIntervals(ranks.finetune, n, p.bootstrap, "finetune") }
    const doc: RetrievalFullDoc = {
      n,
      fullVector: p.vector,
      full: result.full,
      finetune: result.finetune,
      bootstrap: bootstrapSettings(p.bootstrap, "query"),
      ranks: { full: Array.from(ranks.full), finetune: Array.from(ranks.finetune) }
    }
    yield* writeJsonDoc(RetrievalFullDoc, ctx.outputs["retrieval.full"], doc).pipe(asStageError(STAGE))
    const f = (x: number) => x.toFixed(3)
    const ci = (i: { readonly lo: number; readonly hi: number } | null) => (i === null ? "" : ` [${f(i.lo)}, ${f(i.hi)}]`)
    const line = (name: string, m: (typeof result)["full"], paper: { r1: number; mrr: number; meanRank: number }) =>
      `${name}: R@1 ${f(m.r1)}${ci(m.r1CI)} R@5 ${f(m.r5)} R@10 ${f(m.r10)} MRR ${f(m.mrr)}${ci(m.mrrCI)} mean rank ${m.meanRank.toFixed(1)} (paper R@1 ${f(paper.r1)}, MRR ${f(paper.mrr)}, mean rank ${paper.meanRank})`
    ctx.log(`n = ${n} (${backend}, full = ${p.vector}${shards.length === 0 ? "" : `; vectors from ${shards.length} shards`})`)
    ctx.log(line("LLINK (full)", result.full, PAPER_RETRIEVAL.full))
    ctx.log(line("direct fine-tune", result.finetune, PAPER_RETRIEVAL.finetune))
    return { rows: {}, metrics: { n, fullVector: p.vector, full: result.full, finetune: result.finetune, backend } }
  })
