import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { NodeServices } from "@effect/platform-node"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { TensorBackend } from "../../src/backend/tensorBackend.ts"
import { forwardCommand, forwardHidden, parseIds } from "../../src/cli/forward.ts"
import { initModelsCommand } from "../../src/cli/initModels.ts"
import { loadModelConfig, tinyLlamaConfig } from "../../src/models/hfconfig.ts"
import { BUILTIN_SENTENCES, initLlamaWeights, initTinyModels, initXlmrWeights } from "../../src/models/init.ts"
import { disposeLlama, forward, loadDecoder } from "../../src/models/llama.ts"
import { disposeLora, loraVariables } from "../../src/models/lora.ts"
import { fillNormal, makeRng } from "../../src/models/rng.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"
import { readSafetensorsFile, writeSafetensorsFile } from "../../src/models/safetensors.ts"
import { loadTokenizer, reservedTokens } from "../../src/models/tokenizer.ts"
import { disposeXlmr, embedSentences, encode, loadEncoder } from "../../src/models/xlmr.ts"
import { maskedMaxDiff, setupCpu, smallXlmr, toMats } from "../support/modelFixtures.ts"
import { llamaLogits, llamaReference, maxAbsDiff, xlmrReference } from "../support/reference.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-init-"))
const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")
const run = <A, E>(e: Effect.Effect<A, E, TensorBackend>) => Effect.runPromise(e.pipe(Effect.provide(TensorBackend.layer)))

beforeAll(async () => {
  await setupCpu()
  await run(initTinyModels(path.join(tmp, "a"), { seed: 3 }))
})
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

describe("rng", () => {
  it("is deterministic per seed, forks independent streams, and gives unit normals", () => {
    const a = makeRng(42)
    const b = makeRng(42)
    const xs = Array.from({ length: 5 }, () => a.nextU32())
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(xs)
    expect(makeRng(43).nextU32()).not.toBe(xs[0])
    expect(makeRng(42).fork(1).nextU32()).not.toBe(makeRng(42).fork(2).nextU32())
    const n = fillNormal(makeRng(7), 20000, 1)
    const mean = n.reduce((s, v) => s + v, 0) / n.length
    const variance = n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length
    expect(Math.abs(mean)).toBeLessThan(0.03)
    expect(Math.abs(variance - 1)).toBeLessThan(0.05)
  })
})

describe("seeded initialisation", () => {
  it("same seed → identical bytes; another seed → different ones", async () => {
    await run(initTinyModels(path.join(tmp, "b"), { seed: 3 }))
    await run(initTinyModels(path.join(tmp, "c"), { seed: 4 }))
    for (const part of ["encoder", "decoder"]) {
      for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
        expect(sha(path.join(tmp, "a", part, f))).toBe(sha(path.join(tmp, "b", part, f)))
      }
      expect(sha(path.join(tmp, "a", part, "model.safetensors"))).not.toBe(sha(path.join(tmp, "c", part, "model.safetensors")))
    }
  })

  it("follows transformers' init: N(0, 0.02²) weights, unit norms, zero biases, zero padding rows", () => {
    const x = initXlmrWeights(smallXlmr, 1)
    const word = x.get("embeddings.word_embeddings.weight")!
    const H = smallXlmr.hidden_size
    expect(word.data.subarray(H, 2 * H).every((v) => v === 0)).toBe(true) // pad id 1
    expect(x.get("encoder.layer.0.output.LayerNorm.weight")!.data.every((v) => v === 1)).toBe(true)
    expect(x.get("encoder.layer.0.intermediate.dense.bias")!.data.every((v) => v === 0)).toBe(true)
    const l = initLlamaWeights(tinyLlamaConfig, 1)
    expect(l.has("lm_head.weight")).toBe(false)
    const emb = l.get("model.embed_tokens.weight")!.data
    const std = Math.sqrt(emb.reduce((s, v) => s + v * v, 0) / emb.length)
    expect(Math.abs(std - 0.02)).toBeLessThan(0.0005)
    expect(l.get("model.norm.weight")!.data.every((v) => v === 1)).toBe(true)
  })
})

describe("init-models round trip", () => {
  const enc = path.join(tmp, "a", "encoder")
  const dec = path.join(tmp, "a", "decoder")

  it("writes exactly the Hugging Face layout", () => {
    for (const dir of [enc, dec]) {
      expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    }
  })

  it("encoder: config, tokenizer and weights load back and run", async () => {
    const mc = await run(loadModelConfig(enc))
    expect(mc.kind).toBe("xlmr")
    const tok = await run(loadTokenizer(enc))
    expect(mc.config.vocab_size).toBe(tok.vocabSize)
    const ids = tok.encode(BUILTIN_SENTENCES[4])
    expect(ids[0]).toBe(0)
    expect(ids[ids.length - 1]).toBe(2)
    const model = await run(loadEncoder(enc))
    expect(model.config.hidden_size).toBe(32)
    const z = embedSentences(model, { ids: [[...ids]] })
    expect(z.shape).toEqual([1, 32])
    expect(z.dataSync().every(Number.isFinite)).toBe(true)
    z.dispose()
    disposeXlmr(model)
  })

  it("decoder: the tokenizer is Llama-3.2-Instruct's (BOS prepended, eos <|eot_id|>) and the model runs", async () => {
    const mc = await run(loadModelConfig(dec))
    expect(mc.kind).toBe("llama")
    const tok = await run(loadTokenizer(dec))
    const bundled = await run(loadTokenizer("llama3"))
    for (const text of ["Hello world", "ខ្ញុំស្រឡាញ់ប្រទេសកម្ពុជា", "<|eot_id|> x <|python_tag|>"]) {
      expect(tok.encode(text)).toEqual(bundled.encode(text))
    }
    expect(tok.encode("Hi")[0]).toBe(128000)
    expect(tok.eosId).toBe(128009)
    const model = await run(loadDecoder(dec))
    expect(model.config.vocab_size).toBe(128256)
    expect(model.tied).toBe(true)
    const ids = [...tok.encode("Hello world")]
    const out = forward(model, { ids: [ids] })
    expect(out.hidden.shape).toEqual([1, ids.length, 64])
    out.hidden.dispose()
    disposeLlama(model)
  })

  it("the preset models match the float64 reference (weights read back from model.safetensors)", async () => {
    const xm = await run(loadModelConfig(enc))
    const lm = await run(loadModelConfig(dec))
    if (xm.kind !== "xlmr" || lm.kind !== "llama") throw new Error("wrong kinds")
    const encoder = await run(loadEncoder(enc))
    const ids = [[0, 9, 10, 11, 12, 2]]
    const mask = [[1, 1, 1, 1, 1, 1]]
    const he = encode(encoder, { ids })
    const xw = await run(readSafetensorsFile(path.join(enc, "model.safetensors")))
    expect(maskedMaxDiff(toMats(he), xlmrReference(xm.config, xw, ids, mask), mask)).toBeLessThan(1e-4)
    he.dispose()
    disposeXlmr(encoder)
    const decoder = await run(loadDecoder(dec))
    const dids = [[128000, 9906, 1917, 0, 128009]]
    const out = forward(decoder, { ids: dids }, { gather: { batch: [0], position: [4] }, logits: true })
    const lw = await run(readSafetensorsFile(path.join(dec, "model.safetensors")))
    const ref = llamaReference(lm.config, lw, dids, mask.map((r) => r.slice(1)))
    expect(maxAbsDiff(out.hidden.dataSync(), ref[0][4])).toBeLessThan(1e-4)
    const refLogits = llamaLogits([ref[0][4]], lw.get("model.embed_tokens.weight")!)[0]
    expect(maxAbsDiff(out.logits!.dataSync(), refLogits)).toBeLessThan(1e-4)
    tf.dispose([out.hidden, out.logits!])
    disposeLlama(decoder)
  })

  it("decoder with added tokens and LoRA", async () => {
    const added = reservedTokens(8)
    const tok = await run(loadTokenizer(dec, { addedTokens: added }))
    const model = await run(loadDecoder(dec, { addedTokens: added, embeddingInit: "zeros", lora: { config: { rank: 2, alpha: 4, dropout: 0, targets: ["q", "v"] }, seed: 1 } }))
    expect(model.config.vocab_size).toBe(128256 + 11)
    expect(tok.vocabSize).toBe(model.config.vocab_size)
    const fEmb = tok.tokenToId("<foreign_emb>")!
    expect(fEmb).toBeGreaterThanOrEqual(128256)
    const row = tf.tidy(() => tf.gather(model.embed, [fEmb]).dataSync())
    expect(row.every((v) => v === 0)).toBe(true)
    expect(loraVariables(model.lora!).length).toBe(2 * 2 * 2)
    const ids = [...tok.encode("Translate <foreign><foreign_emb></foreign>")]
    expect(ids).toContain(fEmb)
    const out = forward(model, { ids: [ids] }, { gather: { batch: [0], position: [ids.length - 1] }, logits: true })
    expect(out.logits!.shape).toEqual([1, 128267])
    tf.dispose([out.hidden, out.logits!])
    disposeLora(model.lora!)
    disposeLlama(model)
  })

  it("a checkpoint with roberta.-prefixed names loads; a missing tensor names itself and the folder", async () => {
    const dir = path.join(tmp, "prefixed")
    fs.cpSync(enc, dir, { recursive: true })
    const weights = await run(readSafetensorsFile(path.join(enc, "model.safetensors")))
    const prefixed = new Map<string, HostTensor>([...weights].map(([k, v]) => [`roberta.${k}`, v]))
    await run(writeSafetensorsFile(path.join(dir, "model.safetensors"), prefixed))
    const a = await run(loadEncoder(enc))
    const b = await run(loadEncoder(dir))
    const ids = { ids: [[0, 5, 6, 7, 2]] }
    const ha = encode(a, ids)
    const hb = encode(b, ids)
    expect(maxAbsDiff(ha.dataSync(), hb.dataSync())).toBe(0)
    tf.dispose([ha, hb])
    disposeXlmr(a)
    disposeXlmr(b)
    prefixed.delete("roberta.encoder.layer.1.output.dense.weight")
    await run(writeSafetensorsFile(path.join(dir, "model.safetensors"), prefixed))
    const err = await run(Effect.flip(loadEncoder(dir)))
    expect(err.tensor).toBe("roberta.encoder.layer.1.output.dense.weight")
    expect(err.message).toContain(dir)
  })
})

describe("CLI", () => {
  it("parses ids", () => {
    expect(parseIds("0,17, 5,2")).toEqual([0, 17, 5, 2])
    expect(() => parseIds("0,,2")).toThrow()
    expect(() => parseIds("1.5")).toThrow()
  })

  it("forward prints the final hidden states as JSON (encoder and decoder)", async () => {
    const lines: Array<string> = []
    const spy = vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
      lines.push(args.map(String).join(" "))
    })
    try {
      for (const [part, ids] of [["encoder", [0, 17, 5, 2]], ["decoder", [128000, 9906, 1917]]] as const) {
        const dir = path.join(tmp, "a", part)
        lines.length = 0
        await run(Command.runWith(forwardCommand, { version: "0" })(["--model", dir, "--ids", ids.join(",")]).pipe(Effect.provide(NodeServices.layer)))
        const printed = JSON.parse(lines.join("\n")) as { backend: string; hidden: Array<Array<number>> }
        const direct = await run(forwardHidden(dir, ids))
        expect(printed.hidden.length).toBe(ids.length)
        expect(printed.hidden[0].length).toBe(part === "encoder" ? 32 : 64)
        expect(printed.hidden).toEqual(direct.hidden)
        expect(printed.backend).toBe(direct.backend)
      }
    } finally {
      spy.mockRestore()
    }
  })

  it("forward --logits prints the decoder's logits, and refuses for an encoder", async () => {
    const dir = path.join(tmp, "a", "decoder")
    const ids = [128000, 9906, 1917]
    const withLogits = await run(forwardHidden(dir, ids, { logits: true }))
    const plain = await run(forwardHidden(dir, ids))
    expect(withLogits.hidden).toEqual(plain.hidden)
    expect(plain.logits).toBeUndefined()
    const logits = withLogits.logits ?? []
    expect(logits.length).toBe(ids.length)
    // the logit of token v at position t is hidden[t] · lm_head[v]; check one by hand
    const model = await run(loadDecoder(dir))
    const head = model.lmHead.slice([9906, 0], [1, 64])
    const row = (await head.data()) as Float32Array
    head.dispose()
    disposeLlama(model)
    const dot = withLogits.hidden[2].reduce((acc, h, k) => acc + h * row[k], 0)
    expect(Math.abs(logits[2][9906] - dot)).toBeLessThan(1e-4 * Math.max(1, Math.abs(dot)))
    await expect(run(forwardHidden(path.join(tmp, "a", "encoder"), [0, 5], { logits: true }))).rejects.toThrow(/--logits needs a decoder/)
  })

  it("init-models writes the pair from the command line", async () => {
    const out = path.join(tmp, "cli")
    const spy = vi.spyOn(console, "log").mockImplementation(() => undefined)
    try {
      await run(Command.runWith(initModelsCommand, { version: "0" })(["--preset", "tiny", "--out", out, "--seed", "3"]).pipe(Effect.provide(NodeServices.layer)))
    } finally {
      spy.mockRestore()
    }
    expect(sha(path.join(out, "decoder", "model.safetensors"))).toBe(sha(path.join(tmp, "a", "decoder", "model.safetensors")))
    expect(sha(path.join(out, "encoder", "model.safetensors"))).toBe(sha(path.join(tmp, "a", "encoder", "model.safetensors")))
  })
})
