import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { CheckpointError } from "../../src/models/errors.ts"
import {
  LlamaConfig,
  llamaEosIds,
  loadModelConfig,
  tinyLlamaConfig,
  tinyXlmrConfig,
  writeModelConfig,
  XlmRobertaConfig
} from "../../src/models/hfconfig.ts"

/** config.json of FacebookAI/xlm-roberta-base as published. */
const XLMR_BASE = {
  architectures: ["XLMRobertaForMaskedLM"],
  attention_probs_dropout_prob: 0.1,
  bos_token_id: 0,
  eos_token_id: 2,
  hidden_act: "gelu",
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 514,
  model_type: "xlm-roberta",
  num_attention_heads: 12,
  num_hidden_layers: 12,
  output_past: true,
  pad_token_id: 1,
  position_embedding_type: "absolute",
  transformers_version: "4.17.0.dev0",
  type_vocab_size: 1,
  use_cache: true,
  vocab_size: 250002
}

/** config.json of meta-llama/Llama-3.2-1B-Instruct as published. */
const LLAMA_32_1B_INSTRUCT = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3"
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.45.0.dev0",
  use_cache: true,
  vocab_size: 128256
}

const snapshot = (config: unknown): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-cfg-"))
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2))
  return dir
}
const failure = (dir: string): Promise<CheckpointError> => Effect.runPromise(Effect.flip(loadModelConfig(dir)))

describe("config.json decoding", () => {
  it("decodes xlm-roberta-base, dropping keys it does not use", async () => {
    const mc = await Effect.runPromise(loadModelConfig(snapshot(XLMR_BASE)))
    expect(mc.kind).toBe("xlmr")
    if (mc.kind !== "xlmr") return
    expect(mc.config).toMatchObject({
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      intermediate_size: 3072,
      vocab_size: 250002,
      max_position_embeddings: 514,
      type_vocab_size: 1,
      pad_token_id: 1,
      bos_token_id: 0,
      eos_token_id: 2,
      layer_norm_eps: 1e-5,
      hidden_act: "gelu"
    })
    expect("initializer_range" in mc.config).toBe(false)
    expect("transformers_version" in mc.config).toBe(false)
  })

  it("decodes Llama-3.2-1B-Instruct with its llama3 RoPE scaling and eos list", async () => {
    const mc = await Effect.runPromise(loadModelConfig(snapshot(LLAMA_32_1B_INSTRUCT)))
    expect(mc.kind).toBe("llama")
    if (mc.kind !== "llama") return
    const c = mc.config
    expect(c).toMatchObject({
      hidden_size: 2048,
      num_hidden_layers: 16,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 64,
      intermediate_size: 8192,
      vocab_size: 128256,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      tie_word_embeddings: true,
      bos_token_id: 128000
    })
    expect(c.rope_scaling).toEqual({
      rope_type: "llama3",
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192
    })
    expect(llamaEosIds(c)).toEqual([128001, 128008, 128009])
    expect("torch_dtype" in c).toBe(false)
  })

  it("fills transformers' defaults: head_dim = hidden/heads, kv heads = heads, older rope `type` key", async () => {
    const { head_dim: _h, num_key_value_heads: _k, rope_scaling, ...rest } = LLAMA_32_1B_INSTRUCT
    const { rope_type: _r, ...scaling } = rope_scaling
    const mc = await Effect.runPromise(
      loadModelConfig(snapshot({ ...rest, rope_scaling: { ...scaling, type: "llama3" }, eos_token_id: 128009 }))
    )
    if (mc.kind !== "llama") throw new Error("expected llama")
    expect(mc.config.head_dim).toBe(64)
    expect(mc.config.num_key_value_heads).toBe(32)
    expect(mc.config.rope_scaling?.rope_type).toBe("llama3")
    expect(llamaEosIds(mc.config)).toEqual([128009])
    // A Llama-2 style config: no rope_scaling, default theta, untied.
    const { rope_theta: _t, tie_word_embeddings: _w, ...old } = rest
    const mc2 = await Effect.runPromise(loadModelConfig(snapshot({ ...old, eos_token_id: 2, bos_token_id: 1 })))
    if (mc2.kind !== "llama") throw new Error("expected llama")
    expect(mc2.config.rope_scaling).toBeNull()
    expect(mc2.config.rope_theta).toBe(10000)
    expect(mc2.config.tie_word_embeddings).toBe(false)
  })

  it("picks the architecture from `architectures` when model_type is absent", async () => {
    const { model_type: _m, ...noType } = XLMR_BASE
    const mc = await Effect.runPromise(loadModelConfig(snapshot(noType)))
    expect(mc.kind).toBe("xlmr")
  })

  it("an unknown architecture is an error naming the file and the value", async () => {
    const dir = snapshot({ model_type: "bert", architectures: ["BertModel"], hidden_size: 768 })
    const err = await failure(dir)
    expect(err._tag).toBe("CheckpointError")
    expect(err.file).toBe(path.join(dir, "config.json"))
    expect(err.message).toMatch(/unsupported architecture: model_type "bert", architectures \["BertModel"\]/)
  })

  it("values the architectures cannot run are errors with the field's path", async () => {
    let err = await failure(snapshot({ ...XLMR_BASE, hidden_act: "relu" }))
    expect(err.message).toMatch(/hidden_act/)
    err = await failure(snapshot({ ...LLAMA_32_1B_INSTRUCT, rope_scaling: { rope_type: "yarn", factor: 4 } }))
    expect(err.message).toMatch(/unsupported rope_scaling type "yarn"/)
    err = await failure(snapshot({ ...LLAMA_32_1B_INSTRUCT, num_key_value_heads: 7 }))
    expect(err.message).toMatch(/not a multiple of num_key_value_heads 7/)
    err = await failure(snapshot({ ...LLAMA_32_1B_INSTRUCT, attention_bias: true }))
    expect(err.message).toMatch(/attention_bias/)
    err = await failure(snapshot({ ...XLMR_BASE, vocab_size: "many" }))
    expect(err.message).toMatch(/vocab_size/)
    const missing = fs.mkdtempSync(path.join(os.tmpdir(), "llink-cfg-"))
    err = await failure(missing)
    expect(err.file).toBe(path.join(missing, "config.json"))
    expect(err.message).toMatch(/cannot read config.json/)
  })

  it("tiny presets are valid configs that survive a write/load round trip", async () => {
    expect(Schema.decodeUnknownSync(XlmRobertaConfig)(tinyXlmrConfig)).toEqual(tinyXlmrConfig)
    expect(Schema.decodeUnknownSync(LlamaConfig)(Schema.encodeSync(LlamaConfig)(tinyLlamaConfig))).toEqual(tinyLlamaConfig)
    expect(tinyLlamaConfig.num_attention_heads / tinyLlamaConfig.num_key_value_heads).toBe(2)
    expect(tinyLlamaConfig.head_dim * tinyLlamaConfig.num_attention_heads).toBe(tinyLlamaConfig.hidden_size)
    for (const mc of [
      { kind: "xlmr", config: tinyXlmrConfig },
      { kind: "llama", config: tinyLlamaConfig }
    ] as const) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-cfg-"))
      await Effect.runPromise(writeModelConfig(dir, mc))
      const json = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>
      expect(json.architectures).toEqual(mc.kind === "xlmr" ? ["XLMRobertaModel"] : ["LlamaForCausalLM"])
      expect(await Effect.runPromise(loadModelConfig(dir))).toEqual(mc)
    }
  })
})
