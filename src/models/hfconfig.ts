/**
 * `config.json` of Hugging Face snapshots, as Schemas: one per architecture this project runs (XLM-R encoder,
 * Llama decoder). Decoding keeps only the fields listed here (unknown keys such as `torch_dtype` or
 * `transformers_version` are allowed and dropped), fills the defaults `transformers` would (e.g. Llama `head_dim` =
 * hidden / heads, `num_key_value_heads` = heads), and rejects values the architectures cannot run (another
 * activation, another RoPE scaling type, biases in Llama).
 *
 * `loadModelConfig(dir)` picks the architecture from `model_type` (or `architectures`) and decodes with the right
 * Schema; any problem is a `CheckpointError` naming the file and the offending value.
 *
 * The tiny presets (`tinyXlmrConfig`, `tinyLlamaConfig`) keep every structural feature of the real models (XLM-R's
 * padding offset in position ids, Llama's GQA, llama3 RoPE scaling, tied embeddings) at test size.
 */
import { Effect, Schema, SchemaTransformation } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { CheckpointError } from "./errors.ts"
import { describeError } from "../errors/describe.ts"
import { dflt } from "../schemas/fields.ts"


const PosInt = Schema.Int.check(Schema.isGreaterThan(0))
const NonNegInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PosNumber = Schema.Finite.check(Schema.isGreaterThan(0))

// ---------------------------------------------------------------------------------------------------------------
// XLM-RoBERTa

/** `config.json` of an XLM-RoBERTa encoder (`xlm-roberta-base`: 768 hidden, 12 layers, vocab 250002). */
export const XlmRobertaConfig = Schema.Struct({
  model_type: Schema.Literal("xlm-roberta"),
  architectures: Schema.optionalKey(Schema.Array(Schema.String)),
  vocab_size: PosInt,
  hidden_size: PosInt,
  num_hidden_layers: PosInt,
  num_attention_heads: PosInt,
  intermediate_size: PosInt,
  /** Only the exact (erf) GELU is implemented. */
  hidden_act: Schema.Literal("gelu"),
  layer_norm_eps: PosNumber,
  /** 514 for XLM-R: positions start at pad_token_id + 1, so 512 usable positions. */
  max_position_embeddings: PosInt,
  type_vocab_size: PosInt,
  pad_token_id: NonNegInt,
  bos_token_id: NonNegInt,
  eos_token_id: NonNegInt,
  position_embedding_type: dflt(Schema.Literal("absolute"), "absolute")
}).check(
  Schema.makeFilter((c) => {
    const issues: Array<Schema.FilterIssue> = []
    if (c.hidden_size % c.num_attention_heads !== 0) {
      issues.push({
        path: ["num_attention_heads"],
        issue: `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`
      })
    }
    if (c.max_position_embeddings <= c.pad_token_id + 1) {
      issues.push({
        path: ["max_position_embeddings"],
        issue: `max_position_embeddings ${c.max_position_embeddings} leaves no position after the padding offset ${c.pad_token_id + 1}`
      })
    }
    for (const key of ["pad_token_id", "bos_token_id", "eos_token_id"] as const) {
      if (c[key] >= c.vocab_size) issues.push({ path: [key], issue: `${key} ${c[key]} is outside vocab_size ${c.vocab_size}` })
    }
    return issues
  })
)
export type XlmRobertaConfig = typeof XlmRobertaConfig.Type

// ---------------------------------------------------------------------------------------------------------------
// Llama

/** `rope_scaling` of Llama 3.1/3.2: wavelengths above original/low_freq are divided by `factor`, below
 *  original/high_freq kept, and interpolated in between. */
export const Llama3RopeScaling = Schema.Struct({
  rope_type: Schema.Literal("llama3"),
  factor: PosNumber,
  low_freq_factor: PosNumber,
  high_freq_factor: PosNumber,
  original_max_position_embeddings: PosInt
})
export type Llama3RopeScaling = typeof Llama3RopeScaling.Type

const EosIds = Schema.Union([NonNegInt, Schema.Array(NonNegInt)])

const llamaCommon = {
  model_type: Schema.Literal("llama"),
  architectures: Schema.optionalKey(Schema.Array(Schema.String)),
  vocab_size: PosInt,
  hidden_size: PosInt,
  intermediate_size: PosInt,
  num_hidden_layers: PosInt,
  num_attention_heads: PosInt,
  rms_norm_eps: PosNumber,
  max_position_embeddings: PosInt,
  bos_token_id: NonNegInt,
  eos_token_id: EosIds,
  pad_token_id: Schema.optionalKey(Schema.NullOr(NonNegInt))
}

/** What config.json may contain (transformers' defaults fill the optional keys). */
const LlamaConfigFile = Schema.Struct({
  ...llamaCommon,
  num_key_value_heads: Schema.optionalKey(PosInt),
  head_dim: Schema.optionalKey(PosInt),
  rope_theta: dflt(PosNumber, 10000),
  rope_scaling: dflt(Schema.NullOr(Llama3RopeScaling), null),
  tie_word_embeddings: dflt(Schema.Boolean, false),
  hidden_act: dflt(Schema.Literal("silu"), "silu"),
  /** Biases are not implemented: only `false` decodes. */
  attention_bias: dflt(Schema.Literal(false), false),
  mlp_bias: dflt(Schema.Literal(false), false)
})

/** The decoded Llama config: `num_key_value_heads` and `head_dim` always present. */
const LlamaConfigResolved = Schema.Struct({
  ...llamaCommon,
  num_key_value_heads: PosInt,
  head_dim: PosInt,
  rope_theta: PosNumber,
  rope_scaling: Schema.NullOr(Llama3RopeScaling),
  tie_word_embeddings: Schema.Boolean,
  hidden_act: Schema.Literal("silu"),
  attention_bias: Schema.Literal(false),
  mlp_bias: Schema.Literal(false)
}).check(
  Schema.makeFilter((c) => {
    const issues: Array<Schema.FilterIssue> = []
    if (c.num_attention_heads % c.num_key_value_heads !== 0) {
      issues.push({
        path: ["num_key_value_heads"],
        issue: `num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`
      })
    }
    if (c.head_dim % 2 !== 0) issues.push({ path: ["head_dim"], issue: `head_dim ${c.head_dim} must be even for RoPE` })
    const eos = typeof c.eos_token_id === "number" ? [c.eos_token_id] : c.eos_token_id
    for (const id of [c.bos_token_id, ...eos]) {
      if (id >= c.vocab_size) issues.push({ path: ["eos_token_id"], issue: `token id ${id} is outside vocab_size ${c.vocab_size}` })
    }
    return issues
  })
)

/** `config.json` of a Llama decoder (`Llama-3.2-1B-Instruct`: 2048 hidden, 16 layers, 32/8 heads, head_dim 64). */
export const LlamaConfig = LlamaConfigFile.pipe(
  Schema.decodeTo(
    LlamaConfigResolved,
    SchemaTransformation.transform({
      decode: (f: typeof LlamaConfigFile.Type): typeof LlamaConfigResolved.Encoded => ({
        ...f,
        num_key_value_heads: f.num_key_value_heads ?? f.num_attention_heads,
        head_dim: f.head_dim ?? f.hidden_size / f.num_attention_heads
      }),
      encode: (r: typeof LlamaConfigResolved.Encoded): typeof LlamaConfigFile.Type => r
    })
  )
)
export type LlamaConfig = typeof LlamaConfig.Type

/** The end-of-sequence ids of a Llama config as a list. */
export const llamaEosIds = (c: LlamaConfig): ReadonlyArray<number> =>
  typeof c.eos_token_id === "number" ? [c.eos_token_id] : c.eos_token_id

// ---------------------------------------------------------------------------------------------------------------
// Picking the architecture

export type ModelConfig =
  | { readonly kind: "xlmr"; readonly config: XlmRobertaConfig }
  | { readonly kind: "llama"; readonly config: LlamaConfig }

const XLMR_ARCHITECTURES = ["XLMRobertaModel", "XLMRobertaForMaskedLM", "XLMRobertaForSequenceClassification"]
const LLAMA_ARCHITECTURES = ["LlamaForCausalLM", "LlamaModel"]

/** Which architecture a parsed config.json describes, or an explanation of why none fits. */
const detectKind = (json: Record<string, unknown>): "xlmr" | "llama" | string => {
  const modelType = json.model_type
  if (modelType === "xlm-roberta") return "xlmr"
  if (modelType === "llama") return "llama"
  const archs = Array.isArray(json.architectures) ? json.architectures.filter((a) => typeof a === "string") : []
  if (modelType === undefined) {
    if (archs.some((a) => XLMR_ARCHITECTURES.includes(a))) return "xlmr"
    if (archs.some((a) => LLAMA_ARCHITECTURES.includes(a))) return "llama"
  }
  return `unsupported architecture: model_type ${JSON.stringify(modelType)}, architectures ${JSON.stringify(
    json.architectures ?? null
  )} (supported: model_type "xlm-roberta" or "llama")`
}

/** Decode an already parsed config.json (`file` names it in errors). */
export const decodeModelConfig = (json: unknown, file: string): Effect.Effect<ModelConfig, CheckpointError> =>
  Effect.gen(function*() {
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
      return yield* Effect.fail(new CheckpointError({ file, message: "config.json is not a JSON object" }))
    }
    const kind = detectKind(json as Record<string, unknown>)
    // A config without model_type but with a known architecture is decoded as that type.
    const withType: Record<string, unknown> = { model_type: kind === "xlmr" ? "xlm-roberta" : "llama", ...(json as Record<string, unknown>) }
    const toError = (e: { readonly message: string }) =>
      new CheckpointError({ file, message: `invalid ${kind === "xlmr" ? "XLM-RoBERTa" : "Llama"} config: ${e.message}` })
    if (kind === "xlmr") {
      const config = yield* Schema.decodeUnknownEffect(XlmRobertaConfig)(withType).pipe(Effect.mapError(toError))
      return { kind: "xlmr", config } as const
    }
    if (kind === "llama") {
      const scaling = withType.rope_scaling
      if (scaling !== null && typeof scaling === "object" && !Array.isArray(scaling)) {
        // transformers accepts the older key `type` for `rope_type`.
        const { type, ...rest } = scaling as Record<string, unknown>
        const ropeType = rest.rope_type ?? type
        if (ropeType !== "llama3") {
          return yield* Effect.fail(
            new CheckpointError({
              file,
              message: `unsupported rope_scaling type ${JSON.stringify(ropeType)} (only "llama3" or null is implemented)`
            })
          )
        }
        withType.rope_scaling = { ...rest, rope_type: ropeType }
      }
      const config = yield* Schema.decodeUnknownEffect(LlamaConfig)(withType).pipe(Effect.mapError(toError))
      return { kind: "llama", config } as const
    }
    return yield* Effect.fail(new CheckpointError({ file, message: kind }))
  })

/** The config.json path for a snapshot folder, or the file itself when given one. */
const configPath = (dirOrFile: string): string =>
  fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isDirectory() ? path.join(dirOrFile, "config.json") : dirOrFile

/** Read and decode `config.json` of a snapshot folder (or a config file path). */
export const loadModelConfig = (dir: string): Effect.Effect<ModelConfig, CheckpointError> =>
  Effect.gen(function*() {
    const file = configPath(dir)
    const json = yield* Effect.try({
      try: () => JSON.parse(fs.readFileSync(file, "utf8")) as unknown,
      catch: (e) => new CheckpointError({ file, message: `cannot read config.json: ${describeError(e)}` })
    })
    return yield* decodeModelConfig(json, file)
  })

/** The config.json object to write for a model config (what `from_pretrained` reads back). */
export const modelConfigJson = (mc: ModelConfig): Record<string, unknown> => {
  if (mc.kind === "xlmr") {
    const encoded = Schema.encodeSync(XlmRobertaConfig)(mc.config)
    return { architectures: ["XLMRobertaModel"], ...encoded, torch_dtype: "float32" }
  }
  const encoded = Schema.encodeSync(LlamaConfig)(mc.config)
  return { architectures: ["LlamaForCausalLM"], ...encoded, torch_dtype: "float32" }
}

/** Write `config.json` into `dir` (created if needed). */
export const writeModelConfig = (dir: string, mc: ModelConfig): Effect.Effect<void, CheckpointError> => {
  const file = path.join(dir, "config.json")
  return Effect.try({
    try: () => {
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(file, `${JSON.stringify(modelConfigJson(mc), null, 2)}\n`)
    },
    catch: (e) => new CheckpointError({ file, message: `cannot write config.json: ${describeError(e)}` })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Tiny presets

/** Vocabulary size of the tiny XLM-R preset's Unigram tokenizer (built by `buildUnigramTokenizerJson`). */
export const TINY_XLMR_VOCAB_SIZE = 1000

/**
 * Tiny XLM-R: hidden 32, 2 layers, 4 heads, intermediate 64, 514 positions (padding offset kept). `vocab_size` is
 * that of the tiny Unigram tokenizer; when the tokenizer is built from other text, override it with the
 * tokenizer's `vocabSize` (`{ ...tinyXlmrConfig, vocab_size: tok.vocabSize }`).
 */
export const tinyXlmrConfig: XlmRobertaConfig = {
  model_type: "xlm-roberta",
  architectures: ["XLMRobertaModel"],
  vocab_size: TINY_XLMR_VOCAB_SIZE,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 64,
  hidden_act: "gelu",
  layer_norm_eps: 1e-5,
  max_position_embeddings: 514,
  type_vocab_size: 1,
  pad_token_id: 1,
  bos_token_id: 0,
  eos_token_id: 2,
  position_embedding_type: "absolute"
}

/** The shape of `xlm-roberta-base` (768 hidden, 12 layers, 12 heads, vocab 250,002), for random checkpoints. */
export const baseXlmrConfig: XlmRobertaConfig = {
  ...tinyXlmrConfig,
  vocab_size: 250002,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072
}

/**
 * Tiny Llama with the real Llama-3 tokenizer: hidden 64, 2 layers, 4 heads over 2 KV heads (GQA), head_dim 16,
 * intermediate 128, vocab 128256, rope_theta 500000 with llama3 scaling, tied embeddings.
 */
export const tinyLlamaConfig: LlamaConfig = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 128256,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: {
    rope_type: "llama3",
    factor: 32,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192
  },
  tie_word_embeddings: true,
  max_position_embeddings: 131072,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: "silu",
  attention_bias: false,
  mlp_bias: false
}

/** The shape of Llama-3.2-1B-Instruct (2,048 hidden, 16 layers, 32 heads over 8 KV heads, 8,192 intermediate). */
export const oneBLlamaConfig: LlamaConfig = {
  ...tinyLlamaConfig,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64
}

/**
 * The embedded default's miniature XLM-R (pretrained by the `models` stage with masked-LM): hidden 64, 2 layers,
 * 4 heads, intermediate 256. `vocab_size` is set to its Unigram tokenizer's, as for `tinyXlmrConfig`.
 */
export const miniXlmrConfig: XlmRobertaConfig = {
  ...tinyXlmrConfig,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 256
}

/**
 * The embedded default's miniature Llama (pretrained by the `models` stage on English): hidden 128, 2 layers, 4 heads
 * over 2 KV heads (head_dim 32), intermediate 384, the real Llama-3 tokenizer, and an untied head whose rows are zero
 * for every token its pretraining never produced (see `src/train/pretrain.ts`).
 */
export const miniLlamaConfig: LlamaConfig = {
  ...tinyLlamaConfig,
  hidden_size: 128,
  intermediate_size: 384,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
  tie_word_embeddings: false
}
