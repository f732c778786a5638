/**
 * Data of the Stage B and fine-tune stages: the sft rows (read from `sft.train` / `sft.val`), their encoded token
 * sequences, and the rows of the `zF.train` / `hE.train` matrices they point at (only those rows are kept).
 */
import { Effect, Stream } from "effect"
import { asStageError } from "../pipeline/stageError.ts"
import type { TextTokenizer } from "../models/tokenizer.ts"
import { StageError } from "../pipeline/errors.ts"
import { matrixInfo, readMatrixBatches } from "../formats/arrow/matrix.ts"
import { readTableAll } from "../formats/parquet/table.ts"
import type { EncodedExample, InstructionSource } from "../prompts/slots.ts"
import { encodeExample, finetunePrompt, instructionText, slotPrompt, stripTokens } from "../prompts/slots.ts"
import { findNumerals } from "../text/numerals.ts"
import { type SlotChooser, slotCountFor } from "../prompts/slotPolicy.ts"
import type { NumbersMode } from "./sftParams.ts"

/** The sft columns these stages read. */
export const SFT_COLUMNS = ["task_type", "input", "output", "foreign_raw", "row"] as const

export interface SftExampleRow {
  readonly taskType: string
  readonly input: string
  readonly output: string
  readonly foreignRaw: string
  /** Index of the source pair in the `train` table (= the row of `zF.train` / `hE.train`). */
  readonly row: number
}

/** Reads an sft table (the columns above), checking each cell. */
export const readSftTable = (stage: string, file: string): Effect.Effect<Array<SftExampleRow>, StageError> =>
  Effect.gen(function*() {
    const rows = yield* readTableAll(file, { columns: SFT_COLUMNS }).pipe(asStageError(stage))
    const out: Array<SftExampleRow> = []
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]
      const { task_type, input, output, foreign_raw, row } = r
      if (typeof task_type !== "string" || typeof input !== "string" || typeof output !== "string" || typeof foreign_raw !== "string") {
        return yield* new StageError({ stage, message: `sft row ${i}: task_type, input, output and foreign_raw must be strings`, file })
      }
      if (typeof row !== "number" || !Number.isInteger(row) || row < 0) {
        return yield* new StageError({ stage, message: `sft row ${i}: "row" must be a whole number ≥ 0, got ${String(row)}`, file })
      }
      out.push({ taskType: task_type, input, output, foreignRaw: foreign_raw, row })
    }
    return out
  })

export interface PromptSettings {
  readonly instruction: InstructionSource
  readonly appendEos: boolean
  readonly maxSeqLen: number
  /** Task types to keep (empty = all). */
  readonly taskTypes: ReadonlyArray<string>
  /** Reserved token strings (stripped from texts). */
  readonly reserved: ReadonlyArray<string>
}

/**
 * What goes into the prompt: K slot tokens (Stage B; with `numbers: "copy"` also the foreign text's numerals, the
 * number pathway) or the foreign text cut to `maxForeignChars` (fine-tune). With a `chooser` (`stageB.slotPolicy`
 * `byLength`), an example gets the first `chooser.of(foreign)` of the K slot tokens instead of all K.
 */
export type PromptKind =
  | {
    readonly kind: "slots"
    readonly K: number
    readonly slotIds: ReadonlyArray<number>
    readonly numbers?: NumbersMode | undefined
    readonly chooser?: SlotChooser | undefined
  }
  | { readonly kind: "text"; readonly maxForeignChars: number }

export interface EncodedRow {
  readonly row: number
  /** The example with its own K (all K slots without a chooser). */
  readonly example: EncodedExample
  /** With a chooser: the example encoded with k = chooser.min … its own K slots (`byK[k − chooser.min]`), for the
   *  training draws; the last is `example`. */
  readonly byK?: ReadonlyArray<EncodedExample>
}

export interface EncodedSet {
  readonly examples: Array<EncodedRow>
  /** Skipped rows by reason. */
  readonly skipped: Record<string, number>
}

const cutCodePoints = (s: string, n: number): string => {
  const cps = Array.from(s)
  return cps.length <= n ? s : cps.slice(0, n).join("")
}

/** How many slots a row gets: the chooser's K of its foreign text (reserved tokens stripped), else all K. */
export const slotCountOf = (r: SftExampleRow, settings: PromptSettings, kind: PromptKind & { readonly kind: "slots" }): number =>
  slotCountFor(r.foreignRaw, kind.K, kind.chooser, settings.reserved)

/** The prompt text of one row (`slots`: how many slot tokens; default `slotCountOf`). */
export const promptOf = (r: SftExampleRow, settings: PromptSettings, kind: PromptKind, slots?: number): string => {
  const instruction = instructionText(r.input, r.taskType, settings.instruction, settings.reserved)
  if (kind.kind === "slots") {
    const K = slots ?? slotCountOf(r, settings, kind)
    return slotPrompt(instruction, K, kind.numbers === "copy" ? findNumerals(stripTokens(r.foreignRaw, settings.reserved)) : [])
  }
  const foreign = stripTokens(cutCodePoints(r.foreignRaw.trim(), kind.maxForeignChars), settings.reserved)
  return finetunePrompt(instruction, foreign)
}

/** Encodes the rows (filtered by task type; empty targets and over-long prompts skipped). */
export const encodeRows = (
  tokenizer: TextTokenizer,
  rows: ReadonlyArray<SftExampleRow>,
  settings: PromptSettings,
  kind: PromptKind,
  limit = 0
): EncodedSet => {
  const examples: Array<EncodedRow> = []
  const skipped: Record<string, number> = {}
  const skip = (reason: string) => {
    skipped[reason] = (skipped[reason] ?? 0) + 1
  }
  for (const r of rows) {
    if (limit > 0 && examples.length >= limit) break
    if (settings.taskTypes.length > 0 && !settings.taskTypes.includes(r.taskType)) {
      skip("task type not selected")
      continue
    }
    const target = stripTokens(r.output, settings.reserved)
    const withSlots = (k: number | undefined) =>
      encodeExample(tokenizer, promptOf(r, settings, kind, k), target, {
        maxLen: settings.maxSeqLen,
        appendEos: settings.appendEos,
        ...(kind.kind === "slots" && k !== undefined ? { slotIds: kind.slotIds.slice(0, k) } : {})
      })
    const K = kind.kind === "slots" ? slotCountOf(r, settings, kind) : undefined
    const res = withSlots(K)
    if (!res.ok) {
      skip(res.reason.startsWith("prompt has") ? "prompt longer than maxSeqLen" : res.reason)
      continue
    }
    if (kind.kind !== "slots" || kind.chooser === undefined || K === undefined) {
      examples.push({ row: r.row, example: res.example })
      continue
    }
    const byK: Array<EncodedExample> = []
    for (let k = Math.min(kind.chooser.min, K); k < K; k++) {
      const shorter = withSlots(k)
      if (!shorter.ok) throw new Error(`row ${r.row}: the prompt with ${k} slots does not encode although the one with ${K} does (${shorter.reason})`)
      byK.push(shorter.example)
    }
    byK.push(res.example)
    examples.push({ row: r.row, example: res.example, byK })
  }
  return { examples, skipped }
}

/** The rows `wanted` of a matrix file, compacted: `index.get(row)` is the row's position in `data`. */
export interface MatrixRows {
  readonly dim: number
  readonly rows: number
  readonly data: Float32Array
  readonly index: ReadonlyMap<number, number>
}

/** Streams a matrix and keeps only the rows in `wanted` (each must exist). */
export const readMatrixRows = (stage: string, file: string, wanted: Iterable<number>): Effect.Effect<MatrixRows, StageError> =>
  Effect.gen(function*() {
    const unique = [...new Set(wanted)].sort((a, b) => a - b)
    const info = yield* matrixInfo(file).pipe(asStageError(stage))
    const beyond = unique.find((r) => r >= info.rows)
    if (beyond !== undefined) {
      return yield* new StageError({ stage, message: `an sft row points at pair ${beyond}, but ${file} has ${info.rows} rows`, file })
    }
    const index = new Map<number, number>()
    unique.forEach((r, i) => index.set(r, i))
    const data = new Float32Array(unique.length * info.dim)
    let start = 0
    let k = 0
    yield* readMatrixBatches(file).pipe(
      Stream.runForEach((batch) =>
        Effect.sync(() => {
          const end = start + batch.rows
          while (k < unique.length && unique[k] < end) {
            const local = unique[k] - start
            data.set(batch.data.subarray(local * info.dim, (local + 1) * info.dim), k * info.dim)
            k++
          }
          start = end
        })
      ),
      asStageError(stage)
    )
    return { dim: info.dim, rows: unique.length, data, index }
  })

/** The rows (in order) of `m` for pair indices `rows`, as one [rows.length, dim] array. */
export const gatherRows = (m: MatrixRows, rows: ReadonlyArray<number>): Float32Array => {
  const out = new Float32Array(rows.length * m.dim)
  rows.forEach((r, i) => {
    const at = m.index.get(r)
    if (at === undefined) throw new Error(`matrix row ${r} was not loaded`)
    out.set(m.data.subarray(at * m.dim, (at + 1) * m.dim), i * m.dim)
  })
  return out
}

/** Reads and encodes `sft.train` and `sft.val` for a stage; no usable training row is an error naming the file. */
export const loadSftSets = (
  stage: string,
  files: { readonly train: string; readonly val: string },
  tokenizer: TextTokenizer,
  settings: PromptSettings,
  kind: PromptKind,
  limits: { readonly maxTrainRows: number; readonly valMaxRows: number }
): Effect.Effect<{ readonly train: EncodedSet; readonly val: EncodedSet }, StageError> =>
  Effect.gen(function*() {
    const trainRows = yield* readSftTable(stage, files.train)
    const valRows = yield* readSftTable(stage, files.val)
    const train = encodeRows(tokenizer, trainRows, settings, kind, limits.maxTrainRows)
    const val = encodeRows(tokenizer, valRows, settings, kind, limits.valMaxRows)
    if (train.examples.length === 0) {
      return yield* new StageError({
        stage,
        message: `no usable sft.train rows (${trainRows.length} read; skipped: ${JSON.stringify(train.skipped)})`,
        file: files.train
      })
    }
    return { train, val }
  })
