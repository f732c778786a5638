/**
 * Prompts, token sequences and loss labels of Stage B and of the direct fine-tune baseline (the authors' format,
 * `sft/training_loop.py` + `sft/tokenization.py`, with the label bug fixed).
 *
 * Stage B prompt:   `Instruction: {instruction}\nForeign: <foreign><f0> <f1> … <f{K−1}></foreign>\nAnswer in English only.`
 *                   (the code's `<foreign><foreign_emb></foreign>` with `<foreign_emb>` replaced by the K slot tokens,
 *                   joined by single spaces exactly as the code joins them); with the number pathway on and numerals
 *                   in the foreign text, a line `Numbers: 384; 27` (ASCII, src/text/numerals.ts) before the last line
 * Fine-tune prompt: `Instruction: {instruction}\nForeign: <foreign>{foreign_raw}</foreign>\nAnswer in English only.`
 *
 * `{instruction}` ("input" source, the default) comes from the synthesized `input`, so that the foreign content
 * appears exactly once, on the `Foreign:` line:
 * - an `input` that already is this prompt around `<foreign_emb>` (what the `synthesize` stage writes:
 *   `Instruction: X\nForeign: <foreign><foreign_emb></foreign>\nAnswer in English only.`) gives X, so the Stage B
 *   prompt is exactly the code's `input.replace("<foreign_emb>", "<f0> <f1> …")`;
 * - any other `input` is the instruction itself with its marker handled: a marker at the end (after optional
 *   whitespace) is dropped ("Translate this into English: <foreign_emb>" → "Translate this into English:"), a marker
 *   anywhere else becomes the words "the foreign text" ("What does <foreign_emb> say about rice?" → "What does the
 *   foreign text say about rice?"), and whitespace runs collapse to one space.
 * An instruction left empty falls back to the task type's fixed instruction. The "taskType" source always uses that
 * fixed instruction (what the authors' code does: it ignores `input`). Other reserved-token strings (`<foreign>`, `<f3>`, …) are removed from every text placed in a
 * prompt or target, so no text can forge a special token.
 *
 * Sequence: BOS + tokens(prompt) + tokens(" " + target.trim()) [+ EOS with `appendEos`], cut to `maxLen` tokens by
 * dropping target tokens from the end. Prompt and target are tokenized separately (the code tokenizes the joined
 * string; Llama-3's pre-tokenizer splits before " word" anyway, so the ids agree, and separate tokenization makes the
 * target boundary exact). Labels are −100 everywhere except the target tokens, which carry their own id: the loss
 * covers exactly the target (the code masked up to "Assistant:", which its prompt never contains, so it masked the
 * first half of the sequence instead — not reproduced). An example whose prompt leaves no room for one target token
 * is skipped.
 */
import type { TextTokenizer } from "../models/tokenizer.ts"

export const FOREIGN_EMB = "<foreign_emb>"
export const FOREIGN_OPEN = "<foreign>"
export const FOREIGN_CLOSE = "</foreign>"
export const IGNORE_INDEX = -100
export const ANSWER_SUFFIX = "Answer in English only."
/** The line the number pathway (`stageB.numbers: "copy"`) adds after the slots: `Numbers: 384; 1,000`. */
export const NUMBERS_LABEL = "Numbers:"
/** What an inner `<foreign_emb>` marker becomes in the instruction. */
export const MARKER_PHRASE = "the foreign text"

export type InstructionSource = "input" | "taskType"

/** The K slot token strings `<f0>` … `<f{K−1}>`. */
export const slotTokens = (K: number): ReadonlyArray<string> => Array.from({ length: K }, (_, i) => `<f${i}>`)

/** The code's fixed instruction of a task type. */
export const taskInstruction = (taskType: string): string => {
  switch (taskType) {
    case "translate_to_english":
      return "Translate the foreign text to English."
    case "paraphrase_in_english":
      return "Paraphrase the foreign text in English."
    case "summarize_in_english":
    case "executive_summary":
      return "Summarize the foreign text in English."
    case "qa_about_text":
      return "Answer questions about the foreign text in English."
    case "title_generation":
      return "Generate a title for the foreign text in English."
    case "extract_main_points":
      return "Extract the main points from the foreign text in English."
    default: {
      const words = taskType.replace(/_/g, " ").trim()
      const title = words.replace(/\b\w/g, (c) => c.toUpperCase())
      return `${title.length > 0 ? title : "Read"} the foreign text in English.`
    }
  }
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** `text` with every occurrence of each of `tokens` removed. */
export const stripTokens = (text: string, tokens: ReadonlyArray<string>): string => {
  if (tokens.length === 0) return text
  const re = new RegExp([...tokens].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"), "g")
  return text.replace(re, "")
}

/** An `input` that is the whole code prompt around the marker; group 1 is the instruction. */
const TEMPLATE = new RegExp(
  `^Instruction:[ \\t]*([\\s\\S]*?)\\s*\\nForeign:[ \\t]*${escapeRegExp(FOREIGN_OPEN + FOREIGN_EMB + FOREIGN_CLOSE)}[ \\t]*\\n${escapeRegExp(ANSWER_SUFFIX)}$`
)

/** The instruction text of one sft row (see the module comment). `reserved`: token strings to strip. */
export const instructionText = (
  input: string,
  taskType: string,
  source: InstructionSource,
  reserved: ReadonlyArray<string> = []
): string => {
  if (source === "taskType") return taskInstruction(taskType)
  const others = reserved.filter((t) => t !== FOREIGN_EMB)
  const templated = TEMPLATE.exec(input.trim())
  let s = stripTokens(templated === null ? input : templated[1], others).trim()
  if (s.endsWith(FOREIGN_EMB)) s = s.slice(0, s.length - FOREIGN_EMB.length).trimEnd()
  s = s.split(FOREIGN_EMB).join(MARKER_PHRASE)
  s = s.replace(/\s+/g, " ").trim()
  return s.length > 0 ? s : taskInstruction(taskType)
}

/** The number pathway's line (with its newline), or nothing when there are no numerals. */
const numbersLine = (numbers: ReadonlyArray<string>): string =>
  numbers.length === 0 ? "" : `${NUMBERS_LABEL} ${numbers.join("; ")}\n`

/** The Stage B prompt with K slot tokens. */
export const slotPrompt = (instruction: string, K: number, numbers: ReadonlyArray<string> = []): string =>
  `Instruction: ${instruction}\nForeign: ${FOREIGN_OPEN}${slotTokens(K).join(" ")}${FOREIGN_CLOSE}\n` +
  `${numbersLine(numbers)}${ANSWER_SUFFIX}`

/**
 * The miniature decoder's pretraining prompt: Stage B's layout with English text where the slots go, and no reserved
 * tokens (the decoder gains them only later), so the pretrained model already does every task on the `Foreign:` line.
 * `numbers`: the number pathway's line, as Stage B writes it (only the number drill passes any).
 */
export const pretrainPrompt = (instruction: string, english: string, numbers: ReadonlyArray<string> = []): string =>
  `Instruction: ${instruction}\nForeign: ${english}\n${numbersLine(numbers)}${ANSWER_SUFFIX}`

/** The fine-tune prompt with the foreign text itself. */
export const finetunePrompt = (instruction: string, foreign: string): string =>
  `Instruction: ${instruction}\nForeign: ${FOREIGN_OPEN}${foreign}${FOREIGN_CLOSE}\n${ANSWER_SUFFIX}`

export interface EncodedExample {
  readonly ids: ReadonlyArray<number>
  /** Same length as ids: the target token's id where it carries loss, −100 elsewhere. */
  readonly labels: ReadonlyArray<number>
  /** Index of the first target token in ids. */
  readonly targetStart: number
  /** Positions of `<f0>` … `<f{K−1}>` in ids (empty without slots). */
  readonly slotPositions: ReadonlyArray<number>
}

export interface EncodeOptions {
  readonly maxLen: number
  readonly appendEos: boolean
  /** Ids of `<f0>` … `<f{K−1}>`, each of which must occur exactly once in the prompt; absent for fine-tuning. */
  readonly slotIds?: ReadonlyArray<number>
}

export type EncodeResult = { readonly ok: true; readonly example: EncodedExample } | { readonly ok: false; readonly reason: string }

/** The token sequence and labels of `prompt` + " " + `target` (see the module comment). */
export const encodeExample = (
  tokenizer: TextTokenizer,
  prompt: string,
  target: string,
  options: EncodeOptions
): EncodeResult => {
  const bos = tokenizer.bosId
  if (bos === undefined) throw new Error("the decoder tokenizer has no BOS token")
  return encodeOnPrompt(tokenizer, [bos, ...tokenizer.encode(prompt, { addSpecialTokens: false })], target, options)
}

/** `encodeExample` on prompt ids already built (BOS first): the target's tokens and labels after them. */
export const encodeOnPrompt = (
  tokenizer: TextTokenizer,
  promptIds: ReadonlyArray<number>,
  target: string,
  options: EncodeOptions
): EncodeResult => {
  const trimmed = target.trim()
  if (trimmed.length === 0) return { ok: false, reason: "empty target" }
  let targetIds = [...tokenizer.encode(` ${trimmed}`, { addSpecialTokens: false })]
  if (options.appendEos) {
    if (tokenizer.eosId === undefined) throw new Error("appendEos: the decoder tokenizer has no EOS token")
    targetIds.push(tokenizer.eosId)
  }
  const room = options.maxLen - promptIds.length
  if (room < 1) return { ok: false, reason: `prompt has ${promptIds.length} tokens, no room for the target within ${options.maxLen}` }
  if (targetIds.length > room) targetIds = targetIds.slice(0, room)
  const slotPositions: Array<number> = []
  for (const id of options.slotIds ?? []) {
    const first = promptIds.indexOf(id)
    if (first < 0 || promptIds.indexOf(id, first + 1) >= 0) {
      throw new Error(`slot token id ${id} occurs ${first < 0 ? "nowhere" : "more than once"} in the prompt`)
    }
    slotPositions.push(first)
  }
  const ids = [...promptIds, ...targetIds]
  const labels = [...promptIds.map(() => IGNORE_INDEX), ...targetIds]
  return { ok: true, example: { ids, labels, targetStart: promptIds.length, slotPositions } }
}

export interface PaddedBatch {
  /** [B][T], right-padded with `padId`. */
  readonly ids: ReadonlyArray<ReadonlyArray<number>>
  readonly attentionMask: ReadonlyArray<ReadonlyArray<number>>
  /** [B][T], −100 on padding. */
  readonly labels: ReadonlyArray<ReadonlyArray<number>>
  /** [B][K] (rows empty without slots). */
  readonly slotPositions: ReadonlyArray<ReadonlyArray<number>>
}

/** Right-pads examples to the longest one. */
export const padBatch = (examples: ReadonlyArray<EncodedExample>, padId: number): PaddedBatch => {
  const T = Math.max(...examples.map((e) => e.ids.length))
  return {
    ids: examples.map((e) => [...e.ids, ...new Array<number>(T - e.ids.length).fill(padId)]),
    attentionMask: examples.map((e) => [...e.ids.map(() => 1), ...new Array<number>(T - e.ids.length).fill(0)]),
    labels: examples.map((e) => [...e.labels, ...new Array<number>(T - e.ids.length).fill(IGNORE_INDEX)]),
    slotPositions: examples.map((e) => e.slotPositions)
  }
}
