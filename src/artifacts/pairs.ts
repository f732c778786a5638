/**
 * The sentence pairs of a split table (`train`, `holdout`: Parquet with `english` and `foreign` columns), read
 * whole. A null or missing cell reads as "".
 */
import { Effect } from "effect"
import type { ArtifactError } from "../pipeline/errors.ts"
import { readTableAll } from "../formats/parquet/table.ts"

export interface SentencePair {
  readonly english: string
  readonly foreign: string
}

export const readPairs = (file: string): Effect.Effect<ReadonlyArray<SentencePair>, ArtifactError> =>
  readTableAll(file, { columns: ["english", "foreign"] }).pipe(
    Effect.map((rows) =>
      rows.map((r) => ({
        english: typeof r.english === "string" ? r.english : "",
        foreign: typeof r.foreign === "string" ? r.foreign : ""
      }))
    )
  )

/** Both sides of `pairs` as separate sentences, in order (empty ones dropped). */
export const sidesOf = (pairs: ReadonlyArray<SentencePair>): Array<string> =>
  pairs.flatMap((r) => [r.english, r.foreign].filter((s) => s.length > 0))
