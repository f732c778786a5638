/**
 * Seeded random initialisation of the two architectures, and `initTinyModels`: a tiny encoder/decoder pair written
 * in exactly the Hugging Face snapshot layout (config.json, model.safetensors, tokenizer.json,
 * tokenizer_config.json), so every stage can run end to end without downloading the real models.
 *
 * Initialisation follows `transformers`' `_init_weights`: Linear and Embedding weights N(0, 0.02²), biases 0,
 * LayerNorm/RMSNorm weights 1, and (XLM-R) the padding rows of the word and position embeddings zero. Each tensor draws
 * from its own stream, seeded by (seed, tensor name), so the bytes depend only on the seed and the config.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { CheckpointError } from "./errors.ts"
import type { LlamaConfig, XlmRobertaConfig } from "./hfconfig.ts"
import {
  baseXlmrConfig,
  miniLlamaConfig,
  miniXlmrConfig,
  oneBLlamaConfig,
  tinyLlamaConfig,
  tinyXlmrConfig,
  TINY_XLMR_VOCAB_SIZE,
  writeModelConfig
} from "./hfconfig.ts"
import { llamaTensorSpecs } from "./llama.ts"
import { deriveSeed, fillNormal, makeRng } from "./rng.ts"
import type { HostTensor } from "./safetensors.ts"
import { writeSafetensorsFile, writeShardedSafetensors } from "./safetensors.ts"
import {
  buildUnigramTokenizerJson,
  llama3TokenizerFiles,
  tokenizerFromJson,
  unigramTokenizerConfig,
  writeTokenizerFiles
} from "./tokenizer.ts"
import { xlmrTensorSpecs } from "./xlmr.ts"

/** transformers' default `initializer_range`. */
export const INIT_STD = 0.02

const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

const normalTensor = (seed: number, name: string, shape: ReadonlyArray<number>, std: number): HostTensor => ({
  shape,
  data: fillNormal(makeRng(deriveSeed(seed, name)), size(shape), std)
})

const constTensor = (shape: ReadonlyArray<number>, value: number): HostTensor => ({
  shape,
  data: new Float32Array(size(shape)).fill(value)
})

/** Random XLM-R weights (names without prefix) plus the pooler `XLMRobertaModel` carries. */
export const initXlmrWeights = (config: XlmRobertaConfig, seed: number, std = INIT_STD): Map<string, HostTensor> => {
  const out = new Map<string, HostTensor>()
  const H = config.hidden_size
  const specs = [...xlmrTensorSpecs(config), ["pooler.dense.weight", [H, H]] as const, ["pooler.dense.bias", [H]] as const]
  for (const [name, shape] of specs) {
    if (name.endsWith("LayerNorm.weight")) out.set(name, constTensor(shape, 1))
    else if (name.endsWith(".bias")) out.set(name, constTensor(shape, 0))
    else out.set(name, normalTensor(seed, name, shape, std))
  }
  // nn.Embedding(padding_idx=pad) rows start at zero.
  for (const name of ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"]) {
    const t = out.get(name)!
    t.data.fill(0, config.pad_token_id * H, (config.pad_token_id + 1) * H)
  }
  return out
}

/** Random Llama weights: projections and embeddings N(0, std²), norms 1. */
export const initLlamaWeights = (config: LlamaConfig, seed: number, std = INIT_STD): Map<string, HostTensor> => {
  const out = new Map<string, HostTensor>()
  for (const [name, shape] of llamaTensorSpecs(config)) {
    if (name.endsWith("norm.weight")) out.set(name, constTensor(shape, 1))
    else out.set(name, normalTensor(seed, name, shape, std))
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Tiny snapshots

/** Where the repository's small sample corpus lives, when present (tab-separated Khmer/English lines). */
export const SAMPLE_CORPUS = "datasets/km-en-sample/km-en.sample.tsv"

/** A built-in Khmer + English corpus for the tiny tokenizer when no sample corpus is available. */
export const BUILTIN_SENTENCES: ReadonlyArray<string> = [
  "សួស្តី",
  "Hello",
  "អរគុណច្រើន",
  "Thank you very much",
  "ខ្ញុំស្រឡាញ់ប្រទេសកម្ពុជា",
  "I love Cambodia",
  "ថ្ងៃនេះអាកាសធាតុល្អណាស់",
  "The weather is very nice today",
  "ខ្ញុំចង់ទៅផ្សារ",
  "I want to go to the market",
  "តើអ្នកសុខសប្បាយទេ",
  "How are you",
  "ខ្ញុំសុខសប្បាយ អរគុណ",
  "I am fine, thank you",
  "សៀវភៅនេះល្អណាស់",
  "This book is very good",
  "គាត់ជាគ្រូបង្រៀន",
  "He is a teacher",
  "យើងរៀនភាសាអង់គ្លេស",
  "We are learning English",
  "ភ្នំពេញជារាជធានីនៃប្រទេសកម្ពុជា",
  "Phnom Penh is the capital of Cambodia",
  "ខ្ញុំញ៉ាំបាយរួចហើយ",
  "I have already eaten",
  "ទឹកនេះត្រជាក់",
  "This water is cold",
  "តើម៉ោងប៉ុន្មានហើយ",
  "What time is it",
  "ខ្ញុំមិនយល់ទេ",
  "I do not understand",
  "សូមនិយាយយឺតៗ",
  "Please speak slowly",
  "កុមារកំពុងលេងនៅសាលារៀន",
  "The children are playing at school",
  "ម្ដាយខ្ញុំធ្វើម្ហូបឆ្ងាញ់",
  "My mother cooks delicious food",
  "ភ្លៀងធ្លាក់ខ្លាំងកាលពីយប់មិញ",
  "It rained heavily last night",
  "ប្អូនស្រីខ្ញុំចូលចិត្តអានសៀវភៅ",
  "My younger sister likes reading books",
  "អង្គរវត្តជាប្រាសាទដ៏ល្បីល្បាញ",
  "Angkor Wat is a famous temple",
  "ទន្លេមេគង្គហូរកាត់ប្រទេសកម្ពុជា",
  "The Mekong River flows through Cambodia",
  "ខ្ញុំធ្វើការនៅមន្ទីរពេទ្យ",
  "I work at the hospital",
  "យើងនឹងជួបគ្នានៅថ្ងៃស្អែក",
  "We will meet tomorrow",
  "តម្លៃប៉ុន្មាន",
  "How much does it cost"
]

/** Sentences of a tab-separated corpus: every non-empty field of every line (a header line of plain names skipped). */
export const readCorpusSentences = (file: string): Array<string> => {
  const lines = fs.readFileSync(file, "utf8").split(/\r?\n/).filter((l) => l.trim().length > 0)
  if (lines.length > 0 && lines[0].split("\t").every((f) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(f.trim()))) lines.shift()
  return lines.flatMap((l) => l.split("\t").map((f) => f.trim()).filter((f) => f.length > 0))
}

/** The default sentences of the tiny tokenizer: the sample corpus under `repoRoot` if present, else the built-in list. */
export const defaultTinySentences = (repoRoot: string = process.cwd()): ReadonlyArray<string> => {
  const file = path.join(repoRoot, SAMPLE_CORPUS)
  if (fs.existsSync(file)) {
    const s = readCorpusSentences(file)
    if (s.length > 0) return s
  }
  return BUILTIN_SENTENCES
}

export interface InitTinyOptions {
  readonly seed: number
  /** Text for the encoder's Unigram tokenizer. Default: `defaultTinySentences()`. */
  readonly sentences?: ReadonlyArray<string>
  /** "test" (default: `tinyXlmrConfig`, `tinyLlamaConfig`) or "mini" (`miniXlmrConfig`, `miniLlamaConfig`). */
  readonly size?: "test" | "mini"
}

export interface TinyModelDirs {
  readonly encoder: string
  readonly decoder: string
}

/** The real Llama-3 tokenizer files into a decoder folder, as Llama-3.2-Instruct ships them. */
const writeLlama3Tokenizer = (decoder: string) =>
  Effect.gen(function*() {
    const files = yield* Effect.try({
      try: () => llama3TokenizerFiles(),
      catch: (e) =>
        e instanceof CheckpointError ? e : new CheckpointError({ file: decoder, message: `Llama-3 tokenizer: ${String(e)}` })
    })
    yield* writeTokenizerFiles(decoder, files.tokenizer, files.config)
  })

const makeFolder = (dir: string) =>
  Effect.try({
    try: () => fs.mkdirSync(dir, { recursive: true }),
    catch: (e) => new CheckpointError({ file: dir, message: `cannot create the output folder: ${String(e)}` })
  })

/**
 * Writes a tiny XLM-R into `dir` with a Unigram tokenizer trained on `sentences` (its `vocab_size` is the
 * tokenizer's), seeded from (`seed`, "encoder").
 */
export const initTinyEncoder = Effect.fn("Init.tinyEncoder")(function*(dir: string, options: InitTinyOptions) {
  yield* makeFolder(dir)
  // Tokenizer first, so the config's vocab_size matches it.
  const sentences = options.sentences ?? defaultTinySentences()
  const tokJson = buildUnigramTokenizerJson(sentences, { vocabSize: TINY_XLMR_VOCAB_SIZE })
  const tokConfig = unigramTokenizerConfig()
  const vocabSize = yield* Effect.try({
    try: () => tokenizerFromJson(tokJson, tokConfig, { source: path.join(dir, "tokenizer.json") }).vocabSize,
    catch: (e) =>
      e instanceof CheckpointError ? e : new CheckpointError({ file: dir, message: `tiny tokenizer: ${String(e)}` })
  })
  const xcfg: XlmRobertaConfig = { ...(options.size === "mini" ? miniXlmrConfig : tinyXlmrConfig), vocab_size: vocabSize }
  yield* writeModelConfig(dir, { kind: "xlmr", config: xcfg })
  yield* writeSafetensorsFile(path.join(dir, "model.safetensors"), initXlmrWeights(xcfg, deriveSeed(options.seed, "encoder")))
  yield* writeTokenizerFiles(dir, tokJson, tokConfig)
})

/** Writes a tiny Llama into `dir` with the real Llama-3 tokenizer (as Llama-3.2-Instruct ships it), seeded from
 *  (`seed`, "decoder"). `sentences` is not used. */
export const initTinyDecoder = Effect.fn("Init.tinyDecoder")(function*(dir: string, options: InitTinyOptions) {
  yield* makeFolder(dir)
  const lcfg: LlamaConfig = options.size === "mini" ? miniLlamaConfig : tinyLlamaConfig
  yield* writeModelConfig(dir, { kind: "llama", config: lcfg })
  yield* writeSafetensorsFile(path.join(dir, "model.safetensors"), initLlamaWeights(lcfg, deriveSeed(options.seed, "decoder")))
  yield* writeLlama3Tokenizer(dir)
})

/** Writes `outDir/encoder` (`initTinyEncoder`) and `outDir/decoder` (`initTinyDecoder`). */
export const initTinyModels = Effect.fn("Init.tinyModels")(function*(outDir: string, options: InitTinyOptions) {
  const encoder = path.join(outDir, "encoder")
  const decoder = path.join(outDir, "decoder")
  yield* initTinyEncoder(encoder, options)
  yield* initTinyDecoder(decoder, options)
  const dirs: TinyModelDirs = { encoder, decoder }
  return dirs
})

/**
 * Writes `outDir/encoder` and `outDir/decoder` with the real models' shapes (`xlm-roberta-base`,
 * `Llama-3.2-1B-Instruct`) and seeded random weights, in 2 GiB safetensors shards as `save_pretrained` writes them:
 * for checking numerics and speed at real size (`llink forward`, bench/device) where the real weights are absent.
 * The decoder gets the real Llama-3 tokenizer; the encoder none (its 250,002-entry SentencePiece vocabulary cannot be
 * made here), so it is for `forward` by token ids, not for a pipeline run. Float32: 1.1 GB + 4.9 GB.
 */
export const initPaperShapedModels = Effect.fn("Init.paperShapedModels")(function*(outDir: string, options: { readonly seed: number }) {
  const encoder = path.join(outDir, "encoder")
  const decoder = path.join(outDir, "decoder")
  const maxShardBytes = 2 * 1024 ** 3
  yield* writeModelConfig(encoder, { kind: "xlmr", config: baseXlmrConfig })
  yield* writeShardedSafetensors(encoder, initXlmrWeights(baseXlmrConfig, deriveSeed(options.seed, "encoder")), { maxShardBytes })
  yield* writeModelConfig(decoder, { kind: "llama", config: oneBLlamaConfig })
  yield* writeShardedSafetensors(decoder, initLlamaWeights(oneBLlamaConfig, deriveSeed(options.seed, "decoder")), { maxShardBytes })
  yield* writeLlama3Tokenizer(decoder)
  const dirs: TinyModelDirs = { encoder, decoder }
  return dirs
})
