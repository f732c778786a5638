/**
 * What the peer baselines put into the encoder and into the decoder's own text prompt, for one sft row (training
 * and evaluation build them here, so they agree):
 *
 * - LangBridge: the whole request goes through the encoder: `{instruction}\n{text}`, with the pair's English side as
 *   `{text}` in training (English-only data, as the paper) and the foreign text at evaluation; the decoder gets no
 *   text prompt (`[BOS, soft…, end]`, then the answer).
 * - MindMerger, task phase: the encoder reads the foreign text; the decoder also reads its own embeddings of the
 *   task prompt with the original text (the fine-tune's prompt, `Instruction: …\nForeign: <foreign>{foreign}</foreign>
 *   \nAnswer in English only.`), as MindMerger's augmentation stage feeds the original question.
 * - MindMerger, mapping phase: the encoder reads the foreign sentence, the target is its English side, no prompt.
 *
 * `{instruction}` is the Stage B instruction of the row (src/prompts/slots.ts `instructionText`); reserved-token
 * strings are stripped from every text, and texts are cut to the encoder's `maxChars` code points. For retrieval
 * (`peerRetrievalText`) the encoder reads the foreign sentence alone.
 */
import type { SftRow } from "../schemas/sft.ts"
import { truncateCodePoints } from "../text/unicode.ts"
import type { InstructionSource } from "./slots.ts"
import { finetunePrompt, instructionText, stripTokens } from "./slots.ts"

export type PeerKind = "langbridge" | "mindmerger"

export interface PeerTextSettings {
  readonly instruction: InstructionSource
  readonly reserved: ReadonlyArray<string>
  readonly maxChars: number
}

/** A text as the peers put it anywhere: trimmed, cut to `maxChars` code points, reserved-token strings stripped. */
export const peerCleanText = (t: string, s: Pick<PeerTextSettings, "reserved" | "maxChars">): string =>
  stripTokens(truncateCodePoints(t.trim(), s.maxChars), s.reserved)

/**
 * What the encoder reads for a peer's retrieval vector (`retrievalPeers`): the foreign sentence alone, as LLINK's
 * z_F is the encoder's reading of the sentence alone, cleaned like every peer text. The same for both peers
 * (LangBridge's evaluation input would put a task instruction before it).
 */
export const peerRetrievalText = (foreign: string, s: Pick<PeerTextSettings, "reserved" | "maxChars">): string => peerCleanText(foreign, s)

/** The encoder text and the decoder's text prompt of a task example ("train": LangBridge reads the English side). */
export const peerTexts = (
  kind: PeerKind,
  r: SftRow,
  s: PeerTextSettings,
  side: "train" | "eval"
): { readonly encoderText: string; readonly llmPrompt: string } => {
  const instruction = instructionText(r.input, r.task_type, s.instruction, s.reserved)
  const clean = (t: string) => peerCleanText(t, s)
  if (kind === "langbridge") {
    const text = clean(side === "train" ? r.english_ref : r.foreign_raw)
    return { encoderText: `${instruction}\n${text}`, llmPrompt: "" }
  }
  const foreign = clean(r.foreign_raw)
  return { encoderText: foreign, llmPrompt: finetunePrompt(instruction, foreign) }
}

/** The training texts of the task rows of `taskTypes` (empty = all): encoder text, text prompt, the row's target. */
export const peerTaskTexts = (
  kind: PeerKind,
  rows: ReadonlyArray<SftRow>,
  taskTypes: ReadonlyArray<string>,
  s: PeerTextSettings
): Array<{ readonly row: number; readonly encoderText: string; readonly llmPrompt: string; readonly target: string }> =>
  rows
    .filter((r) => taskTypes.length === 0 || taskTypes.includes(r.task_type))
    .map((r) => ({ row: r.row, ...peerTexts(kind, r, s, "train"), target: r.output }))
