/**
 * The `retrieval` stage's work: bilingual retrieval of the Stage A system on the eval slice (the first n holdout
 * pairs; both matrices are in holdout-table order): each foreign sentence's projected vector g(z_F), L2-normalised,
 * against the L2-normalised teacher vectors h_E of all n English sentences (cosine), scored in chunks; R@1/5/10,
 * MRR, mean rank and chance R@1 (`src/metrics/retrieval.ts`). The artifact is keyed by system so later systems
 * (`full`, `finetune`) can be added beside `stageA`.
 */
import { Effect } from "effect"
import { asStageError } from "../../pipeline/stageError.ts"
import * as Projector from "../../models/projector.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { PAPER_RETRIEVAL } from "../../schemas/paper.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { RetrievalDoc } from "../../schemas/retrieval.ts"
import type { RetrievalParams } from "./params.ts"
import { hostMatmul } from "../../backend/host.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { loadProjectorDir } from "../../artifacts/projector.ts"
import { readMatrixHead } from "../../artifacts/matrixHead.ts"
import { projectRows } from "../../metrics/projectorRetrieval.ts"
import { bitextSuite } from "../../metrics/bitextSuite.ts"
import { readTableAll } from "../../formats/parquet/table.ts"
import { goldRanks, withIntervals } from "../../metrics/retrieval.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"

export type { RetrievalParams }

const STAGE = "retrieval"

export const runRetrieval = (ctx: StageContext<RetrievalParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const want = p.n === 0 ? p.evalN : p.n
    if (want < 1) return yield* new StageError({ stage: STAGE, message: `nothing to evaluate: retrieval.n = 0 and split.evalN = ${p.evalN}` })
    const started = yield* startBackend(STAGE)
    const backend = started.tfBackend
    const { matmul } = hostMatmul(started)
    const { config, host } = yield* loadProjectorDir(ctx.inputs["projector"]).pipe(asStageError(STAGE))
    // the whole holdout (the pool curve uses it); the eval slice is its first n rows
    const z = yield* readMatrixHead(ctx.inputs["zF.holdout"], Number.MAX_SAFE_INTEGER).pipe(asStageError(STAGE))
    const h = yield* readMatrixHead(ctx.inputs["hE.holdout"], Number.MAX_SAFE_INTEGER).pipe(asStageError(STAGE))
    const all = Math.min(z.rows, h.rows)
    const n = Math.min(want, all)
    if (n < want) {
      ctx.log(`only ${n} holdout pairs available; evaluating ${n} instead of ${want}`)
    }
    if (n === 0) return yield* new StageError({ stage: STAGE, message: "the holdout matrices are empty", file: ctx.inputs["zF.holdout"] })
    if (z.dim !== config.dIn || h.dim !== config.dOut) {
      return yield* new StageError({
        stage: STAGE,
        message: `the projector maps ${config.dIn} → ${config.dOut}, but z_F has width ${z.dim} and h_E ${h.dim}`,
        file: ctx.inputs["projector"]
      })
    }
    const english = (yield* readTableAll(ctx.inputs["holdout"], { columns: ["english"] }).pipe(asStageError(STAGE)))
      .slice(0, n)
      .map((r) => String(r["english"]))
    const projected = yield* Effect.acquireUseRelease(
      Effect.try({
        try: () => Projector.fromHost(config, host, { trainable: false }),
        catch: (cause) => new StageError({ stage: STAGE, message: `cannot build the projector: ${String(cause)}`, cause })
      }),
      (proj) =>
        Effect.tryPromise({
          try: () => projectRows(proj, z, all),
          catch: (cause) => new StageError({ stage: STAGE, message: `retrieval failed: ${String(cause)}`, cause })
        }),
      (proj) => Effect.sync(() => Projector.dispose(proj))
    )
    // Table 1: the eval slice's projected rows against its teacher rows, cosine (projected once, for the suite too)
    const d = h.dim
    const ranks = goldRanks(projected.subarray(0, n * d), h.data.subarray(0, n * d), d, { matmul, normalize: true })
    const metrics = withIntervals(ranks, n, p.bootstrap, "stageA")
    const suite = bitextSuite("stageA", projected, h.data.subarray(0, all * d), d, n, english, {
      pools: p.pools,
      bootstrap: p.bootstrap,
      matmul
    })
    const doc: RetrievalDoc = { stageA: metrics, bootstrap: bootstrapSettings(p.bootstrap, "query"), ranks: { stageA: Array.from(ranks) }, suite }
    yield* writeJsonDoc(RetrievalDoc, ctx.outputs["retrieval"], doc).pipe(asStageError(STAGE))
    const paper = PAPER_RETRIEVAL.stageA
    const f = (x: number) => x.toFixed(3)
    const ci = (i: { readonly lo: number; readonly hi: number } | null) => (i === null ? "" : ` [${f(i.lo)}, ${f(i.hi)}]`)
    ctx.log(`Stage A retrieval, n = ${n} (${backend}):   R@1 ${f(metrics.r1)}${ci(metrics.r1CI)}  R@5 ${f(metrics.r5)}  R@10 ${f(metrics.r10)}  MRR ${f(metrics.mrr)}${ci(metrics.mrrCI)}  mean rank ${metrics.meanRank.toFixed(1)}  (chance R@1 ${metrics.chanceR1.toFixed(4)}; 95% bootstrap CIs over queries)`)
    ctx.log(`paper Table 1 Stage A, n = ${paper.n}:  R@1 ${f(paper.r1)}  R@5 ${f(paper.r5)}  R@10 ${f(paper.r10)}  MRR ${f(paper.mrr)}  mean rank ${paper.meanRank.toFixed(1)}`)
    for (const cell of suite.grid) {
      ctx.log(`  ${cell.direction.padEnd(15)} ${cell.scoring.padEnd(6)} R@1 ${f(cell.metrics.r1)}${ci(cell.metrics.r1CI)}  MRR ${f(cell.metrics.mrr)}  xsim error ${(100 * cell.xsimError).toFixed(1)}%`)
    }
    const m = suite.mistakes
    ctx.log(`  pool curve (${m.scoring}, ${m.direction}): ${suite.pool.filter((x) => x.direction === m.direction && x.scoring === m.scoring).map((x) => `${x.pool}: ${f(x.r1)}`).join(", ")}; top-1 mistakes ${m.total}: number ${m.number}, entity ${m.entity}, other ${m.other}, identical ${m.identical}`)
    return { rows: {}, metrics: { stageA: metrics } }
  })
