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

/** The most one read or write call moves (Node caps a single call at 2 GiB). */
const MAX_IO_BYTES = 1 << 30

/** Reads exactly `length` bytes at `position` into `target[offset..]`; throws if the file ends first. */
export const readFully = async (fh: FileHandle, target: Uint8Array, position: number, offset = 0, length = target.length - offset): Promise<void> => {
  let done = 0
  while (done < length) {
    const { bytesRead } = await fh.read(target, offset + done, Math.min(MAX_IO_BYTES, length - done), position + done)
    if (bytesRead === 0) throw new Error(`file ends at byte ${position + done}, ${length - done} bytes short`)
    done += bytesRead
  }
}

/** Writes `chunks` back to back from `position`; returns the bytes written. */
export const writeFully = async (fh: FileHandle, chunks: ReadonlyArray<Uint8Array>, position: number): Promise<number> => {
  let at = position
  for (const chunk of chunks) {
    let done = 0
    while (done < chunk.length) {
      const { bytesWritten } = await fh.write(chunk, done, Math.min(MAX_IO_BYTES, chunk.length - done), at + done)
      done += bytesWritten
    }
    at += chunk.length
  }
  return at - position
}
