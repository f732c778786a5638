/**
 * The Stage A teacher prompt (paper §4.1) as token ids, shared by the `teacher` stage (h_E of the English side) and
 * `retrievalFull` (the fine-tune baseline's vector of the foreign side, built the same way).
 *
 * - "paper": BOS `User:{text}` cut to `maxTokens − 1` ids, then `<foreign_emb>` (the trailing ` Assistant:` is left
 *   out: attention is causal, so it cannot change the hidden state at `<foreign_emb>`).
 * - "code" (the authors' `teacher_inputs_with_emb`): BOS + text cut the same way, then `<foreign_emb>`.
 */
import { Schema } from "effect"
import type { TextTokenizer } from "../models/tokenizer.ts"
import { dflt } from "../schemas/fields.ts"

export const TeacherTemplate = Schema.Literals(["paper", "code"])
export type TeacherTemplateName = typeof TeacherTemplate.Type

/** The config fields that shape the prompt (section `teacher`; `retrievalFull` selects the same two). */
export const TeacherPromptFields = {
  /** "paper": BOS `User:{english}<foreign_emb> Assistant:`; "code": BOS + English + `<foreign_emb>`. */
  template: dflt(TeacherTemplate, "paper"),
  /** The code's `max_src_tokens`: BOS + English ≤ maxTokens − 1 tokens, then `<foreign_emb>` (code: 128). The
   *  "paper" template cuts the English to the same number of tokens. */
  maxTokens: dflt(Schema.Int.check(Schema.isGreaterThanOrEqualTo(2, { message: "Expected a whole number ≥ 2" })), 128)
}
export const TeacherPromptConfig = Schema.Struct(TeacherPromptFields)

/** The text before the English sentence in each template. */
export const TEMPLATE_PREFIX: Readonly<Record<TeacherTemplateName, string>> = { paper: "User:", code: "" }

export interface TeacherPromptOptions {
  readonly template: TeacherTemplateName
  readonly maxTokens: number
}

/** The prompt ids of one English sentence, ending with `<foreign_emb>` (id `feId`). */
export const teacherPromptIds = (tok: TextTokenizer, english: string, feId: number, o: TeacherPromptOptions): Array<number> => {
  const ids = tok.encode(TEMPLATE_PREFIX[o.template] + english, { addSpecialTokens: true })
  return [...ids.slice(0, o.maxTokens - 1), feId]
}
