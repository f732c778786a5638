/**
 * The `testSetsFull` stage's work (see stage.ts): per named test set, LLINK (full)'s and the direct fine-tune's query
 * vectors (src/metrics/systemVectors.ts, as `retrievalFull` makes them) against the set's teacher vectors, cosine,
 * foreign → English; R@1/5/10, MRR and mean rank with bootstrap intervals over queries.
 */
import { Effect } from "effect"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { loadEvalSystems } from "../../artifacts/systems.ts"
import { hostMatmul } from "../../backend/host.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { describeError } from "../../errors/describe.ts"
import { readMatrix } from "../../formats/arrow/matrix.ts"
import { readTableAll } from "../../formats/parquet/table.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"
import { goldRanks, withIntervals } from "../../metrics/retrieval.ts"
import { llinkAndFinetuneVectors } from "../../metrics/systemVectors.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { TestSetsFullDoc } from "../../schemas/retrieval.ts"
import type { TestSetsFullParams } from "./params.ts"

export type { TestSetsFullParams }

const STAGE = "testSetsFull"

/** One set's rows: [start, end) of the pairs table and the matrices. */
interface SetRows {
  readonly name: string
  readonly start: number
  readonly end: number
}

/** Consecutive rows of one set name become one set, in table order. */
export const groupSets = (rows: ReadonlyArray<{ readonly set: string }>): Array<SetRows> => {
  const out: Array<SetRows> = []
  let i = 0
  while (i < rows.length) {
    const name = rows[i].set
    const start = i
    while (i < rows.length && rows[i].set === name) i++
    out.push({ name, start, end: i })
  }
  return out
}

export const runTestSetsFull = (ctx: StageContext<TestSetsFullParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const bootstrap = bootstrapSettings(p.bootstrap, "query")
    const rows = (yield* readTableAll(ctx.inputs["testSets.pairs"], { columns: ["set", "foreign"] }).pipe(asStageError(STAGE))).map((r) => ({
      set: String(r["set"]),
      foreign: String(r["foreign"])
    }))
    const sets = groupSets(rows)
    const foreign = rows.map((r) => r.foreign)
    if (sets.length === 0) {
      yield* writeJsonDoc(TestSetsFullDoc, ctx.outputs["retrieval.testSets.full"], { bootstrap, fullVector: p.vector, sets: [] }).pipe(asStageError(STAGE))
      ctx.log("no test sets configured (eval.testSets)")
      return { rows: {}, metrics: { sets: 0 } }
    }
    const z = yield* readMatrix(ctx.inputs["zF.testSets"]).pipe(asStageError(STAGE))
    const h = yield* readMatrix(ctx.inputs["hE.testSets"]).pipe(asStageError(STAGE))
    if (z.rows !== rows.length || h.rows !== rows.length) {
      return yield* new StageError({
        stage: STAGE,
        message: `testSets.pairs has ${rows.length} rows but z_F ${z.rows} and h_E ${h.rows}`,
        file: ctx.inputs["zF.testSets"]
      })
    }
    const started = yield* startBackend(STAGE)
    const { matmul } = hostMatmul(started)
    const d = h.dim
    const progress = ctx.progress("test-set pairs", rows.length)
    const vectors = yield* Effect.acquireUseRelease(
      loadEvalSystems(STAGE, ctx.inputs),
      (sys) =>
        Effect.tryPromise({
          try: async () => {
            if (sys.base.config.hidden_size !== d) throw new Error(`h_E has width ${d} but the decoder's hidden size is ${sys.base.config.hidden_size}`)
            const out: Array<{ full: Float32Array; finetune: Float32Array }> = []
            for (const set of sets) {
              out.push(await llinkAndFinetuneVectors(sys, p, z, foreign, set.start, set.end))
              progress.advance(set.end - set.start)
            }
            return out
          },
          catch: (cause) => new StageError({ stage: STAGE, message: `test-set retrieval failed: ${describeError(cause)}`, cause })
        }),
      (sys) => Effect.sync(() => sys.dispose())
    )
    progress.done()
    const f = (x: number) => x.toFixed(3)
    const docSets = sets.map((set, i) => {
      const n = set.end - set.start
      const teacher = h.data.subarray(set.start * d, set.end * d)
      const ranks = {
        full: goldRanks(vectors[i].full, teacher, d, { matmul, normalize: true }),
        finetune: goldRanks(vectors[i].finetune, teacher, d, { matmul, normalize: true })
      }
      const full = withIntervals(ranks.full, n, p.bootstrap, `testSet:${set.name}:full`)
      const finetune = withIntervals(ranks.finetune, n, p.bootstrap, `testSet:${set.name}:finetune`)
      ctx.log(`test set ${set.name}: n = ${n}; LLINK (full, ${p.vector}) R@1 ${f(full.r1)}, MRR ${f(full.mrr)}; fine-tune R@1 ${f(finetune.r1)}, MRR ${f(finetune.mrr)} (chance R@1 ${full.chanceR1.toFixed(4)})`)
      return { name: set.name, n, full, finetune, ranks: { full: Array.from(ranks.full), finetune: Array.from(ranks.finetune) } }
    })
    yield* writeJsonDoc(TestSetsFullDoc, ctx.outputs["retrieval.testSets.full"], { bootstrap, fullVector: p.vector, sets: docSets }).pipe(asStageError(STAGE))
    return { rows: {}, metrics: { sets: docSets.length } }
  })
