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
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { goldRanks, withIntervals } from "../../metrics/retrieval.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { forward } from "../../models/llama.ts"
import { slotsFromZ } from "../../models/slots.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { readTableAll } from "../../pipeline/table.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { RetrievalFullDoc } from "../../schemas/retrieval.ts"
import type { RetrievalFullParams } from "./params.ts"
import { PAPER_RETRIEVAL } from "../../schemas/paper.ts"
import { hostMatmul } from "../../backend/host.ts"
import { readTidy } from "../../backend/read.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readMatrixHead } from "../../artifacts/matrixHead.ts"
import { leftPad, teacherPromptIds } from "../../prompts/teacher.ts"
import { slotPrompt, stripTokens, taskInstruction } from "../../prompts/slots.ts"
import { type EvalSystems, loadEvalSystems } from "../../artifacts/systems.ts"

export type { RetrievalFullParams }

const STAGE = "retrievalFull"

/** Mean over the K slots of each row: [B, K, d] → [B, d] (host values). */
export const meanSlotVectors = (sys: EvalSystems, z: Float32Array, rows: number, dIn: number): Promise<Float32Array> =>
  readTidy(() => tf.mean(slotsFromZ(sys.projector, sys.slots, tf.tensor2d(z, [rows, dIn])), 1))

/** Final hidden states at the last slot of the Stage B translation prompt, LoRA on. */
export const lastSlotHiddenVectors = (sys: EvalSystems, z: Float32Array, rows: number, dIn: number): Promise<Float32Array> => {
  const ids = [sys.bosId, ...sys.tokenizer.encode(slotPrompt(taskInstruction("translate_to_english"), sys.K), { addSpecialTokens: false })]
  const positions = sys.slotIds.map((id) => ids.indexOf(id))
  if (positions.some((p) => p < 0)) throw new Error("the Stage B prompt lacks a slot token")
  const last = positions[positions.length - 1]
  return readTidy(() => {
    const slots = slotsFromZ(sys.projector, sys.slots, tf.tensor2d(z, [rows, dIn]))
    const batch: Array<number> = []
    const position: Array<number> = []
    for (let b = 0; b < rows; b++) for (const p of positions) {
      batch.push(b)
      position.push(p)
    }
    const out = forward(
      sys.llink,
      { ids: Array.from({ length: rows }, () => ids), overrides: { batch, position, vectors: tf.reshape(slots, [rows * sys.K, sys.slots.config.dim]) as tf.Tensor2D } },
      { gather: { batch: Array.from({ length: rows }, (_, b) => b), position: Array.from({ length: rows }, () => last) } }
    )
    return out.hidden
  })
}

/** The fine-tuned decoder's final hidden states at `<foreign_emb>` after each foreign text (teacher-style prompt). */
export const finetuneVectors = (sys: EvalSystems, foreign: ReadonlyArray<string>, teacher: RetrievalFullParams["teacher"]): Promise<Float32Array> => {
  const reserved = sys.finetuneDoc.addedTokens
  const prompts = foreign.map((f) => teacherPromptIds(sys.finetuneTokenizer, stripTokens(f, reserved), sys.foreignEmbId, teacher))
  const { ids, attentionMask } = leftPad(prompts, sys.padId)
  const T = ids[0].length
  return readTidy(() => forward(sys.finetune, { ids, attentionMask }, { gather: { batch: ids.map((_, b) => b), position: ids.map(() => T - 1) } }).hidden)
}

export const runRetrievalFull = (ctx: StageContext<RetrievalFullParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const want = p.n === 0 ? p.evalN : p.n
    if (want < 1) return yield* new StageError({ stage: STAGE, message: `nothing to evaluate: retrieval.n = 0 and split.evalN = ${p.evalN}` })
    const evalRows = yield* readTableAll(ctx.inputs["eval"], { columns: ["foreign"] }).pipe(asStageError(STAGE))
    const z = yield* readMatrixHead(ctx.inputs["zF.holdout"], want).pipe(asStageError(STAGE))
    const h = yield* readMatrixHead(ctx.inputs["hE.holdout"], want).pipe(asStageError(STAGE))
    const n = Math.min(want, z.rows, h.rows, evalRows.length)
    if (n === 0) return yield* new StageError({ stage: STAGE, message: "no evaluation pairs (eval or the holdout matrices are empty)" })
    if (n < want) ctx.log(`only ${n} pairs available; evaluating ${n} instead of ${want}`)
    const foreign: Array<string> = []
    for (let i = 0; i < n; i++) {
      const f = evalRows[i]["foreign"]
      if (typeof f !== "string") return yield* new StageError({ stage: STAGE, message: `eval row ${i}: column "foreign" is not a string`, file: ctx.inputs["eval"] })
      foreign.push(f)
    }
    const started = yield* startBackend(STAGE)
    const backend = started.tfBackend
    const { matmul } = hostMatmul(started)
    const bar = ctx.progress("pairs", 2 * n)
    const result = yield* Effect.acquireUseRelease(
      loadEvalSystems(STAGE, ctx.inputs),
      (sys) =>
        Effect.tryPromise({
          try: async () => {
            const d = h.dim
            if (sys.base.config.hidden_size !== d) throw new Error(`h_E has width ${d} but the decoder's hidden size is ${sys.base.config.hidden_size}`)
            const full = new Float32Array(n * d)
            const ft = new Float32Array(n * d)
            for (let start = 0; start < n; start += p.batchSize) {
              const rows = Math.min(p.batchSize, n - start)
              const zb = z.data.subarray(start * z.dim, (start + rows) * z.dim)
              full.set(await (p.vector === "meanSlot" ? meanSlotVectors(sys, zb, rows, z.dim) : lastSlotHiddenVectors(sys, zb, rows, z.dim)), start * d)
              bar.advance(rows)
              ft.set(await finetuneVectors(sys, foreign.slice(start, start + rows), p.teacher), start * d)
              bar.advance(rows)
            }
            const teacher = h.data.subarray(0, n * d)
            const score = (q: Float32Array, label: string) =>
              withIntervals(goldRanks(q, teacher, d, { matmul, normalize: true }), n, p.bootstrap, label)
            return { full: score(full, "full"), finetune: score(ft, "finetune") }
          },
          catch: (cause) => new StageError({ stage: STAGE, message: `retrieval failed: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
        }),
      (sys) => Effect.sync(() => sys.dispose())
    )
    bar.done()
    const doc: RetrievalFullDoc = { n, fullVector: p.vector, full: result.full, finetune: result.finetune, bootstrap: bootstrapSettings(p.bootstrap, "query") }
    yield* writeJsonDoc(RetrievalFullDoc, ctx.outputs["retrieval.full"], doc).pipe(asStageError(STAGE))
    const f = (x: number) => x.toFixed(3)
    const ci = (i: { readonly lo: number; readonly hi: number } | null) => (i === null ? "" : ` [${f(i.lo)}, ${f(i.hi)}]`)
    const line = (name: string, m: (typeof result)["full"], paper: { r1: number; mrr: number; meanRank: number }) =>
      `${name}: R@1 ${f(m.r1)}${ci(m.r1CI)} R@5 ${f(m.r5)} R@10 ${f(m.r10)} MRR ${f(m.mrr)}${ci(m.mrrCI)} mean rank ${m.meanRank.toFixed(1)} (paper R@1 ${f(paper.r1)}, MRR ${f(paper.mrr)}, mean rank ${paper.meanRank})`
    ctx.log(`n = ${n} (${backend}, full = ${p.vector})`)
    ctx.log(line("LLINK (full)", result.full, PAPER_RETRIEVAL.full))
    ctx.log(line("direct fine-tune", result.finetune, PAPER_RETRIEVAL.finetune))
    return { rows: {}, metrics: { n, fullVector: p.vector, full: result.full, finetune: result.finetune, backend } }
  })
