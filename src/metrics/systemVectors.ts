/**
 * Query vectors of the evaluated systems for retrieval (paper Table 1), in the teacher's space (width d = the
 * decoder's hidden size), used by `retrievalFull` (the eval slice) and `testSetsFull` (the named test sets):
 * - LLINK (full), "meanSlot": the mean of the K injected slot vectors, projector(z_F) → ForeignScale → gated adapter →
 *   expander (after Stage B); no decoder pass;
 * - LLINK (full), "lastSlotHidden": the decoder's final hidden state (Stage B LoRA on) at the last slot of the Stage B
 *   translation prompt;
 * - the direct fine-tune: its decoder's final hidden state at `<foreign_emb>` after the foreign text, prompted as the
 *   teacher prompts the English side.
 */
import * as tf from "@tensorflow/tfjs"
import type { EvalSystems } from "../artifacts/systems.ts"
import { readTidy } from "../backend/read.ts"
import { forward, promptEndStates } from "../models/llama.ts"
import { meanOfSlots, slotOverrides, slotsFromZ } from "../models/slots.ts"
import { slotPrompt, stripTokens, taskInstruction } from "../prompts/slots.ts"
import { slotCountFor } from "../prompts/slotPolicy.ts"
import { teacherPromptIds, type TeacherPromptOptions } from "../prompts/teacher.ts"
import type { RetrievalFullVector } from "../schemas/retrieval.ts"

/** Each foreign text's slot count under Stage B's length policy; undefined: every row uses all K. */
export const slotCountsOf = (sys: Pick<EvalSystems, "chooser" | "K" | "stageBDoc">, foreign: ReadonlyArray<string>): Array<number> | undefined =>
  sys.chooser === undefined ? undefined : foreign.map((f) => slotCountFor(f, sys.K, sys.chooser, sys.stageBDoc.addedTokens))

/** Mean over each row's injected slots (the first `counts[b]`, all K without counts): [B, K, d] → [B, d] (host values). */
export const meanSlotVectors = (sys: EvalSystems, z: Float32Array, rows: number, dIn: number, counts?: ReadonlyArray<number>): Promise<Float32Array> =>
  readTidy(() => meanOfSlots(slotsFromZ(sys.projector, sys.slots, tf.tensor2d(z, [rows, dIn])), counts))

/** Final hidden states at the last injected slot of the Stage B translation prompt (with `counts[b]` slots), LoRA on. */
export const lastSlotHiddenVectors = (sys: EvalSystems, z: Float32Array, rows: number, dIn: number, counts?: ReadonlyArray<number>): Promise<Float32Array> => {
  const byK = new Map<number, { readonly ids: ReadonlyArray<number>; readonly positions: ReadonlyArray<number> }>()
  const promptFor = (k: number) => {
    const known = byK.get(k)
    if (known !== undefined) return known
    const ids = [sys.bosId, ...sys.tokenizer.encode(slotPrompt(taskInstruction("translate_to_english"), k), { addSpecialTokens: false })]
    const positions = sys.slotIds.slice(0, k).map((id) => ids.indexOf(id))
    if (positions.some((p) => p < 0)) throw new Error("the Stage B prompt lacks a slot token")
    byK.set(k, { ids, positions })
    return { ids, positions }
  }
  const prompts = Array.from({ length: rows }, (_, b) => promptFor(counts?.[b] ?? sys.K))
  const T = Math.max(...prompts.map((p) => p.ids.length))
  return readTidy(() => {
    const slots = slotsFromZ(sys.projector, sys.slots, tf.tensor2d(z, [rows, dIn]))
    // right padding: a causal decoder's state at the last slot does not see the pad ids after it
    const ids = prompts.map((p) => [...p.ids, ...new Array<number>(T - p.ids.length).fill(sys.padId)])
    const out = forward(
      sys.llink,
      { ids, overrides: slotOverrides(slots, prompts.map((p) => p.positions)) },
      { gather: { batch: Array.from({ length: rows }, (_, b) => b), position: prompts.map((p) => p.positions[p.positions.length - 1]) } }
    )
    return out.hidden
  })
}

/** The fine-tuned decoder's final hidden states at `<foreign_emb>` after each foreign text (teacher-style prompt). */
export const finetuneVectors = (sys: EvalSystems, foreign: ReadonlyArray<string>, teacher: TeacherPromptOptions): Promise<Float32Array> => {
  const reserved = sys.finetuneDoc.addedTokens
  const prompts = foreign.map((f) => teacherPromptIds(sys.finetuneTokenizer, stripTokens(f, reserved), sys.foreignEmbId, teacher))
  return promptEndStates(sys.finetune, prompts, sys.padId)
}

/**
 * LLINK (full)'s and the fine-tune's query vectors of rows [from, to) of `z` / `foreign` ([to − from, d] each), in
 * batches of `o.batchSize` starting at `from`; `advance` is told each batch's rows, once per system.
 */
export const llinkAndFinetuneVectors = async (
  sys: EvalSystems,
  o: { readonly vector: typeof RetrievalFullVector.Type; readonly batchSize: number; readonly teacher: TeacherPromptOptions },
  z: { readonly data: Float32Array; readonly dim: number },
  foreign: ReadonlyArray<string>,
  from: number,
  to: number,
  advance: (rows: number) => void = () => {}
): Promise<{ readonly full: Float32Array; readonly finetune: Float32Array }> => {
  const d = sys.base.config.hidden_size
  const full = new Float32Array((to - from) * d)
  const finetune = new Float32Array((to - from) * d)
  for (let start = from; start < to; start += o.batchSize) {
    const rows = Math.min(o.batchSize, to - start)
    const zb = z.data.subarray(start * z.dim, (start + rows) * z.dim)
    const counts = slotCountsOf(sys, foreign.slice(start, start + rows))
    full.set(await (o.vector === "meanSlot" ? meanSlotVectors(sys, zb, rows, z.dim, counts) : lastSlotHiddenVectors(sys, zb, rows, z.dim, counts)), (start - from) * d)
    advance(rows)
    finetune.set(await finetuneVectors(sys, foreign.slice(start, start + rows), o.teacher), (start - from) * d)
    advance(rows)
  }
  return { full, finetune }
}
