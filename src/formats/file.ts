/**
 * Shared plumbing of the artifact readers (`parquet/table.ts`, `arrow/matrix.ts`): error construction and opening a regular file
 * for reading with its handle tied to the surrounding scope.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import type { FileHandle } from "node:fs/promises"
import { ArtifactError } from "./errors.ts"
import { describeError } from "../errors/describe.ts"

/** The Node error code of a thrown value (`ENOENT`, `EEXIST`, ...), if any. */
export const errnoCode = (cause: unknown): string | undefined =>
  cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined


export const artifactError = (path: string, message: string, cause?: unknown): ArtifactError =>
  new ArtifactError(cause === undefined ? { path, message } : { path, message, cause })

export interface OpenFile {
  readonly fh: FileHandle
  readonly size: number
  /** Runs one read on the handle; a rejection becomes an `ArtifactError` naming the file. */
  readonly io: <A>(f: () => Promise<A>) => Effect.Effect<A, ArtifactError>
}

/** Opens `path` for reading (closed when the scope ends) and checks it is a regular file. */
export const openRegularFile = Effect.fn("formats.openRegularFile")(function*(path: string) {
  const fh = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => fs.promises.open(path, "r"),
      catch: (e) =>
        artifactError(path, errnoCode(e) === "ENOENT" ? `no such file: ${path}` : `cannot open ${path}: ${describeError(e)}`, e)
    }),
    (handle) => Effect.promise(() => handle.close())
  )
  const io = <A>(f: () => Promise<A>): Effect.Effect<A, ArtifactError> =>
    Effect.tryPromise({ try: f, catch: (e) => artifactError(path, `cannot read ${path}: ${describeError(e)}`, e) })
  const stat = yield* io(() => fh.stat())
  if (!stat.isFile()) return yield* artifactError(path, `not a regular file: ${path}`)
  const file: OpenFile = { fh, size: stat.size, io }
  return file
})
