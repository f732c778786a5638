/**
 * The `testSetsFull` stage's work (see stage.ts): per named test set, LLINK (full)'s and the direct fine-tune's query
 * vectors (src/metrics/systemVectors.ts, as `retrievalFull` makes them) and each peer's that is on
 * (`peerRetrievalVectors`, as `retrievalPeers` makes them) against the set's teacher vectors, cosine,
 * foreign → English; R@1/5/10, MRR and mean rank with bootstrap intervals over queries. The peers' bridges and encoder
 * are loaded after LLINK's systems are released, so the two never sit in memory together.
 */
import { Effect } from "effect"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { readModelsRef } from "../../artifacts/models.ts"
import { loadPeerBridges, peerRetrievalVectors } from "../../artifacts/peers.ts"
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
import { PEER_RETRIEVAL_VECTOR, TestSetsFullDoc } from "../../schemas/retrieval.ts"
import type { PeerName } from "../../schemas/sft.ts"
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
      yield* writeJsonDoc(TestSetsFullDoc, ctx.outputs["retrieval.testSets.full"], { bootstrap, fullVector: p.vector, peerVector: PEER_RETRIEVAL_VECTOR, sets: [] }).pipe(asStageError(STAGE))
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
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    const peerVectors = yield* Effect.acquireUseRelease(
      loadPeerBridges(STAGE, ctx.inputs, models, d),
      (loaded) =>
        Effect.tryPromise({
          try: async () => {
            const out: Array<Partial<Record<PeerName, Float32Array>>> = sets.map(() => ({}))
            const { encoder, encoderTokenizer } = loaded
            if (encoder === null || encoderTokenizer === null) return out
            const bar = ctx.progress("test-set pairs (peers)", rows.length * loaded.peers.length)
            for (const peer of loaded.peers) {
              for (const [i, set] of sets.entries()) {
                out[i][peer.kind] = await peerRetrievalVectors(peer, encoder, encoderTokenizer, foreign.slice(set.start, set.end), p.encoderBatch, (k) => bar.advance(k))
              }
            }
            bar.done()
            return out
          },
          catch: (cause) => new StageError({ stage: STAGE, message: `test-set retrieval (peers) failed: ${describeError(cause)}`, cause })
        }),
      (loaded) => Effect.sync(() => loaded.dispose())
    )
    const f = (x: number) => x.toFixed(3)
    const docSets = sets.map((set, i) => {
      const n = set.end - set.start
      const teacher = h.data.subarray(set.start * d, set.end * d)
      const rank = (q: Float32Array) => goldRanks(q, teacher, d, { matmul, normalize: true })
      const peerRanks = (kind: PeerName) => {
        const q = peerVectors[i][kind]
        return q === undefined ? null : rank(q)
      }
      const ranks = { full: rank(vectors[i].full), finetune: rank(vectors[i].finetune), langbridge: peerRanks("langbridge"), mindmerger: peerRanks("mindmerger") }
      const scored = (r: Int32Array | null, label: string) => (r === null ? null : withIntervals(r, n, p.bootstrap, `testSet:${set.name}:${label}`))
      const full = withIntervals(ranks.full, n, p.bootstrap, `testSet:${set.name}:full`)
      const finetune = withIntervals(ranks.finetune, n, p.bootstrap, `testSet:${set.name}:finetune`)
      const langbridge = scored(ranks.langbridge, "langbridge")
      const mindmerger = scored(ranks.mindmerger, "mindmerger")
      const peer = (name: string, m: typeof langbridge) => (m === null ? `; ${name} off` : `; ${name} R@1 ${f(m.r1)}`)
      ctx.log(
        `test set ${set.name}: n = ${n}; LLINK (full, ${p.vector}) R@1 ${f(full.r1)}, MRR ${f(full.mrr)}; fine-tune R@1 ${f(finetune.r1)}, MRR ${f(finetune.mrr)}` +
          `${peer("LangBridge", langbridge)}${peer("MindMerger", mindmerger)} (chance R@1 ${full.chanceR1.toFixed(4)})`
      )
      const list = (r: Int32Array | null) => (r === null ? null : Array.from(r))
      return {
        name: set.name,
        n,
        full,
        finetune,
        langbridge,
        mindmerger,
        ranks: { full: Array.from(ranks.full), finetune: Array.from(ranks.finetune), langbridge: list(ranks.langbridge), mindmerger: list(ranks.mindmerger) }
      }
    })
    yield* writeJsonDoc(TestSetsFullDoc, ctx.outputs["retrieval.testSets.full"], { bootstrap, fullVector: p.vector, peerVector: PEER_RETRIEVAL_VECTOR, sets: docSets }).pipe(asStageError(STAGE))
    return { rows: {}, metrics: { sets: docSets.length } }
  })
