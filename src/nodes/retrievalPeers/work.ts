/**
 * The `retrievalPeers` stage's work: bilingual retrieval (paper Table 1) of each peer baseline that is on, on the
 * slice of the other rows (the first n pairs of `eval` = of the holdout table, n = `retrieval.n` or else
 * `split.evalN`), cosine between L2-normalised query vectors and the L2-normalised teacher vectors h_E of all n
 * English sentences, with the same R@1/5/10, MRR, mean rank and bootstrap intervals (`retrieval.bootstrap`).
 *
 * Query vector (`meanMappedStates`, the same rule for both peers): the run's frozen encoder reads the foreign
 * sentence alone (cleaned and cut as the peer's training recorded, `<s>` and `</s>` included), every token state goes
 * through the peer's trained bridge (LangBridge: the linear map; MindMerger: the MLP), and the mapped rows are
 * averaged. That is the mean of the soft rows the decoder receives for the sentence, in the decoder's input-embedding
 * space; the learned end vector is left out (it is the same for every sentence). Neither peer is trained toward h_E,
 * so these rows say how far their soft inputs line up with the teacher's space without being asked to. A peer that
 * is off (`baselines`) gets null.
 */
import { Effect } from "effect"
import { goldRanks, withIntervals } from "../../metrics/retrieval.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { PEER_RETRIEVAL_VECTOR, type RetrievalMetricsDoc, RetrievalPeersDoc } from "../../schemas/retrieval.ts"
import type { RetrievalPeersParams } from "./params.ts"
import { hostMatmul } from "../../backend/host.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readMatrixHead } from "../../artifacts/matrixHead.ts"
import { readStringColumn } from "../../artifacts/columns.ts"
import { readModelsRef } from "../../artifacts/models.ts"
import { loadPeerBridges, peerRetrievalVectors } from "../../artifacts/peers.ts"
import type { PeerName } from "../../schemas/sft.ts"
import { describeError } from "../../errors/describe.ts"

export type { RetrievalPeersParams }

const STAGE = "retrievalPeers"

export const runRetrievalPeers = (ctx: StageContext<RetrievalPeersParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const want = p.n === 0 ? p.evalN : p.n
    if (want < 1) return yield* new StageError({ stage: STAGE, message: `nothing to evaluate: retrieval.n = 0 and split.evalN = ${p.evalN}` })
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    const evalForeign = yield* readStringColumn(STAGE, ctx.inputs["eval"], "foreign")
    const h = yield* readMatrixHead(ctx.inputs["hE.holdout"], want).pipe(asStageError(STAGE))
    const n = Math.min(want, h.rows, evalForeign.length)
    if (n === 0) return yield* new StageError({ stage: STAGE, message: "no evaluation pairs (eval or hE.holdout is empty)" })
    if (n < want) ctx.log(`only ${n} pairs available; evaluating ${n} instead of ${want}`)
    const foreign = evalForeign.slice(0, n)
    const started = yield* startBackend(STAGE)
    const { matmul } = hostMatmul(started)
    const d = h.dim
    const scored = yield* Effect.acquireUseRelease(
      loadPeerBridges(STAGE, ctx.inputs, models, d),
      (loaded) =>
        Effect.tryPromise({
          try: async () => {
            const out: Partial<Record<PeerName, RetrievalMetricsDoc>> = {}
            const { encoder, encoderTokenizer } = loaded
            if (encoder === null || encoderTokenizer === null) return out
            const bar = ctx.progress("sentences", n * loaded.peers.length)
            const teacher = h.data.subarray(0, n * d)
            for (const peer of loaded.peers) {
              const q = await peerRetrievalVectors(peer, encoder, encoderTokenizer, foreign, p.encoderBatch, (k) => bar.advance(k))
              out[peer.kind] = withIntervals(goldRanks(q, teacher, d, { matmul, normalize: true }), n, p.bootstrap, peer.kind)
            }
            bar.done()
            return out
          },
          catch: (cause) => new StageError({ stage: STAGE, message: `retrieval failed: ${describeError(cause)}`, cause })
        }),
      (loaded) => Effect.sync(() => loaded.dispose())
    )
    const doc: RetrievalPeersDoc = {
      n,
      vector: PEER_RETRIEVAL_VECTOR,
      langbridge: scored.langbridge ?? null,
      mindmerger: scored.mindmerger ?? null,
      bootstrap: bootstrapSettings(p.bootstrap, "query")
    }
    yield* writeJsonDoc(RetrievalPeersDoc, ctx.outputs["retrieval.peers"], doc).pipe(asStageError(STAGE))
    const f = (x: number) => x.toFixed(3)
    const ci = (i: { readonly lo: number; readonly hi: number } | null) => (i === null ? "" : ` [${f(i.lo)}, ${f(i.hi)}]`)
    ctx.log(`n = ${n} (${started.tfBackend}; vector: mean mapped encoder state of the foreign sentence)`)
    for (const [name, m] of [["LangBridge", doc.langbridge], ["MindMerger", doc.mindmerger]] as const) {
      ctx.log(m === null ? `${name}: off (baselines)` : `${name}: R@1 ${f(m.r1)}${ci(m.r1CI)} R@5 ${f(m.r5)} R@10 ${f(m.r10)} MRR ${f(m.mrr)}${ci(m.mrrCI)} mean rank ${m.meanRank.toFixed(1)} (chance R@1 ${m.chanceR1.toFixed(4)})`)
    }
    return { rows: {}, metrics: { n, vector: doc.vector, langbridge: doc.langbridge, mindmerger: doc.mindmerger } }
  })
