/**
 * Reading columns of the row tables that several stages share (`train`, `holdout`, `eval`), checked per row.
 * Kept apart from the matrix-job machinery (matrixJob.ts) so a stage that only reads texts does not depend on it.
 */
import { Effect } from "effect"
import { StageError } from "../pipeline/errors.ts"
import { asStageError } from "../pipeline/stageError.ts"
import { readTableAll } from "../formats/parquet/table.ts"

/** One string column of a table (e.g. `foreign` of `train`), every row checked to be a string. */
export const readStringColumn = (stage: string, file: string, column: string) =>
  Effect.gen(function*() {
    const rows = yield* readTableAll(file, { columns: [column] }).pipe(asStageError(stage))
    const out: Array<string> = []
    for (const [i, r] of rows.entries()) {
      const v = r[column]
      if (typeof v !== "string") {
        return yield* new StageError({ stage, message: `row ${i}: column "${column}" is not a string`, file })
      }
      out.push(v)
    }
    return out
  })
