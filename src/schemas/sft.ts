/**
 * Row shapes of the Stage B data and evaluation tables: `sft.train`, `sft.val`, `sft.eval` and
 * `synthesize.quarantine` (written by `synthesize`), `generations.main` (by `generate`), `generations.peers` (by
 * `generatePeers`), `generations` (the two joined, by `generations`) and `judge.pairs` (by `judge`).
 * Each is declared once (`tableShape`): its row type, its column list (what lands on disk) and its cell-by-cell reader
 * for rows read back come from that declaration.
 */
import { Effect } from "effect"
import { asStageError } from "../pipeline/stageError.ts"
import { StageError } from "../pipeline/errors.ts"
import { bool, float64, int32, nullable, oneOf, tableShape, utf8 } from "../formats/parquet/shape.ts"
import { readTableAll, type Row } from "../formats/parquet/table.ts"

/** Evaluation buckets (paper Table 2): content understanding (translate, summarise, bullets, …) and Q&A. */
export const SFT_BUCKETS = ["content", "qa"] as const
export type SftBucket = (typeof SFT_BUCKETS)[number]

/** One Stage B example. */
export const SftTable = tableShape({
  /** The source pair's `id` (its position in the ingested corpus). */
  id: int32,
  /** Index of the source pair in its table: `train` for sft.train/sft.val, `eval` (= `holdout`) for sft.eval. Use it
   *  to find the pair's encoder vector (`zF.train[row]`, `zF.holdout[row]`). */
  row: int32,
  task_type: utf8,
  bucket: oneOf(SFT_BUCKETS),
  /** The instruction (for Q&A: the question) the prompt was built around. */
  instruction: utf8,
  /** The Stage B prompt; contains `<foreign_emb>` (see `stageBInput` in src/prompts/synthesis.ts). */
  input: utf8,
  /** The target. */
  output: utf8,
  foreign_raw: utf8,
  english_ref: utf8,
  /** Made by the offline template synthesizer (no model). */
  offline: bool
}, { label: (r) => (typeof r["row"] === "number" ? `row ${r["row"]}` : undefined) })
export type SftRow = typeof SftTable.schema.Type
export const SftColumns = SftTable.columns
/** A row of an sft table read back, or a description of the bad cell. */
export const asSftRow = SftTable.read

/** A pair the synthesizer could not turn into a usable row (`synthesize.quarantine`). */
export const SynthQuarantineTable = tableShape({
  /** "train" (the row indexes `train`) or "eval" (it indexes `eval`). */
  split: utf8,
  row: int32,
  id: int32,
  task_type: utf8,
  /** Every attempt's reason, `attempt 1: …; attempt 2: …` (filters: the filter's reason). */
  reason: utf8,
  /** The last raw reply (empty for filtered pairs and offline rows). */
  raw: utf8,
  attempts: int32
})
export type SynthQuarantineRow = typeof SynthQuarantineTable.schema.Type
export const SynthQuarantineColumns = SynthQuarantineTable.columns

/** The systems compared in the generations table. */
export const SYSTEMS = ["llink", "base", "finetune"] as const
export type SystemName = (typeof SYSTEMS)[number]

/** The peer baselines (nullable columns of `generations`). */
export const PEERS = ["langbridge", "mindmerger"] as const
export type PeerName = (typeof PEERS)[number]

/** The columns of an evaluation example and the three systems' answers (`generations.main`, by `generate`). */
const mainGenerationFields = {
  /** Index of the example in `sft.eval` (unique). */
  id: int32,
  /** Index of the pair in `eval`/`holdout`. */
  row: int32,
  task_type: utf8,
  bucket: oneOf(SFT_BUCKETS),
  /** The instruction (Q&A: the question) as the user asked it. */
  instruction: utf8,
  foreign: utf8,
  /** The human reference translation of the pair (what the judge is shown). */
  reference: utf8,
  /** The synthesized target answer (sft.eval `output`). */
  target: utf8,
  llink: utf8,
  base: utf8,
  finetune: utf8,
  /** Decoder prompt tokens per system (BOS and the K slot tokens included). */
  llinkPromptTokens: int32,
  basePromptTokens: int32,
  finetunePromptTokens: int32
} as const

/** The peer baselines' outputs and prompt lengths (BOS, one row per encoder token, the end vector, MindMerger's
 *  text prompt); null when `baselines` leaves the peer out. */
const peerGenerationFields = {
  langbridge: nullable(utf8),
  mindmerger: nullable(utf8),
  langbridgePromptTokens: nullable(int32),
  mindmergerPromptTokens: nullable(int32)
} as const

const peerCheck = (r: Readonly<Record<string, unknown>>): string | undefined => {
  for (const name of PEERS) {
    if ((r[name] === null) !== (r[`${name}PromptTokens`] === null)) return `"${name}" and "${name}PromptTokens" must both be set or both null`
  }
  return undefined
}
const exampleLabel = (r: Readonly<Record<string, unknown>>) => (typeof r["id"] === "number" ? `example ${r["id"]}` : undefined)

/** `generate`'s table: LLINK, base and the fine-tune on every evaluation example. */
export const MainGenerationTable = tableShape(mainGenerationFields, { label: exampleLabel })
export type MainGenerationRow = typeof MainGenerationTable.schema.Type
export const MainGenerationColumns = MainGenerationTable.columns

/** `generatePeers`' table: the peers' answers to every evaluation example, by `id`. */
export const PeerGenerationTable = tableShape({ id: int32, ...peerGenerationFields }, { label: exampleLabel, check: peerCheck })
export type PeerGenerationRow = typeof PeerGenerationTable.schema.Type
export const PeerGenerationColumns = PeerGenerationTable.columns

/** One evaluation example with every system's output (`generations`: the two tables above joined on `id`). */
export const GenerationTable = tableShape({ ...mainGenerationFields, ...peerGenerationFields }, { label: exampleLabel, check: peerCheck })
export type GenerationRow = typeof GenerationTable.schema.Type
export const GenerationColumns = GenerationTable.columns
/** A generations row read back, or a description of the bad cell. */
export const asGenerationRow = GenerationTable.read

/** A system's answer in a generations row (`llink`, `base`, … a peer); null when it did not answer (a peer that is off). */
export const answerOf = (row: GenerationRow, system: string): string | null => {
  const value = (row as Readonly<Record<string, unknown>>)[system]
  return typeof value === "string" ? value : null
}

/** Reads a table of one of the shapes above, checking every row (failures name the table, the row and the cell, and
 *  become `stage`'s error). */
const readChecked = <R>(read: (row: Row) => R | string, what: string) =>
  (stage: string, file: string): Effect.Effect<Array<R>, StageError> =>
    Effect.gen(function*() {
      const rows = yield* readTableAll(file).pipe(asStageError(stage))
      const out: Array<R> = []
      for (let i = 0; i < rows.length; i++) {
        const r = read(rows[i])
        if (typeof r === "string") return yield* new StageError({ stage, message: `${what} row ${i}: ${r}`, file })
        out.push(r)
      }
      return out
    })

/** Reads a `generations` table. */
export const readGenerations = readChecked(asGenerationRow, "generations")
/** Reads a `generations.main` table. */
export const readMainGenerations = readChecked(MainGenerationTable.read, "generations.main")
/** Reads a `generations.peers` table. */
export const readPeerGenerations = readChecked(PeerGenerationTable.read, "generations.peers")

/** Reads an sft table (`sft.train`, `sft.val`, `sft.eval`), checking every row. */
export const readSftRows = readChecked(asSftRow, "sft")

/** One judged pair (`judge.pairs`). */
export const JudgePairTable = tableShape({
  id: int32,
  bucket: utf8,
  task_type: utf8,
  /** LLINK's "vsBase" | "vsFinetune" | "vsLangbridge" | "vsMindmerger", or "<a>~<b>" between two baselines
   *  (`judge.comparisons: "all"`); see `systemsOf` in schemas/judge.ts. */
  comparison: utf8,
  /** Verdict of each order: "A" | "B" | "C" | "invalid". */
  verdictSystemFirst: utf8,
  verdictBaselineFirst: utf8,
  /** Each order's outcome from the first system's side (LLINK's in a "vs…" comparison): "win" | "loss" | "tie" | "invalid". */
  outcomeSystemFirst: utf8,
  outcomeBaselineFirst: utf8,
  /** The combined outcome: equal orders → that outcome; different → "tie" (flipped); any invalid → "invalid". */
  outcome: utf8,
  flipped: bool,
  invalidReasons: utf8,
  offline: bool,
  /** Offline judge: sentence chrF of LLINK's and the baseline's output against the reference. */
  chrfSystem: nullable(float64),
  chrfBaseline: nullable(float64),
  /** Endpoint judge: the raw answers of both orders. */
  rawSystemFirst: nullable(utf8),
  rawBaselineFirst: nullable(utf8)
})
export type JudgePairRow = typeof JudgePairTable.schema.Type
export const JudgePairColumns = JudgePairTable.columns
