/**
 * Resumable batch files of the generation stages (`generate`, `generatePeers`): each finished batch of rows is one
 * JSON file in a scratch folder, `batch-000012.json` = `{ version: 1, ids, rows }`, written atomically. A batch is
 * reused only when the file holds exactly the expected example ids and every row reads back valid; a damaged file
 * is logged and recomputed.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { describeError } from "../errors/describe.ts"
import type { Row } from "../formats/parquet/table.ts"
import { StageError } from "../pipeline/errors.ts"
import { writeFileAtomicSync } from "../pipeline/fsAtomic.ts"

/** The file of batch `index` in `dir`. */
export const batchFile = (dir: string, index: number): string => path.join(dir, `batch-${String(index).padStart(6, "0")}.json`)

/** A finished batch; `missing`, or `bad` with the reason (then it is recomputed). `read` checks one row. */
export const readBatch = <R>(
  file: string,
  ids: ReadonlyArray<number>,
  read: (row: Row) => R | string
): { readonly _tag: "ok"; readonly rows: ReadonlyArray<R> } | { readonly _tag: "missing" } | { readonly _tag: "bad"; readonly reason: string } => {
  if (!fs.existsSync(file)) return { _tag: "missing" }
  let parsed: { version?: unknown; ids?: unknown; rows?: unknown }
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8")) as typeof parsed
  } catch (cause) {
    return { _tag: "bad", reason: describeError(cause) }
  }
  if (parsed.version !== 1 || !Array.isArray(parsed.ids) || !Array.isArray(parsed.rows)) return { _tag: "bad", reason: "not a batch file" }
  const got: ReadonlyArray<unknown> = parsed.ids
  if (got.length !== ids.length || got.some((id, i) => id !== ids[i])) return { _tag: "bad", reason: "holds other examples" }
  const rows: Array<R> = []
  for (const r of parsed.rows as ReadonlyArray<Row>) {
    const row = read(r)
    if (typeof row === "string") return { _tag: "bad", reason: row }
    rows.push(row)
  }
  return rows.length === ids.length ? { _tag: "ok", rows } : { _tag: "bad", reason: "row count differs" }
}

/** Writes batch `b` to `dir` (atomically); a failure is `stage`'s error naming the file. */
export const saveBatch = (stage: string, dir: string) =>
  (b: number, ids: ReadonlyArray<number>, rows: ReadonlyArray<unknown>): Effect.Effect<void, StageError> => {
    const file = batchFile(dir, b)
    return Effect.try({
      try: () => writeFileAtomicSync(file, JSON.stringify({ version: 1, ids, rows })),
      catch: (cause) => new StageError({ stage, message: `cannot write ${file}: ${String(cause)}`, file, cause })
    })
  }

/** Batch `b` from `dir` if it holds it intact (a damaged file is logged and recomputed). */
export const findBatch = <R>(dir: string, read: (row: Row) => R | string, log: (line: string) => void) =>
  (b: number, ids: ReadonlyArray<number>): ReadonlyArray<R> | undefined => {
    const file = batchFile(dir, b)
    const done = readBatch(file, ids, read)
    if (done._tag === "bad") log(`recomputing ${file}: ${done.reason}`)
    return done._tag === "ok" ? done.rows : undefined
  }
