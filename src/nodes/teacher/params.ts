/** Config section `teacher`: the prompt h_E is read from, and batching. */
import { Schema } from "effect"
import { TeacherPromptFields } from "../../prompts/teacher.ts"
import { dflt, Size } from "../../schemas/fields.ts"

export const TeacherConfig = Schema.Struct({
  ...TeacherPromptFields,
  /** Prompts per decoder forward pass (and per resumable scratch batch); left padding. */
  batchSize: dflt(Size, 8)
})

export type TeacherParams = typeof TeacherConfig.Type
