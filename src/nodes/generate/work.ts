/**
 * The `generate` stage's work: every `sft.eval` example answered by the three systems, greedily (no sampling),
 * `generate.maxNewTokens` new tokens (code: 64) with the no-repeat-n-gram rule (code: 3), in batches of
 * `generate.batchSize` prompts (left padding; llama.ts `generate`).
 *
 * Prompts (all start with BOS; reserved-token strings are stripped from every text put into a prompt):
 * - LLINK: the Stage B training prompt with the K slot tokens, built by the trainer's own `promptOf`
 *   (src/train/sftData.ts) with the settings recorded in the `stageB` artifact:
 *   `Instruction: {instruction}\nForeign: <foreign><f0> … <f{K−1}></foreign>\nAnswer in English only.`; the K slot
 *   vectors of the example's encoder vector z_F (`zF.holdout[row]`, through the frozen projector and the Stage B slot
 *   module) overwrite the `<f_i>` rows; Stage B LoRA on.
 * - Fine-tune: its training prompt with the foreign text itself (cut to its `maxForeignChars` as in training), its
 *   LoRA on (settings from `finetune/llink-finetune.json`).
 * - Base: the decoder alone with the foreign text tokenised directly, in a plain chat-like format (method notes):
 *   `User: {task wording}: {foreign}\nAssistant:` — `BASE_PROMPTS` below, e.g. `User: Translate this to English:
 *   {text}\nAssistant:` for translation; Q&A puts the question first: `User: Answer this question about the text in
 *   English: {question}\nText: {text}\nAssistant:`. The question is the instruction LLINK sees.
 *
 * With `generate.copyNumbers: "on"` every system's greedy decoding goes through the number pointer
 * (src/text/numberPointer.ts) over the example's foreign text.
 *
 * Outputs are decoded without special tokens and trimmed. Prompt token counts (BOS and slot tokens included) are
 * kept per system. Each finished batch is written to the scratch folder (`batch-000012.json`, atomically), so an
 * interrupted run resumes at the first missing batch; the table is assembled from those files at the end.
 */
import * as fs from "node:fs"
import * as tf from "@tensorflow/tfjs"
import { Effect, Stream } from "effect"
import { asStageError } from "../../pipeline/stageError.ts"
import { batchFile, findBatch, saveBatch } from "../../artifacts/batchFiles.ts"
import { generate, type LlamaModel } from "../../models/llama.ts"
import { slotOverrides, slotsFromZ } from "../../models/slots.ts"
import { StageError } from "../../pipeline/errors.ts"
import { consecutiveRanges, onCluster } from "../../pipeline/shards.ts"
import type { FinishedShard, ShardContext, ShardOutcome, ShardRange, StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { tableRowCount, writeTable } from "../../formats/parquet/table.ts"
import type { GenerateParams } from "./params.ts"
import { MainGenerationColumns, type MainGenerationRow, MainGenerationTable, readSftRows, type SftRow } from "../../schemas/sft.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { readMatrixHead } from "../../artifacts/matrixHead.ts"
import { instructionText, stripTokens } from "../../prompts/slots.ts"
import { type EvalSystems, finetunePromptOf, gatherRows, llinkPromptOf, llinkSlotCount, llinkSlotCounts, loadEvalSystems } from "../../artifacts/systems.ts"
import { describeError } from "../../errors/describe.ts"
import { numberSteers } from "../../text/numberPointer.ts"

export type { GenerateParams }

const STAGE = "generate"

/** The base model's wording per task type (`{text}`: the foreign text, `{instruction}`: the synthesized one). */
export const BASE_PROMPTS: Readonly<Record<string, string>> = {
  translate_to_english: "User: Translate this to English: {text}\nAssistant:",
  summarize_in_english: "User: Summarize this in English: {text}\nAssistant:",
  bullet_pointify: "User: Rewrite this as bullet points in English: {text}\nAssistant:",
  paraphrase_in_english: "User: Paraphrase this in English: {text}\nAssistant:",
  title_generation: "User: Write a title in English for this: {text}\nAssistant:",
  extract_main_points: "User: List the main points of this in English: {text}\nAssistant:",
  executive_summary: "User: Write an executive summary of this in English: {text}\nAssistant:",
  extract_key_fields: "User: Extract the key fields of this in English: {text}\nAssistant:",
  qa_about_text: "User: Answer this question about the text in English: {instruction}\nText: {text}\nAssistant:"
}

/** The base model's prompt text for one example (unknown task types use the synthesized instruction). */
export const basePrompt = (taskType: string, foreign: string, instruction: string): string => {
  const template = BASE_PROMPTS[taskType] ?? "User: {instruction}\nText: {text}\nAssistant:"
  return template.replace("{instruction}", () => instruction).replace("{text}", () => foreign)
}

/** The token ids of each system's prompt for one example (BOS first). */
export const examplePrompts = (
  sys: Pick<EvalSystems, "tokenizer" | "finetuneTokenizer" | "bosId" | "K" | "slotIds" | "chooser" | "stageBDoc" | "finetuneDoc">,
  row: SftRow
) => {
  const reserved = sys.stageBDoc.addedTokens
  const instruction = instructionText(row.input, row.task_type, sys.stageBDoc.prompt.instruction, reserved)
  const foreign = stripTokens(row.foreign_raw, reserved)
  const enc = (tok: EvalSystems["tokenizer"], text: string) => [sys.bosId, ...tok.encode(text, { addSpecialTokens: false })]
  const slots = llinkSlotCount(sys, row)
  const llink = enc(sys.tokenizer, llinkPromptOf(sys, row, slots))
  const slotPositions = sys.slotIds.slice(0, slots).map((id) => {
    const at = llink.indexOf(id)
    if (at < 0 || llink.indexOf(id, at + 1) >= 0) throw new Error(`slot token id ${id} must occur exactly once in the LLINK prompt`)
    return at
  })
  return {
    instruction,
    llink,
    slotPositions,
    base: enc(sys.tokenizer, basePrompt(row.task_type, foreign, instruction)),
    finetune: enc(sys.finetuneTokenizer, finetunePromptOf(sys, row))
  }
}

const decode = (tok: EvalSystems["tokenizer"], tokens: ReadonlyArray<number>): string =>
  tok.decode(tokens, { skipSpecialTokens: true }).trim()

/** One batch through the three systems. */
export const generateBatch = async (
  sys: EvalSystems,
  rows: ReadonlyArray<SftRow>,
  ids: ReadonlyArray<number>,
  z: { readonly data: Float32Array; readonly dim: number },
  p: GenerateParams
): Promise<Array<MainGenerationRow>> => {
  const prompts = rows.map((r) => examplePrompts(sys, r))
  const options = { maxNewTokens: p.maxNewTokens, noRepeatNgramSize: p.noRepeatNgram, padId: sys.padId }
  const run = async (model: LlamaModel, which: "base" | "finetune") =>
    (await generate(model, prompts.map((x) => x[which]), { ...options, steer: numberSteers(p.copyNumbers, which === "base" ? sys.tokenizer : sys.finetuneTokenizer, rows) }))
      .tokens
  let coords: { batch: Array<number>; position: Array<number> } = { batch: [], position: [] }
  const vectors = tf.tidy(() => {
    const zb = tf.tensor2d(gatherRows(z.data, z.dim, rows.map((r) => r.row)), [rows.length, z.dim])
    const ov = slotOverrides(slotsFromZ(sys.projector, sys.slots, zb), prompts.map((x) => x.slotPositions))
    coords = { batch: [...ov.batch], position: [...ov.position] }
    return p.slots === "zeroed" ? tf.zerosLike(ov.vectors) : ov.vectors
  })
  let llinkTokens: ReadonlyArray<ReadonlyArray<number>>
  try {
    llinkTokens = (await generate(sys.llink, prompts.map((x) => x.llink), { ...options, overrides: { ...coords, vectors }, steer: numberSteers(p.copyNumbers, sys.tokenizer, rows) }))
      .tokens
  } finally {
    vectors.dispose()
  }
  const baseTokens = await run(sys.base, "base")
  const finetuneTokens = await run(sys.finetune, "finetune")
  return rows.map((r, i) => ({
    id: ids[i],
    row: r.row,
    task_type: r.task_type,
    bucket: r.bucket,
    instruction: prompts[i].instruction,
    foreign: r.foreign_raw,
    reference: r.english_ref,
    target: r.output,
    llink: decode(sys.tokenizer, llinkTokens[i]),
    base: decode(sys.tokenizer, baseTokens[i]),
    finetune: decode(sys.finetuneTokenizer, finetuneTokens[i]),
    llinkPromptTokens: prompts[i].llink.length,
    basePromptTokens: prompts[i].base.length,
    finetunePromptTokens: prompts[i].finetune.length
  }))
}

/** The examples of `sft.eval` that are generated (the first `limit`, or all) and the z_F rows they refer to. */
const readExamples = (p: GenerateParams, inputs: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const all = yield* readSftRows(STAGE, inputs["sft.eval"])
    const examples = p.limit === 0 ? all : all.slice(0, p.limit)
    if (examples.length === 0) return yield* new StageError({ stage: STAGE, message: "sft.eval has no rows", file: inputs["sft.eval"] })
    const maxRow = Math.max(...examples.map((e) => e.row))
    const z = yield* readMatrixHead(inputs["zF.holdout"], maxRow + 1).pipe(asStageError(STAGE))
    if (z.rows <= maxRow) {
      return yield* new StageError({ stage: STAGE, message: `sft.eval refers to holdout row ${maxRow} but zF.holdout has ${z.rows} rows`, file: inputs["zF.holdout"] })
    }
    return { examples, z }
  })

/**
 * Batches `[from, to)` of `examples` (batch b = examples `[b·batchSize, (b+1)·batchSize)`): each one `find` returns
 * is reused, the others are computed (the systems are loaded only if one is missing) and handed to `save`.
 */
const generateBatches = (
  p: GenerateParams,
  inputs: Readonly<Record<string, string>>,
  examples: ReadonlyArray<SftRow>,
  z: { readonly data: Float32Array; readonly dim: number },
  batches: { readonly from: number; readonly to: number },
  find: (b: number, ids: ReadonlyArray<number>) => ReadonlyArray<MainGenerationRow> | undefined,
  save: (b: number, ids: ReadonlyArray<number>, rows: ReadonlyArray<MainGenerationRow>) => Effect.Effect<void, StageError>,
  bar: { readonly advance: (n?: number) => void }
): Effect.Effect<{ readonly rows: Array<MainGenerationRow>; readonly computed: number }, StageError> =>
  Effect.gen(function*() {
    const slice = (b: number) => {
      const start = b * p.batchSize
      const batch = examples.slice(start, start + p.batchSize)
      return { start, batch, ids: batch.map((_, i) => start + i) }
    }
    const found = new Map<number, ReadonlyArray<MainGenerationRow>>()
    for (let b = batches.from; b < batches.to; b++) {
      const rows = find(b, slice(b).ids)
      if (rows !== undefined) found.set(b, rows)
    }
    /** Every batch in order: found, or computed with `sys` (undefined when nothing is missing). */
    const assemble = (sys: EvalSystems | undefined) =>
      Effect.gen(function*() {
        const out: Array<MainGenerationRow> = []
        let computed = 0
        for (let b = batches.from; b < batches.to; b++) {
          const { start, batch, ids } = slice(b)
          const done = found.get(b)
          if (done !== undefined) {
            out.push(...done)
          } else {
            const fresh = yield* Effect.tryPromise({
              try: () => generateBatch(sys!, batch, ids, z, p),
              catch: (cause) => new StageError({ stage: STAGE, message: `batch ${b} (examples ${start}–${start + batch.length - 1}): ${describeError(cause)}`, cause })
            })
            yield* save(b, ids, fresh)
            computed++
            out.push(...fresh)
            // Let an interrupt land between batches.
            yield* Effect.yieldNow
          }
          bar.advance(batch.length)
        }
        return { rows: out, computed }
      })
    if (found.size === batches.to - batches.from) return yield* assemble(undefined)
    return yield* Effect.acquireUseRelease(
      loadEvalSystems(STAGE, inputs),
      (sys) => assemble(sys),
      (sys) => Effect.sync(() => sys.dispose())
    )
  })

/**
 * Shards for a cluster (`generate.shardBatches` batches of `sft.eval` rows each); none in a single process, where
 * the merge (`runGenerate`) does the whole job with the models loaded once and resumes from its scratch batches.
 */
export const planGenerateShards = (p: GenerateParams, inputs: Readonly<Record<string, string>>): Effect.Effect<Array<ShardRange>, StageError> =>
  Effect.gen(function*() {
    if (!(yield* onCluster)) return []
    const count = yield* tableRowCount(inputs["sft.eval"]).pipe(asStageError(STAGE))
    const n = p.limit === 0 ? count : Math.min(count, p.limit)
    const size = p.shardBatches * p.batchSize
    return consecutiveRanges("sft.eval", n, size)
  })

/** One shard: the batches of its range (ranges start at batch boundaries), written to the shard folder; resumes
 *  from the batches an earlier attempt left in the shard's scratch folder. */
export const runGenerateShard = (ctx: ShardContext<GenerateParams>): Effect.Effect<ShardOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const { start, end } = ctx.range
    if (start % p.batchSize !== 0) return yield* new StageError({ stage: STAGE, message: `shard [${start}, ${end}) does not start at a batch of ${p.batchSize}` })
    const { examples, z } = yield* readExamples(p, ctx.inputs)
    const backend = (yield* startBackend(STAGE)).tfBackend
    const bar = ctx.progress(`examples [${start}, ${end})`, end - start)
    // finished batches go to the shard's scratch folder first, so an attempt after a crash reuses them
    const batches = { from: start / p.batchSize, to: Math.ceil(end / p.batchSize) }
    const { rows, computed } = yield* generateBatches(
      p, ctx.inputs, examples.slice(0, end), z, batches,
      findBatch(ctx.scratchDir, MainGenerationTable.read, ctx.log),
      saveBatch(STAGE, ctx.scratchDir),
      bar
    )
    bar.done()
    yield* Effect.try({
      try: () => {
        for (let b = batches.from; b < batches.to; b++) fs.copyFileSync(batchFile(ctx.scratchDir, b), batchFile(ctx.outDir, b))
      },
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot copy the shard's batches: ${String(cause)}`, file: ctx.scratchDir, cause })
    })
    return { rows: rows.length, metrics: { computedBatches: computed, backend } }
  })

/** The stage, or the merge of its shards (their batch files are reused; nothing is left to compute then). */
export const runGenerate = (ctx: StageContext<GenerateParams>, shards: ReadonlyArray<FinishedShard> = []): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const { examples, z } = yield* readExamples(p, ctx.inputs)
    const backend = (yield* startBackend(STAGE)).tfBackend
    const nBatches = Math.ceil(examples.length / p.batchSize)
    const bar = ctx.progress("examples", examples.length)
    const fromScratch = findBatch(ctx.scratchDir, MainGenerationTable.read, ctx.log)
    const shardOf = (b: number) => shards.find((s) => s.range.start <= b * p.batchSize && b * p.batchSize < s.range.end)
    const { rows, computed } = yield* generateBatches(
      p, ctx.inputs, examples, z, { from: 0, to: nBatches },
      (b, ids) => {
        const shard = shardOf(b)
        return (shard === undefined ? undefined : findBatch(shard.dir, MainGenerationTable.read, ctx.log)(b, ids)) ?? fromScratch(b, ids)
      },
      saveBatch(STAGE, ctx.scratchDir),
      bar
    )
    bar.done()
    const shardComputed = shards.reduce((a, s) => a + (typeof s.metrics["computedBatches"] === "number" ? s.metrics["computedBatches"] : 0), 0)
    const n = yield* writeTable(ctx.outputs["generations.main"], MainGenerationColumns, Stream.fromIterable(rows.map((r) => ({ ...r })))).pipe(
      asStageError(STAGE)
    )
    const mean = (f: (r: MainGenerationRow) => number) => rows.reduce((a, r) => a + f(r), 0) / rows.length
    const tokens = {
      llink: mean((r) => r.llinkPromptTokens),
      base: mean((r) => r.basePromptTokens),
      finetune: mean((r) => r.finetunePromptTokens)
    }
    const slotCounts = yield* llinkSlotCounts(STAGE, ctx.inputs, examples)
    const meanSlots = slotCounts === undefined ? undefined : slotCounts.reduce((a, k) => a + k, 0) / slotCounts.length
    const where = shards.length === 0
      ? `${computed} of ${nBatches} batches computed, the rest resumed`
      : `${shards.length} shards computed ${shardComputed} of ${nBatches} batches, the merge ${computed}`
    ctx.log(
      `${n} examples × 3 systems (${backend}; ${where}); mean prompt tokens ` +
        `LLINK ${tokens.llink.toFixed(1)}, base ${tokens.base.toFixed(1)}, fine-tune ${tokens.finetune.toFixed(1)}` +
        (meanSlots === undefined ? "" : `; LLINK slots per example ${meanSlots.toFixed(2)} (length policy)`)
    )
    return {
      rows: { "generations.main": n },
      metrics: { examples: n, batches: nBatches, computedBatches: computed + shardComputed, backend, meanPromptTokens: tokens, ...(meanSlots === undefined ? {} : { meanSlots }) }
    }
  })
