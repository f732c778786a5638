/**
 * The `tinyDecoder` stage's pretraining ("mini" size), so the miniature starts where the paper does: an English
 * instruction decoder that has never seen the foreign script. The training itself is `src/train/pretrain.ts`.
 *
 * Data, from the `train` split's English side only: each sentence as plain text (BOS … EOS, loss on every token),
 * and, for each of the four paper task types, the offline synthesizer's instruction and answer with the English
 * sentence where Stage B puts the slots (`pretrainPrompt`; loss on the answer and EOS). With `numberDrill` on, the
 * data also holds the number drill (numberDrill.ts).
 */
import { Effect } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { offlineInstructionAndAnswer, PAPER_TASK_TYPES, type TaskType } from "../../prompts/synthesis.ts"
import { encodeExample, pretrainPrompt } from "../../prompts/slots.ts"
import type { LlamaConfig } from "../../models/hfconfig.ts"
import { loadModelConfig } from "../../models/hfconfig.ts"
import { disposeLlama, generate, llamaFromWeights } from "../../models/llama.ts"
import type { HostTensor } from "../../models/safetensors.ts"
import { loadSafetensorsDir, writeSafetensorsFile } from "../../models/safetensors.ts"
import type { TextTokenizer } from "../../models/tokenizer.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { PretrainPart, PretrainSample } from "../../schemas/pretrain.ts"
import type { LmExample } from "../../train/pretrain.ts"
import { pretrainDecoder, progressHook, summariseCurve } from "../../train/pretrain.ts"
import { type DrillText, numberDrill } from "./numberDrill.ts"
import type { TinyDecoderParams } from "./params.ts"

const STAGE = "tinyDecoder"

/** Longest decoder pretraining sequence, in tokens (the sample's sentences are far shorter). */
const MAX_LEN = 192

/** The decoder's pretraining sequences for `english` sentences (see the module comment), then the `drill`'s. */
export const decoderExamples = (
  tokenizer: TextTokenizer,
  english: ReadonlyArray<string>,
  taskTypes: ReadonlyArray<TaskType> = PAPER_TASK_TYPES,
  drill: ReadonlyArray<DrillText> = []
): Array<LmExample> => {
  const bos = tokenizer.bosId
  const eos = tokenizer.eosId
  if (bos === undefined || eos === undefined) throw new Error("the decoder tokenizer has no BOS or EOS token")
  const out: Array<LmExample> = []
  /** Plain text: loss on every token and EOS. */
  const plain = (text: string) => {
    const ids = tokenizer.encode(text, { addSpecialTokens: false }).slice(0, MAX_LEN - 2)
    out.push({ ids: [bos, ...ids, eos], labels: [-100, ...ids, eos] })
  }
  /** A task example: loss on the answer and EOS. */
  const task = (prompt: string, answer: string) => {
    const r = encodeExample(tokenizer, prompt, answer, { maxLen: MAX_LEN, appendEos: true })
    if (r.ok) out.push({ ids: r.example.ids, labels: r.example.labels })
  }
  for (const text of english) {
    plain(text)
    for (const t of taskTypes) {
      const { instruction, answer } = offlineInstructionAndAnswer(t, text)
      task(pretrainPrompt(instruction, text), answer)
    }
  }
  for (const d of drill) {
    if (d.instruction === undefined || d.input === undefined) plain(d.text)
    else task(pretrainPrompt(d.instruction, d.input, d.numbers ?? []), d.text)
  }
  return out
}

/** Pretrains the decoder in `dir` in place (its model.safetensors is rewritten). */
export const pretrainDecoderDir = (
  dir: string,
  english: ReadonlyArray<string>,
  p: TinyDecoderParams,
  seed: number,
  log: (line: string) => void
): Effect.Effect<PretrainPart, StageError> =>
  Effect.gen(function*() {
    const mc = yield* loadModelConfig(dir).pipe(asStageError(STAGE))
    if (mc.kind !== "llama") return yield* new StageError({ stage: STAGE, message: `${dir} is not a Llama`, file: dir })
    const config: LlamaConfig = mc.config
    const tokenizer = yield* loadTokenizer(dir).pipe(asStageError(STAGE))
    const drill = p.numberDrill === true ? numberDrill(english, seed) : []
    const examples = decoderExamples(tokenizer, english, PAPER_TASK_TYPES, drill)
    if (drill.length > 0) log(`number drill: ${drill.length} English sequences with every digit-group token`)
    const init = yield* loadSafetensorsDir(dir).pipe(asStageError(STAGE))
    const always = [tokenizer.eosId!, tokenizer.bosId!]
    const result = yield* Effect.tryPromise({
      try: () =>
        pretrainDecoder(config, init, examples, always, {
          steps: p.steps,
          batchSize: p.batch,
          microBatches: p.microBatches,
          threads: os.availableParallelism(),
          lr: p.lr,
          warmupSteps: p.warmupSteps,
          weightDecay: p.weightDecay,
          seed
        }, progressHook("decoder", p.steps, log)),
      catch: (cause) => new StageError({ stage: STAGE, message: `decoder pretraining: ${String(cause)}`, file: dir, cause })
    })
    if (p.microBatches > 1) log(`decoder: ${p.microBatches} micro-batches per step, on ${result.threads} thread${result.threads === 1 ? "" : "s"}`)
    yield* writeSafetensorsFile(path.join(dir, "model.safetensors"), result.weights).pipe(asStageError(STAGE))
    const samples = yield* decoderSamples(config, result.weights, tokenizer, english, dir)
    return {
      steps: p.steps,
      examples: examples.length,
      vocabulary: result.shortlist.length,
      ...summariseCurve(result.curve),
      samples
    }
  })

/** Greedy continuations: a sentence start, and two tasks on a training sentence. */
const decoderSamples = (
  config: LlamaConfig,
  weights: ReadonlyMap<string, HostTensor>,
  tokenizer: TextTokenizer,
  english: ReadonlyArray<string>,
  dir: string
) =>
  Effect.gen(function*() {
    const model = yield* llamaFromWeights(config, weights, dir).pipe(asStageError(STAGE))
    const text = english[0] ?? "The market opens at seven."
    const words = text.split(/\s+/)
    const prompts: Array<string> = [
      words.slice(0, Math.min(2, words.length)).join(" "),
      pretrainPrompt(offlineInstructionAndAnswer("translate_to_english", text).instruction, text),
      pretrainPrompt(offlineInstructionAndAnswer("summarize_in_english", english[1] ?? text).instruction, english[1] ?? text)
    ]
    const ids = prompts.map((s) => [tokenizer.bosId!, ...tokenizer.encode(s, { addSpecialTokens: false })])
    const out = yield* Effect.tryPromise({
      try: () => generate(model, ids, { maxNewTokens: 40 }),
      catch: (cause) => new StageError({ stage: STAGE, message: `decoder samples: ${String(cause)}`, file: dir, cause })
    })
    const samples: Array<PretrainSample> = prompts.map((prompt, i) => ({
      prompt,
      output: tokenizer.decode(out.tokens[i], { skipSpecialTokens: true })
    }))
    disposeLlama(model)
    return samples
  })
