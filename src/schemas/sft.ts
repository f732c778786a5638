/**
 * Row shapes of the Stage B data and evaluation tables: `sft.train`, `sft.val`, `sft.eval` and
 * `synthesize.quarantine` (written by `synthesize`), `generations` (by `generate`) and `judge.pairs` (by `judge`).
 * Each has its column list (what lands on disk) and a cell-by-cell reader for rows read back.
 */
import { Effect } from "effect"
import { asStageError } from "../pipeline/stageError.ts"
import { StageError } from "../pipeline/errors.ts"
import { type Column, readTableAll, type Row } from "../formats/parquet/table.ts"

/** Evaluation buckets (paper Table 2): content understanding (translate, summarise, bullets, …) and Q&A. */
export type SftBucket = "content" | "qa"

/** One Stage B example. */
export interface SftRow {
  /** The source pair's `id` (its position in the ingested corpus). */
  readonly id: number
  /** Index of the source pair in its table: `train` for sft.train/sft.val, `eval` (= `holdout`) for sft.eval. Use it
   *  to find the pair's encoder vector (`zF.train[row]`, `zF.holdout[row]`). */
  readonly row: number
  readonly task_type: string
  readonly bucket: SftBucket
  /** The instruction (for Q&A: the question) the prompt was built around. */
  readonly instruction: string
  /** The Stage B prompt; contains `<foreign_emb>` (see `stageBInput` in src/prompts/synthesis.ts). */
  readonly input: string
  /** The target. */
  readonly output: string
  readonly foreign_raw: string
  readonly english_ref: string
  /** Made by the offline template synthesizer (no model). */
  readonly offline: boolean
}

export const SftColumns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "row", type: "int32" },
  { name: "task_type", type: "utf8" },
  { name: "bucket", type: "utf8" },
  { name: "instruction", type: "utf8" },
  { name: "input", type: "utf8" },
  { name: "output", type: "utf8" },
  { name: "foreign_raw", type: "utf8" },
  { name: "english_ref", type: "utf8" },
  { name: "offline", type: "bool" }
]

const str = (row: Row, name: string): string | undefined => {
  const v = row[name]
  return typeof v === "string" ? v : undefined
}
const num = (row: Row, name: string): number | undefined => {
  const v = row[name]
  return typeof v === "number" ? v : undefined
}

/** A row of an sft table read back, or a description of the bad cell. */
export const asSftRow = (row: Row): SftRow | string => {
  const id = num(row, "id")
  const index = num(row, "row")
  const bucket = str(row, "bucket")
  const offline = row["offline"]
  if (id === undefined || index === undefined) return `columns "id" and "row" should be numbers`
  if (bucket !== "content" && bucket !== "qa") return `row ${index}: column "bucket" should be "content" or "qa", got ${JSON.stringify(bucket)}`
  if (typeof offline !== "boolean") return `row ${index}: column "offline" should be a boolean`
  const fields = ["task_type", "instruction", "input", "output", "foreign_raw", "english_ref"] as const
  const values: Record<string, string> = {}
  for (const f of fields) {
    const v = str(row, f)
    if (v === undefined) return `row ${index}: column "${f}" should be a string`
    values[f] = v
  }
  return {
    id,
    row: index,
    task_type: values["task_type"],
    bucket,
    instruction: values["instruction"],
    input: values["input"],
    output: values["output"],
    foreign_raw: values["foreign_raw"],
    english_ref: values["english_ref"],
    offline
  }
}

/** A pair the synthesizer could not turn into a usable row. */
export const SynthQuarantineColumns: ReadonlyArray<Column> = [
  /** "train" (the row indexes `train`) or "eval" (it indexes `eval`). */
  { name: "split", type: "utf8" },
  { name: "row", type: "int32" },
  { name: "id", type: "int32" },
  { name: "task_type", type: "utf8" },
  /** Every attempt's reason, `attempt 1: …; attempt 2: …` (filters: the filter's reason). */
  { name: "reason", type: "utf8" },
  /** The last raw reply (empty for filtered pairs and offline rows). */
  { name: "raw", type: "utf8" },
  { name: "attempts", type: "int32" }
]

/** The systems compared in the generations table. */
export const SYSTEMS = ["llink", "base", "finetune"] as const
export type SystemName = (typeof SYSTEMS)[number]

/** One evaluation example with every system's output (`generations`). */
export interface GenerationRow {
  /** Index of the example in `sft.eval` (unique). */
  readonly id: number
  /** Index of the pair in `eval`/`holdout`. */
  readonly row: number
  readonly task_type: string
  readonly bucket: SftBucket
  /** The instruction (Q&A: the question) as the user asked it. */
  readonly instruction: string
  readonly foreign: string
  /** The human reference translation of the pair (what the judge is shown). */
  readonly reference: string
  /** The synthesized target answer (sft.eval `output`). */
  readonly target: string
  readonly llink: string
  readonly base: string
  readonly finetune: string
  /** Decoder prompt tokens per system (BOS and the K slot tokens included). */
  readonly llinkPromptTokens: number
  readonly basePromptTokens: number
  readonly finetunePromptTokens: number
  /** The peer baselines' outputs and prompt lengths (BOS, one row per encoder token, the end vector, MindMerger's
   *  text prompt); null when `baselines` leaves the peer out. */
  readonly langbridge: string | null
  readonly mindmerger: string | null
  readonly langbridgePromptTokens: number | null
  readonly mindmergerPromptTokens: number | null
}

/** The peer baselines (nullable columns of `generations`). */
export const PEERS = ["langbridge", "mindmerger"] as const
export type PeerName = (typeof PEERS)[number]

const GENERATION_TEXT = ["task_type", "instruction", "foreign", "reference", "target", "llink", "base", "finetune"] as const
const GENERATION_NUM = ["row", "llinkPromptTokens", "basePromptTokens", "finetunePromptTokens"] as const

export const GenerationColumns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "row", type: "int32" },
  { name: "task_type", type: "utf8" },
  { name: "bucket", type: "utf8" },
  { name: "instruction", type: "utf8" },
  { name: "foreign", type: "utf8" },
  { name: "reference", type: "utf8" },
  { name: "target", type: "utf8" },
  { name: "llink", type: "utf8" },
  { name: "base", type: "utf8" },
  { name: "finetune", type: "utf8" },
  { name: "llinkPromptTokens", type: "int32" },
  { name: "basePromptTokens", type: "int32" },
  { name: "finetunePromptTokens", type: "int32" },
  { name: "langbridge", type: "utf8", nullable: true },
  { name: "mindmerger", type: "utf8", nullable: true },
  { name: "langbridgePromptTokens", type: "int32", nullable: true },
  { name: "mindmergerPromptTokens", type: "int32", nullable: true }
]

/** A generations row read back, or a description of the bad cell. */
export const asGenerationRow = (row: Row): GenerationRow | string => {
  const id = num(row, "id")
  if (id === undefined) return `column "id" should be a number`
  const bucket = str(row, "bucket")
  if (bucket !== "content" && bucket !== "qa") return `example ${id}: column "bucket" should be "content" or "qa"`
  const text: Record<string, string> = {}
  for (const f of GENERATION_TEXT) {
    const v = str(row, f)
    if (v === undefined) return `example ${id}: column "${f}" should be a string`
    text[f] = v
  }
  const n: Record<string, number> = {}
  for (const f of GENERATION_NUM) {
    const v = num(row, f)
    if (v === undefined) return `example ${id}: column "${f}" should be a number`
    n[f] = v
  }
  const peer: Record<string, string | number | null> = {}
  for (const name of PEERS) {
    const text = row[name] ?? null
    const tokens = row[`${name}PromptTokens`] ?? null
    if (text !== null && typeof text !== "string") return `example ${id}: column "${name}" should be a string or null`
    if (tokens !== null && typeof tokens !== "number") return `example ${id}: column "${name}PromptTokens" should be a number or null`
    if ((text === null) !== (tokens === null)) return `example ${id}: "${name}" and "${name}PromptTokens" must both be set or both null`
    peer[name] = text
    peer[`${name}PromptTokens`] = tokens
  }
  return {
    id,
    row: n["row"],
    task_type: text["task_type"],
    bucket,
    instruction: text["instruction"],
    foreign: text["foreign"],
    reference: text["reference"],
    target: text["target"],
    llink: text["llink"],
    base: text["base"],
    finetune: text["finetune"],
    llinkPromptTokens: n["llinkPromptTokens"],
    basePromptTokens: n["basePromptTokens"],
    finetunePromptTokens: n["finetunePromptTokens"],
    langbridge: peer["langbridge"] as string | null,
    mindmerger: peer["mindmerger"] as string | null,
    langbridgePromptTokens: peer["langbridgePromptTokens"] as number | null,
    mindmergerPromptTokens: peer["mindmergerPromptTokens"] as number | null
  }
}

/** Reads a `generations` table, checking every row (failures name the row and become `stage`'s error). */
export const readGenerations = (stage: string, file: string): Effect.Effect<Array<GenerationRow>, StageError> =>
  Effect.gen(function*() {
    const rows = yield* readTableAll(file).pipe(asStageError(stage))
    const out: Array<GenerationRow> = []
    for (let i = 0; i < rows.length; i++) {
      const r = asGenerationRow(rows[i])
      if (typeof r === "string") return yield* new StageError({ stage, message: `generations row ${i}: ${r}`, file })
      out.push(r)
    }
    return out
  })

/** Reads an sft table (`sft.train`, `sft.val`, `sft.eval`), checking every row. */
export const readSftRows = (stage: string, file: string): Effect.Effect<Array<SftRow>, StageError> =>
  Effect.gen(function*() {
    const rows = yield* readTableAll(file).pipe(asStageError(stage))
    const out: Array<SftRow> = []
    for (let i = 0; i < rows.length; i++) {
      const r = asSftRow(rows[i])
      if (typeof r === "string") return yield* new StageError({ stage, message: `sft row ${i}: ${r}`, file })
      out.push(r)
    }
    return out
  })

/** One judged pair (`judge.pairs`). */
export const JudgePairColumns: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "bucket", type: "utf8" },
  { name: "task_type", type: "utf8" },
  /** "vsBase" | "vsFinetune". */
  { name: "comparison", type: "utf8" },
  /** Verdict of each order: "A" | "B" | "C" | "invalid". */
  { name: "verdictSystemFirst", type: "utf8" },
  { name: "verdictBaselineFirst", type: "utf8" },
  /** Each order's outcome from LLINK's side: "win" | "loss" | "tie" | "invalid". */
  { name: "outcomeSystemFirst", type: "utf8" },
  { name: "outcomeBaselineFirst", type: "utf8" },
  /** The combined outcome: equal orders → that outcome; different → "tie" (flipped); any invalid → "invalid". */
  { name: "outcome", type: "utf8" },
  { name: "flipped", type: "bool" },
  { name: "invalidReasons", type: "utf8" },
  { name: "offline", type: "bool" },
  /** Offline judge: sentence chrF of LLINK's and the baseline's output against the reference. */
  { name: "chrfSystem", type: "float64", nullable: true },
  { name: "chrfBaseline", type: "float64", nullable: true },
  /** Endpoint judge: the raw answers of both orders. */
  { name: "rawSystemFirst", type: "utf8", nullable: true },
  { name: "rawBaselineFirst", type: "utf8", nullable: true }
]
