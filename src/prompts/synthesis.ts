/**
 * Stage B data synthesis: the prompt sent to the 70B instruct endpoint for each (foreign, reference English) pair,
 * the Schema that validates its reply, the row it becomes, the row filters, and a deterministic offline
 * synthesizer that builds the same rows from the reference English with templates (no model).
 *
 * Paper §5.1: the model is conditioned on the reference English so targets are anchored to ground truth; filters:
 * non-empty input and target, `<foreign_emb>` in the prompt, foreign length 12–256 characters.
 *
 * A row's `input` is the Stage B prompt of the authors' code with the synthesized instruction (or, for Q&A, the
 * question): `Instruction: {instruction}\nForeign: <foreign><foreign_emb></foreign>\nAnswer in English only.`
 * The trainer replaces `<foreign_emb>` by the slot tokens. `origin` records which synthesizer made the row.
 */
import { Schema } from "effect"
import type { ChatMessage } from "../services/endpoint.ts"
import { extractNumbers } from "../metrics/numeric.ts"
import { describeError } from "../errors/describe.ts"

/** The paper's four task types. */
export const PAPER_TASK_TYPES = ["translate_to_english", "summarize_in_english", "bullet_pointify", "qa_about_text"] as const
/** Task types the authors' code also knows (it trains on `translate_to_english` only by default). */
export const CODE_EXTRA_TASK_TYPES = [
  "paraphrase_in_english",
  "title_generation",
  "extract_main_points",
  "executive_summary",
  "extract_key_fields"
] as const

export const TaskType = Schema.Literals([...PAPER_TASK_TYPES, ...CODE_EXTRA_TASK_TYPES])
export type TaskType = typeof TaskType.Type

export const FOREIGN_EMB = "<foreign_emb>"

/** The Stage B prompt of the authors' code around an instruction. */
export const stageBInput = (instruction: string): string =>
  `Instruction: ${instruction}\nForeign: <foreign>${FOREIGN_EMB}</foreign>\nAnswer in English only.`

/**
 * The fixed instruction the authors' code uses per task type (also the offline synthesizer's instruction).
 * `bullet_pointify` and `extract_key_fields` get the code's generic fallback, `{Title Cased Type} the foreign text in
 * English.`, verbatim.
 */
export const CODE_INSTRUCTIONS: Readonly<Record<TaskType, string>> = {
  translate_to_english: "Translate the foreign text to English.",
  paraphrase_in_english: "Paraphrase the foreign text in English.",
  summarize_in_english: "Summarize the foreign text in English.",
  executive_summary: "Summarize the foreign text in English.",
  qa_about_text: "Answer questions about the foreign text in English.",
  title_generation: "Generate a title for the foreign text in English.",
  extract_main_points: "Extract the main points from the foreign text in English.",
  bullet_pointify: "Bullet Pointify the foreign text in English.",
  extract_key_fields: "Extract Key Fields the foreign text in English."
}

/** What each task asks of the synthesizer model. */
const TASK_DESCRIPTIONS: Readonly<Record<TaskType, string>> = {
  translate_to_english: "Write an instruction asking for an English translation of the text; the answer is a faithful, complete English translation.",
  summarize_in_english: "Write an instruction asking for a short English summary of the text; the answer is a one-sentence summary.",
  bullet_pointify: "Write an instruction asking to rewrite the text as English bullet points; the answer is 2-5 bullet points, one per line, each starting with \"- \".",
  qa_about_text: "Write one question in English that can be answered from the text alone (prefer facts such as numbers, names, places or dates); the answer is a short, correct English answer.",
  paraphrase_in_english: "Write an instruction asking for an English paraphrase of the text; the answer restates the full meaning in different words.",
  title_generation: "Write an instruction asking for a title for the text; the answer is a short English title (at most 10 words, no final period).",
  extract_main_points: "Write an instruction asking for the main points of the text; the answer lists them as lines starting with \"- \".",
  executive_summary: "Write an instruction asking for an executive summary of the text; the answer is 1-2 concise English sentences for a busy reader.",
  extract_key_fields: "Write an instruction asking to extract the key fields (names, numbers, dates, places) of the text; the answer has one \"Field: value\" per line."
}

/** The JSON object the synthesizer must return (extra keys are ignored). */
export const InstructionReply = Schema.Struct({ instruction: Schema.String, answer: Schema.String })
export const QuestionReply = Schema.Struct({ question: Schema.String, answer: Schema.String })

export type SynthesisReply =
  | { readonly _tag: "ok"; readonly instruction: string; readonly answer: string }
  | { readonly _tag: "invalid"; readonly reason: string }

/** The messages for one (task, foreign, English) triple. */
export const buildSynthesisMessages = (input: {
  readonly taskType: TaskType
  readonly foreign: string
  readonly english: string
  /** Name of the foreign language (default "Khmer"). */
  readonly language?: string
}): Array<ChatMessage> => {
  const language = input.language ?? "Khmer"
  const qa = input.taskType === "qa_about_text"
  const shape = qa ? `{"question": "...", "answer": "..."}` : `{"instruction": "...", "answer": "..."}`
  const system =
    "You create training examples for an assistant that reads a text in a foreign language and answers in " +
    "English. You are given the foreign text and a reference English translation written by a human. Treat the " +
    "reference as the ground truth for what the text says: the answer must be fully supported by it, keep its " +
    "numbers, units and names exactly, and add nothing that it does not say. Reply with a single JSON object and " +
    "nothing else."
  const user =
    `Task type: ${input.taskType}\n` +
    `Task: ${TASK_DESCRIPTIONS[input.taskType]}\n` +
    `The ${qa ? "question" : "instruction"} must refer to "the foreign text" and must not quote, translate or ` +
    `reveal its content.\n\n` +
    `${language} text:\n${input.foreign}\n\n` +
    `Reference English translation:\n${input.english}\n\n` +
    `Return exactly this JSON object: ${shape}`
  return [
    { role: "system", content: system },
    { role: "user", content: user }
  ]
}

const FENCED = /```(?:json|JSON)?[ \t]*\r?\n?([\s\S]*?)```/

const decodeInstruction = Schema.decodeUnknownExit(InstructionReply)
const decodeQuestion = Schema.decodeUnknownExit(QuestionReply)

/**
 * Parses the synthesizer's reply: a bare JSON object, or one inside a ```json fenced block. Anything else is
 * `invalid` with the reason (no JSON, wrong keys, empty fields, an instruction that leaks the reference).
 */
export const parseSynthesisReply = (taskType: TaskType, text: string, english?: string): SynthesisReply => {
  const fenced = FENCED.exec(text)
  const body = (fenced === null ? text : fenced[1]).trim()
  if (!body.startsWith("{") || !body.endsWith("}")) {
    return { _tag: "invalid", reason: fenced === null ? "reply is not a JSON object or a ```json block" : "fenced block is not a JSON object" }
  }
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch (cause) {
    return { _tag: "invalid", reason: `reply is not valid JSON: ${describeError(cause)}` }
  }
  let instruction: string
  let answer: string
  if (taskType === "qa_about_text") {
    const decoded = decodeQuestion(json)
    if (decoded._tag === "Failure") return { _tag: "invalid", reason: "expected string fields \"question\" and \"answer\"" }
    instruction = decoded.value.question.trim()
    answer = decoded.value.answer.trim()
  } else {
    const decoded = decodeInstruction(json)
    if (decoded._tag === "Failure") return { _tag: "invalid", reason: "expected string fields \"instruction\" and \"answer\"" }
    instruction = decoded.value.instruction.trim()
    answer = decoded.value.answer.trim()
  }
  if (instruction === "") return { _tag: "invalid", reason: `empty ${taskType === "qa_about_text" ? "question" : "instruction"}` }
  if (answer === "") return { _tag: "invalid", reason: "empty answer" }
  if (instruction.includes(FOREIGN_EMB) || answer.includes(FOREIGN_EMB)) {
    return { _tag: "invalid", reason: `reply contains the reserved token ${FOREIGN_EMB}` }
  }
  if (english !== undefined && english.trim().length >= 20 && instruction.includes(english.trim())) {
    return { _tag: "invalid", reason: "instruction quotes the reference translation" }
  }
  return { _tag: "ok", instruction, answer }
}

/** A Stage B row (method notes: task_type, input, output, foreign_raw, english_ref) plus its origin. */
export const StageBRow = Schema.Struct({
  task_type: TaskType,
  /** The prompt; contains `<foreign_emb>`. */
  input: Schema.String,
  /** The target. */
  output: Schema.String,
  foreign_raw: Schema.String,
  english_ref: Schema.String,
  /** `llm`: synthesized by the endpoint; `offline`: the template synthesizer. */
  origin: Schema.Literals(["llm", "offline"])
})
export type StageBRow = typeof StageBRow.Type

/** The row of a parsed LLM reply. */
export const rowFromReply = (
  taskType: TaskType,
  foreign: string,
  english: string,
  reply: { readonly instruction: string; readonly answer: string }
): StageBRow => ({
  task_type: taskType,
  input: stageBInput(reply.instruction),
  output: reply.answer,
  foreign_raw: foreign,
  english_ref: english,
  origin: "llm"
})

// ---------------------------------------------------------------------------------------------------------------
// Offline synthesizer

const sentenceEnd = (s: string) => (/[.!?]$/.test(s) ? s : `${s}.`)
const stripEnd = (s: string) => s.replace(/[\s.,;:!?]+$/u, "")
const words = (s: string) => s.split(/\s+/).filter((w) => w !== "")

/** The first sentence of a text. */
export const firstSentence = (text: string): string => {
  const t = text.trim()
  const m = /^(.+?[.!?])(?:\s|$)/su.exec(t)
  return (m === null ? t : m[1]).trim()
}

/** The first clause (up to the first , ; : or dash), or the first sentence when that clause has < 3 words. */
export const firstClause = (text: string): string => {
  const sentence = firstSentence(text)
  const clause = sentence.split(/[,;:]\s|\s[-–—]\s/u)[0]
  return words(clause).length >= 3 ? stripEnd(clause) : stripEnd(sentence)
}

/** Items of a text split on commas, semicolons and " and ". */
export const splitItems = (text: string): Array<string> =>
  stripEnd(text.trim())
    .split(/\s*[,;]\s*|\s+and\s+/u)
    .map((s) => stripEnd(s.trim()))
    .filter((s) => s !== "")

const STOP = new Set(["The", "A", "An", "This", "That", "These", "Those", "It", "He", "She", "They", "We", "I", "In", "On", "At", "For", "And", "But", "Or", "If", "When", "As", "By", "Of", "To"])

/** Runs of capitalised words that do not start a sentence (a crude entity detector). */
export const capitalisedRuns = (text: string): Array<string> => {
  const tokens = text.split(/\s+/).filter((t) => t !== "")
  const runs: Array<string> = []
  let run: Array<string> = []
  const flush = () => {
    if (run.length > 0) runs.push(run.join(" "))
    run = []
  }
  tokens.forEach((raw, i) => {
    const token = raw.replace(/^[("'“‘]+|[)"'”’.,;:!?]+$/gu, "")
    const sentenceStart = i === 0 || /[.!?]["'”’)]*$/u.test(tokens[i - 1])
    // A capitalised word right after a number is its unit ("5 MW"), not a name.
    const afterNumber = i > 0 && /\d$/u.test(tokens[i - 1])
    const cap = !sentenceStart && !afterNumber && /^\p{Lu}[\p{L}\p{M}'-]*$/u.test(token) && !STOP.has(token)
    if (cap) run.push(token)
    if (!cap || /[.,;:!?)]["'”’]*$/u.test(raw)) flush()
  })
  flush()
  return runs
}

const titleCase = (s: string) =>
  words(s).map((w, i) => (i > 0 && /^(a|an|the|of|in|on|and|or|for|to|at|by)$/i.test(w) ? w.toLowerCase() : w.charAt(0).toUpperCase() + w.slice(1))).join(" ")

/** The instruction and answer the offline synthesizer derives from the reference English. */
export const offlineInstructionAndAnswer = (taskType: TaskType, english: string): { instruction: string; answer: string } => {
  const text = english.trim()
  switch (taskType) {
    case "translate_to_english":
    case "paraphrase_in_english":
      return { instruction: CODE_INSTRUCTIONS[taskType], answer: text }
    case "summarize_in_english":
      return { instruction: CODE_INSTRUCTIONS[taskType], answer: sentenceEnd(firstClause(text)) }
    case "executive_summary":
      return { instruction: CODE_INSTRUCTIONS[taskType], answer: sentenceEnd(stripEnd(firstSentence(text))) }
    case "title_generation":
      return {
        instruction: CODE_INSTRUCTIONS[taskType],
        answer: titleCase(words(firstClause(text)).map(stripEnd).filter((w) => w !== "").slice(0, 8).join(" "))
      }
    case "bullet_pointify":
    case "extract_main_points":
      return { instruction: CODE_INSTRUCTIONS[taskType], answer: splitItems(text).map((s) => `- ${s}`).join("\n") }
    case "extract_key_fields": {
      const numbers = extractNumbers(text).map((m) => m.text)
      const names = capitalisedRuns(text)
      const lines = [
        ...(numbers.length > 0 ? [`Numbers: ${numbers.join(", ")}`] : []),
        ...(names.length > 0 ? [`Names: ${names.join(", ")}`] : [])
      ]
      return { instruction: CODE_INSTRUCTIONS[taskType], answer: lines.length > 0 ? lines.join("\n") : `Topic: ${firstClause(text)}` }
    }
    case "qa_about_text": {
      const number = extractNumbers(text)[0]
      const entity = capitalisedRuns(text)[0]
      const question = number !== undefined
        ? `What does the text say about ${number.text}?`
        : entity !== undefined
        ? `What does the text say about ${entity}?`
        : "What is the text about?"
      return { instruction: question, answer: text }
    }
  }
}

/** A row built by the offline template synthesizer (deterministic; `origin: "offline"`). */
export const offlineRow = (taskType: TaskType, foreign: string, english: string): StageBRow => {
  const { instruction, answer } = offlineInstructionAndAnswer(taskType, english)
  return {
    task_type: taskType,
    input: stageBInput(instruction),
    output: answer,
    foreign_raw: foreign,
    english_ref: english,
    origin: "offline"
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Filters

export interface RowFilterOptions {
  /** Inclusive bounds on the foreign text's length in code points (paper: 12–256). */
  readonly minForeignChars?: number
  readonly maxForeignChars?: number
}

export type RowCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string }

/** The paper's filters: non-empty input and output, `<foreign_emb>` in the input, foreign length within bounds. */
export const checkRow = (row: StageBRow, options: RowFilterOptions = {}): RowCheck => {
  const min = options.minForeignChars ?? 12
  const max = options.maxForeignChars ?? 256
  if (row.input.trim() === "") return { ok: false, reason: "empty input" }
  if (row.output.trim() === "") return { ok: false, reason: "empty output" }
  if (!row.input.includes(FOREIGN_EMB)) return { ok: false, reason: `input lacks ${FOREIGN_EMB}` }
  const length = Array.from(row.foreign_raw.trim()).length
  if (length < min) return { ok: false, reason: `foreign text too short (${length} < ${min} characters)` }
  if (length > max) return { ok: false, reason: `foreign text too long (${length} > ${max} characters)` }
  return { ok: true }
}
