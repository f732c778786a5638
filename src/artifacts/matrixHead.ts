/** Reading the first rows of a matrix artifact (the eval slice of `zF.holdout` / `hE.holdout`). */
import { Effect, Stream } from "effect"
import type { ArtifactError } from "../pipeline/errors.ts"
import { type Matrix, readMatrixBatches } from "../formats/arrow/matrix.ts"

/** The first `n` rows of a matrix artifact (reads only the record batches needed). */
export const readMatrixHead = (file: string, n: number): Effect.Effect<Matrix, ArtifactError> =>
  Effect.gen(function*() {
    let seen = 0
    const parts = yield* readMatrixBatches(file).pipe(
      Stream.takeUntil((b) => {
        seen += b.rows
        return seen >= n
      }),
      Stream.runCollect
    )
    const dim = parts.length > 0 ? parts[0].dim : 0
    const rows = Math.min(n, parts.reduce((a, b) => a + b.rows, 0))
    const data = new Float32Array(rows * dim)
    let at = 0
    for (const b of parts) {
      const take = Math.min(b.rows, rows - at)
      if (take <= 0) break
      data.set(b.data.subarray(0, take * dim), at * dim)
      at += take
    }
    return { rows, dim, data }
  })
