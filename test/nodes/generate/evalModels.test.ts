/**
 * `generate`, `retrievalFull` and `testSetsFull` on tiny seeded models (tiny Llama with the real Llama-3 tokenizer): fixtures are a
 * `models` artifact from the models stage, a random projector, a random slot module, random LoRA adapters for Stage B
 * and the fine-tune, random z_F / h_E matrices and `sft.eval` from the offline synthesizer.
 *
 * Checked: the generations table (every example, prompt token counts equal to independently built prompts), LLINK
 * depends on the injected vectors while base and fine-tune do not, resume from the scratch batches gives the same
 * table, and the retrieval numbers equal an independent computation (mean slot / teacher-style fine-tune vectors).
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { TensorBackend } from "../../../src/backend/tensorBackend.ts"
import { Effect, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { retrievalMetrics } from "../../../src/metrics/retrieval.ts"
import { disposeLlama, loadDecoder, withLora } from "../../../src/models/llama.ts"
import { createLora, defaultLoraConfig, disposeLora, loadLora, loraVariables, saveLora } from "../../../src/models/lora.ts"
import * as Projector from "../../../src/models/projector.ts"
import { disposeSlots, initSlots, loadSlotHost, makeSlotConfig, saveSlots, SLOTS_FILE } from "../../../src/models/slots.ts"
import { loadTokenizer } from "../../../src/models/tokenizer.ts"
import { makeRng } from "../../../src/models/rng.ts"
import { generate } from "../../../src/nodes/generate/stage.ts"
import { retrievalFull } from "../../../src/nodes/retrievalFull/stage.ts"
import { retrievalPeers } from "../../../src/nodes/retrievalPeers/stage.ts"
import { synthesize } from "../../../src/nodes/synthesize/stage.ts"
import { openMatrixWriter, readMatrix } from "../../../src/formats/arrow/matrix.ts"
import { writeTable } from "../../../src/formats/parquet/table.ts"
import { testSetsFull } from "../../../src/nodes/testSetsFull/stage.ts"
import { TestSetPairColumns } from "../../../src/schemas/rows.ts"
import { readModelsRef, type ResolvedModels } from "../../../src/artifacts/models.ts"
import { loadProjectorDir, saveProjectorDir } from "../../../src/artifacts/projector.ts"
import { teacherVectors } from "../../../src/nodes/teacher/work.ts"
import { FINETUNE_CONFIG, type FinetuneDoc, STAGEB_CONFIG, type StageBDoc } from "../../../src/artifacts/stageB.ts"
import { finetunePrompt, instructionText, slotPrompt, slotTokens } from "../../../src/prompts/slots.ts"
import { basePrompt } from "../../../src/nodes/generate/work.ts"
import type { AnyStage } from "../../../src/pipeline/dag.ts"
import { runShard, runShardedStage, shardScratchDir } from "../../../src/pipeline/shards.ts"
import type { ShardRange, Stage } from "../../../src/pipeline/stage.ts"
import { shuffle, testExecutor } from "../../support/shardExecutor.ts"
import { randomBridgeHost, writeBridgeDir, writeBridgeOffDir } from "../../support/bridges.ts"
import { projectorReference, slotsReference } from "../../support/adapterReference.ts"
import { configOf, fixturePairs, makeContext, paramsOf, readRows, tmpDir, writePairs, writeRandomMatrix } from "../../support/stageB.ts"
import { runModels } from "../../support/stageA.ts"

const D_IN = 24
const FT_MAX_CHARS = 20
const N_HOLD = 12
const base = tmpDir("eval-models")
afterAll(() => fs.rmSync(base, { recursive: true, force: true }))

const inputs: Record<string, string> = {}
let decoderDir = ""
let resolvedModels: ResolvedModels | undefined
let addedTokens: ReadonlyArray<string> = []

const randomMatrix = writeRandomMatrix

const randomizeLora = (adapters: ReturnType<typeof createLora>, seed: number) => {
  const rng = makeRng(seed)
  for (const v of loraVariables(adapters)) {
    const size = v.shape.reduce((a, b) => a * b, 1)
    v.assign(tf.tensor(Float32Array.from({ length: size }, () => rng.normal() * 0.05), v.shape))
  }
}

let zHold = new Float32Array(0)

beforeAll(async () => {
  const trainPairs = fixturePairs(40)
  const holdPairs = fixturePairs(N_HOLD, 5).map((p) => ({ ...p, english: p.english.replace("(item", "(held") }))
  const train = await writePairs(path.join(base, "train.parquet"), trainPairs)
  const evalFile = await writePairs(path.join(base, "eval.parquet"), holdPairs.slice(0, 8), 1000)
  // models (tiny encoder + tiny Llama with the real Llama-3 tokenizer and the reserved tokens)
  const mctx = await runModels(configOf({ models: { seed: 5 } }).models, train, path.join(base, "models"))
  const resolved = await Effect.runPromise(readModelsRef(mctx.outputs["models"]))
  decoderDir = resolved.decoderDir
  resolvedModels = resolved
  addedTokens = resolved.doc.addedTokens
  const decoder = await Effect.runPromise(loadDecoder(decoderDir, { addedTokens }))
  const hidden = decoder.config.hidden_size
  // projector D_IN → hidden
  const projector = path.join(base, "projector")
  const pc = Projector.makeConfig(D_IN, hidden)
  await Effect.runPromise(saveProjectorDir(projector, pc, Projector.initHost(pc, 3), 0))
  // Stage B: slots + LoRA; fine-tune: LoRA
  const stageB = path.join(base, "stageB")
  fs.mkdirSync(stageB, { recursive: true })
  const slotConfig = makeSlotConfig(hidden, 8, { scaleInit: 2 })
  const slots = initSlots(slotConfig, 4)
  await Effect.runPromise(saveSlots(path.join(stageB, SLOTS_FILE), slots))
  disposeSlots(slots)
  const rows = { addedTokens: [...addedTokens], embeddingInit: resolved.doc.embeddingInit, embeddingSeed: resolved.doc.embeddingSeed }
  const lora = { rank: 16, alpha: 16, dropout: 0.05, targets: ["q", "k", "v", "o", "gate", "up", "down"] as const }
  const stageBDoc: StageBDoc = {
    format: "llink-stageB",
    version: 1,
    slots: 8,
    slotTokens: slotTokens(8),
    ...rows,
    slotConfig,
    lora,
    prompt: { instruction: "input", appendEos: true, maxSeqLen: 768 },
    steps: 0
  }
  fs.writeFileSync(path.join(stageB, STAGEB_CONFIG), JSON.stringify(stageBDoc))
  const loraB = createLora(decoder.config, defaultLoraConfig, 6)
  randomizeLora(loraB, 6)
  await Effect.runPromise(saveLora(path.join(stageB, "adapter"), decoder.config, loraB))
  const loraF = createLora(decoder.config, defaultLoraConfig, 7)
  randomizeLora(loraF, 7)
  const finetune = path.join(base, "finetune")
  await Effect.runPromise(saveLora(finetune, decoder.config, loraF))
  const finetuneDoc: FinetuneDoc = {
    format: "llink-finetune",
    version: 1,
    ...rows,
    lora,
    // A short cut, so the test sees the fine-tune's prompt cut the foreign text as in training.
    prompt: { instruction: "input", appendEos: true, maxSeqLen: 768, maxForeignChars: FT_MAX_CHARS },
    steps: 0
  }
  fs.writeFileSync(path.join(finetune, FINETUNE_CONFIG), JSON.stringify(finetuneDoc))
  disposeLora(loraB)
  disposeLora(loraF)
  disposeLlama(decoder)
  // matrices
  const zF = path.join(base, "zF.holdout.arrow")
  zHold = await randomMatrix(zF, N_HOLD, D_IN, 11)
  const hE = path.join(base, "hE.holdout.arrow")
  await randomMatrix(hE, N_HOLD, hidden, 12)
  // sft.eval from the offline synthesizer: 3 content + 3 Q&A examples
  const sctx = makeContext(synthesize, paramsOf(synthesize, configOf({ synth: { mode: "offline", train: 4, val: 0, evalPerBucket: 3 } })), { train, eval: evalFile }, path.join(base, "synth"))
  await Effect.runPromise(synthesize.run(sctx).pipe(Effect.provide(TensorBackend.layer)))
  Object.assign(inputs, {
    models: mctx.outputs["models"],
    projector,
    stageB,
    finetune,
    "zF.holdout": zF,
    "hE.holdout": hE,
    "sft.eval": sctx.outputs["sft.eval"],
    eval: evalFile
  })
}, 120_000)

const genParams = (extra: Record<string, unknown> = {}) =>
  paramsOf(generate, configOf({ generate: { maxNewTokens: 6, batchSize: 4, ...extra } }))

describe("generate on tiny models", () => {
  it("answers every example with the three systems; prompt token counts match the prompts; resume reuses the batches", async () => {
    const ctxBase = path.join(base, "gen1")
    const ctx = makeContext(generate, genParams(), inputs, ctxBase)
    const outcome = await Effect.runPromise(generate.run(ctx).pipe(Effect.provide(TensorBackend.layer)))
    const rows = await readRows(ctx.outputs["generations.main"])
    const sft = await readRows(inputs["sft.eval"])
    expect(rows.length).toBe(6)
    expect(outcome.metrics?.["computedBatches"]).toBe(2)
    const tok = await Effect.runPromise(loadTokenizer(decoderDir, { addedTokens }))
    const enc = (s: string) => 1 + tok.encode(s, { addSpecialTokens: false }).length
    rows.forEach((r, i) => {
      const s = sft[i]
      expect(r["id"]).toBe(i)
      expect(r["row"]).toBe(s["row"])
      expect(r["bucket"]).toBe(s["bucket"])
      expect(r["reference"]).toBe(s["english_ref"])
      expect(r["target"]).toBe(s["output"])
      const instruction = instructionText(String(s["input"]), String(s["task_type"]), "input", addedTokens)
      expect(r["instruction"]).toBe(instruction)
      expect(r["llinkPromptTokens"]).toBe(enc(slotPrompt(instruction, 8)))
      const cut = Array.from(String(s["foreign_raw"]).trim()).slice(0, FT_MAX_CHARS).join("")
      expect(r["finetunePromptTokens"]).toBe(enc(finetunePrompt(instruction, cut)))
      expect(r["basePromptTokens"]).toBe(enc(basePrompt(String(s["task_type"]), String(s["foreign_raw"]), instruction)))
      for (const sys of ["llink", "base", "finetune"]) expect(typeof r[sys]).toBe("string")
    })
    // The base prompt for translation is the method notes' wording.
    expect(basePrompt("translate_to_english", "ខ្ញុំ", "x")).toBe("User: Translate this to English: ខ្ញុំ\nAssistant:")

    // Rerun on the same scratch folder: nothing recomputed, same table.
    const again = makeContext(generate, genParams(), inputs, path.join(base, "gen1b"))
    fs.cpSync(ctx.scratchDir, again.scratchDir, { recursive: true })
    fs.rmSync(path.join(again.scratchDir, "batch-000001.json"))
    const outcome2 = await Effect.runPromise(generate.run(again).pipe(Effect.provide(TensorBackend.layer)))
    expect(outcome2.metrics?.["computedBatches"]).toBe(1)
    expect(await readRows(again.outputs["generations.main"])).toEqual(rows)
  }, 120_000)

  it("LLINK reads the injected vectors; base and fine-tune do not", async () => {
    const first = makeContext(generate, genParams({ maxNewTokens: 8 }), inputs, path.join(base, "gen2"))
    await Effect.runPromise(generate.run(first).pipe(Effect.provide(TensorBackend.layer)))
    const a = await readRows(first.outputs["generations.main"])
    // Same everything but other z_F rows.
    const zOther = path.join(base, "zF.other.arrow")
    await randomMatrix(zOther, N_HOLD, D_IN, 99)
    const second = makeContext(generate, genParams({ maxNewTokens: 8 }), { ...inputs, "zF.holdout": zOther }, path.join(base, "gen3"))
    await Effect.runPromise(generate.run(second).pipe(Effect.provide(TensorBackend.layer)))
    const b = await readRows(second.outputs["generations.main"])
    expect(b.map((r) => r["base"])).toEqual(a.map((r) => r["base"]))
    expect(b.map((r) => r["finetune"])).toEqual(a.map((r) => r["finetune"]))
    expect(b.map((r) => r["llink"])).not.toEqual(a.map((r) => r["llink"]))
  }, 120_000)
})

describe("retrievalFull on tiny models", () => {
  it("scores the mean slot and the fine-tune's <foreign_emb> state against h_E, as an independent computation does", async () => {
    const params = paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { batchSize: 3 } }))
    expect(params.vector).toBe("meanSlot")
    const ctx = makeContext(retrievalFull, params, inputs, path.join(base, "rf1"))
    await Effect.runPromise(retrievalFull.run(ctx).pipe(Effect.provide(TensorBackend.layer)))
    const doc = JSON.parse(fs.readFileSync(ctx.outputs["retrieval.full"], "utf8"))
    expect(doc.n).toBe(8)
    expect(doc.fullVector).toBe("meanSlot")
    expect(doc.full.chanceR1).toBe(1 / 8)

    // Independent computation.
    const hidden = 64
    const h = await Effect.runPromise(readMatrix(inputs["hE.holdout"]))
    const teacher = h.data.subarray(0, 8 * hidden)
    const slotsFile = path.join(inputs["stageB"], SLOTS_FILE)
    const config = makeSlotConfig(hidden, 8, { scaleInit: 2 })
    const host = await Effect.runPromise(loadSlotHost(slotsFile, config))
    const projDir = await Effect.runPromise(loadProjectorDir(inputs["projector"]))
    // the float64 plain-loop projector and slot module, not the stage's own tfjs code
    const projected = projectorReference(projDir.host, projDir.config, zHold.subarray(0, 8 * D_IN), 8, null)
    const mean = new Float32Array(8 * hidden)
    for (let b = 0; b < 8; b++) {
      const slots = slotsReference(host, Float64Array.from(projected.slice(b * hidden, (b + 1) * hidden)), hidden, config.slots, config.adapterHidden, config.gateMax, config.lnEps)
      for (let j = 0; j < hidden; j++) mean[b * hidden + j] = slots.reduce((acc, row) => acc + row[j], 0) / slots.length
    }
    const expectedFull = retrievalMetrics(mean, teacher, hidden, { normalize: true })
    expect(doc.full.r1).toBeCloseTo(expectedFull.r1, 10)
    expect(doc.full.mrr).toBeCloseTo(expectedFull.mrr, 6)
    expect(doc.full.meanRank).toBeCloseTo(expectedFull.meanRank, 6)

    const decoder = await Effect.runPromise(loadDecoder(decoderDir, { addedTokens, embeddingInit: "zeros", embeddingSeed: 5 }))
    const loraF = await Effect.runPromise(loadLora(inputs["finetune"], decoder.config))
    const tok = await Effect.runPromise(loadTokenizer(decoderDir, { addedTokens }))
    const foreign = (await readRows(inputs["eval"])).map((r) => String(r["foreign"]))
    const q = await teacherVectors(withLora(decoder, loraF), tok, foreign, tok.tokenToId("<foreign_emb>")!, tok.eosId!, { template: "paper", maxTokens: 128 })
    const expectedFt = retrievalMetrics(q, teacher, hidden, { normalize: true })
    expect(doc.finetune.r1).toBeCloseTo(expectedFt.r1, 10)
    expect(doc.finetune.mrr).toBeCloseTo(expectedFt.mrr, 5)
    disposeLora(loraF)
    disposeLlama(decoder)

    // The decoder-side variant runs too.
    const ctx2 = makeContext(retrievalFull, paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { vector: "lastSlotHidden" } })), inputs, path.join(base, "rf2"))
    await Effect.runPromise(retrievalFull.run(ctx2).pipe(Effect.provide(TensorBackend.layer)))
    const doc2 = JSON.parse(fs.readFileSync(ctx2.outputs["retrieval.full"], "utf8"))
    expect(doc2.fullVector).toBe("lastSlotHidden")
    expect(doc2.finetune).toEqual(doc.finetune)
    expect(doc2.full.n).toBe(8)
  }, 120_000)
})

describe("a Stage B length policy in evaluation", () => {
  it("each example gets its own K: LLINK's prompts, the mean slot in retrieval and the last slot's state follow it", async () => {
    // the same Stage B weights under { byLength }: K(x) = clamp(⌈encoder tokens / 3⌉, 2, 8) of the 8 slots
    const policy = { min: 2, max: 8, tokensPerSlot: 3 }
    const stageB = path.join(base, "stageB-len")
    fs.cpSync(inputs["stageB"], stageB, { recursive: true })
    const doc = JSON.parse(fs.readFileSync(path.join(stageB, STAGEB_CONFIG), "utf8")) as StageBDoc
    fs.writeFileSync(path.join(stageB, STAGEB_CONFIG), JSON.stringify({ ...doc, slotPolicy: { byLength: policy } }))
    const lenInputs = { ...inputs, stageB }
    const encTok = await Effect.runPromise(loadTokenizer(resolvedModels!.encoderDir))
    const kOf = (foreign: string) => Math.min(8, Math.max(2, Math.ceil(encTok.encode(foreign, { addSpecialTokens: false }).length / 3)))

    const ctx = makeContext(generate, genParams(), lenInputs, path.join(base, "gen-len"))
    const outcome = await Effect.runPromise(generate.run(ctx).pipe(Effect.provide(TensorBackend.layer)))
    const rows = await readRows(ctx.outputs["generations.main"])
    const sft = await readRows(inputs["sft.eval"])
    const tok = await Effect.runPromise(loadTokenizer(decoderDir, { addedTokens }))
    const enc = (text: string) => 1 + tok.encode(text, { addSpecialTokens: false }).length
    const ks = sft.map((r) => kOf(String(r["foreign_raw"])))
    expect(new Set(ks).size).toBeGreaterThan(1) // the fixture's sentences differ enough in length to get different K
    rows.forEach((r, i) => {
      const instruction = instructionText(String(sft[i]["input"]), String(sft[i]["task_type"]), "input", addedTokens)
      expect(r["llinkPromptTokens"]).toBe(enc(slotPrompt(instruction, ks[i])))
    })
    expect(outcome.metrics?.["meanSlots"]).toBeCloseTo(ks.reduce((a, k) => a + k, 0) / ks.length, 12)

    // retrieval: the mean over each example's own K slots, against the plain reference
    const ctxR = makeContext(retrievalFull, paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { batchSize: 3 } })), lenInputs, path.join(base, "rf-len"))
    await Effect.runPromise(retrievalFull.run(ctxR).pipe(Effect.provide(TensorBackend.layer)))
    const rdoc = JSON.parse(fs.readFileSync(ctxR.outputs["retrieval.full"], "utf8"))
    const hidden = 64
    const h = await Effect.runPromise(readMatrix(inputs["hE.holdout"]))
    const config = makeSlotConfig(hidden, 8, { scaleInit: 2 })
    const host = await Effect.runPromise(loadSlotHost(path.join(stageB, SLOTS_FILE), config))
    const projDir = await Effect.runPromise(loadProjectorDir(inputs["projector"]))
    const projected = projectorReference(projDir.host, projDir.config, zHold.subarray(0, 8 * D_IN), 8, null)
    const foreign = (await readRows(inputs["eval"])).map((r) => String(r["foreign"]))
    const evalK = foreign.map(kOf)
    expect(new Set(evalK).size).toBeGreaterThan(1)
    const mean = new Float32Array(8 * hidden)
    for (let b = 0; b < 8; b++) {
      const slots = slotsReference(host, Float64Array.from(projected.slice(b * hidden, (b + 1) * hidden)), hidden, 8, config.adapterHidden, config.gateMax, config.lnEps)
      for (let j = 0; j < hidden; j++) mean[b * hidden + j] = slots.slice(0, evalK[b]).reduce((acc, row) => acc + row[j], 0) / evalK[b]
    }
    const expected = retrievalMetrics(mean, h.data.subarray(0, 8 * hidden), hidden, { normalize: true })
    expect(rdoc.full.r1).toBeCloseTo(expected.r1, 10)
    expect(rdoc.full.mrr).toBeCloseTo(expected.mrr, 6)
    expect(rdoc.full.meanRank).toBeCloseTo(expected.meanRank, 6)

    // the decoder-side vector reads each example's own last slot (prompts of different lengths in one batch)
    const ctx2 = makeContext(retrievalFull, paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { vector: "lastSlotHidden", batchSize: 8 } })), lenInputs, path.join(base, "rf-len2"))
    await Effect.runPromise(retrievalFull.run(ctx2).pipe(Effect.provide(TensorBackend.layer)))
    const one = makeContext(retrievalFull, paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { vector: "lastSlotHidden", batchSize: 1 } })), lenInputs, path.join(base, "rf-len3"))
    await Effect.runPromise(retrievalFull.run(one).pipe(Effect.provide(TensorBackend.layer)))
    const batched = JSON.parse(fs.readFileSync(ctx2.outputs["retrieval.full"], "utf8"))
    const single = JSON.parse(fs.readFileSync(one.outputs["retrieval.full"], "utf8"))
    // one example at a time has no padding at all: the padded batch must rank exactly as it does
    expect(batched.full.r1).toBe(single.full.r1)
    expect(batched.full.mrr).toBeCloseTo(single.full.mrr, 5)
  }, 120_000)
})

describe("testSetsFull on tiny models", () => {
  it("scores a test set holding the eval slice exactly as retrievalFull and retrievalPeers score the slice; sets are scored apart", async () => {
    const rf = makeContext(retrievalFull, paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { batchSize: 3 } })), inputs, path.join(base, "ts-rf"))
    await Effect.runPromise(retrievalFull.run(rf).pipe(Effect.provide(TensorBackend.layer)))
    const reference = JSON.parse(fs.readFileSync(rf.outputs["retrieval.full"], "utf8"))
    // The peers: a random LangBridge bridge, MindMerger switched off; retrievalPeers scores them on the same slice.
    const models = resolvedModels!
    const encoderHidden = (JSON.parse(fs.readFileSync(path.join(models.encoderDir, "config.json"), "utf8")) as { hidden_size: number }).hidden_size
    const decoderHidden = (await Effect.runPromise(readMatrix(inputs["hE.holdout"]))).dim
    const lb = { kind: "langbridge" as const, dIn: encoderHidden, dOut: decoderHidden }
    const peerInputs = {
      langbridge: await writeBridgeDir(path.join(base, "ts-langbridge"), lb, randomBridgeHost(lb, 41), models, { maxChars: 40, maxTokens: 12 }),
      mindmerger: await writeBridgeOffDir(path.join(base, "ts-mindmerger-off"), "mindmerger")
    }
    const rp = makeContext(retrievalPeers, paramsOf(retrievalPeers, configOf({ split: { evalN: 8 }, encode: { batchSize: 3 } })), { ...inputs, ...peerInputs }, path.join(base, "ts-rp"))
    await Effect.runPromise(retrievalPeers.run(rp).pipe(Effect.provide(TensorBackend.layer)))
    const peerReference = JSON.parse(fs.readFileSync(rp.outputs["retrieval.peers"], "utf8"))
    expect(peerReference.langbridge.n).toBe(8)
    // two sets: the 8 eval pairs, then eval pairs 5–7 again (a set of 3)
    const foreign = (await readRows(inputs["eval"])).map((r) => String(r["foreign"]))
    const order = [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7]
    const pairsFile = path.join(base, "testSets.pairs.parquet")
    await Effect.runPromise(
      writeTable(pairsFile, TestSetPairColumns, Stream.fromIterable(order.map((i, k) => ({ set: k < 8 ? "slice" : "tail", row: k < 8 ? k : k - 8, english: `e${i}`, foreign: foreign[i] }))))
    )
    const h = await Effect.runPromise(readMatrix(inputs["hE.holdout"]))
    const pick = (data: Float32Array, dim: number) => {
      const out = new Float32Array(order.length * dim)
      order.forEach((i, k) => out.set(data.subarray(i * dim, (i + 1) * dim), k * dim))
      return out
    }
    const write = async (file: string, data: Float32Array, dim: number) => {
      await Effect.runPromise(Effect.gen(function*() {
        const w = yield* openMatrixWriter(file, dim)
        yield* w.write({ rows: order.length, dim, data })
        yield* w.close
      }))
      return file
    }
    const tsInputs = {
      ...inputs,
      "testSets.pairs": pairsFile,
      "zF.testSets": await write(path.join(base, "zF.testSets.arrow"), pick(zHold, D_IN), D_IN),
      "hE.testSets": await write(path.join(base, "hE.testSets.arrow"), pick(h.data, h.dim), h.dim),
      ...peerInputs
    }
    const ctx = makeContext(testSetsFull, paramsOf(testSetsFull, configOf({ retrievalFull: { batchSize: 3 }, encode: { batchSize: 5 } })), tsInputs, path.join(base, "tsf"))
    await Effect.runPromise(testSetsFull.run(ctx).pipe(Effect.provide(TensorBackend.layer)))
    const doc = JSON.parse(fs.readFileSync(ctx.outputs["retrieval.testSets.full"], "utf8"))
    expect(doc.sets.map((x: { name: string; n: number }) => [x.name, x.n])).toEqual([["slice", 8], ["tail", 3]])
    expect({ full: doc.sets[0].ranks.full, finetune: doc.sets[0].ranks.finetune }).toEqual(reference.ranks)
    expect(doc.sets[0].full.r1).toBe(reference.full.r1)
    expect(doc.sets[0].finetune.mrr).toBe(reference.finetune.mrr)
    // The peer on: retrievalPeers' numbers on the same slice (other encoder batches); the peer off: null.
    expect(doc.peerVector).toBe(peerReference.vector)
    for (const key of ["r1", "r5", "r10", "meanRank"]) expect([key, doc.sets[0].langbridge[key]]).toEqual([key, peerReference.langbridge[key]])
    expect(doc.sets[0].langbridge.mrr).toBeCloseTo(peerReference.langbridge.mrr, 12)
    expect(doc.sets[0].langbridge.meanRank).not.toBe(doc.sets[0].full.meanRank)
    expect(doc.sets[0].mindmerger).toBeNull()
    expect(doc.sets[0].ranks.mindmerger).toBeNull()
    expect(doc.sets[0].ranks.langbridge).toHaveLength(8)
    expect(doc.sets[1].full.chanceR1).toBeCloseTo(1 / 3, 12)
    expect(doc.sets[1].ranks.full.every((r: number) => r >= 1 && r <= 3)).toBe(true)
    expect(doc.sets[1].ranks.langbridge.every((r: number) => r >= 1 && r <= 3)).toBe(true)

    // no test sets: an empty list, and no system is loaded (the inputs it would load do not exist)
    const emptyPairs = path.join(base, "empty.pairs.parquet")
    await Effect.runPromise(writeTable(emptyPairs, TestSetPairColumns, Stream.fromIterable([])))
    const ectx = makeContext(testSetsFull, paramsOf(testSetsFull, configOf({})), { "testSets.pairs": emptyPairs, models: "/nonexistent", stageB: "/nonexistent" }, path.join(base, "tsf-empty"))
    await Effect.runPromise(testSetsFull.run(ectx).pipe(Effect.provide(TensorBackend.layer)))
    expect(JSON.parse(fs.readFileSync(ectx.outputs["retrieval.testSets.full"], "utf8")).sets).toEqual([])
  }, 120_000)
})

/**
 * On a cluster, `generate` and `retrievalFull` split into shards of `shardBatches` batches (here one batch each),
 * computed in a shuffled order; the merge writes the single-process bytes. Without a cluster they plan no shards
 * and the merge is the whole single-process job.
 */
describe("generate and retrievalFull in shards", () => {
  const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")
  const sharded = async <P>(stage: Stage<P, TensorBackend>, ctx: ReturnType<typeof makeContext<P, TensorBackend>>, withExecutor: boolean) => {
    const done: Array<ShardRange> = []
    const run = runShardedStage(stage as unknown as AnyStage<TensorBackend>, ctx, { root: path.join(path.dirname(ctx.outDir), "cache"), key: "k" })
    const provided = withExecutor
      ? run.pipe(Effect.provide(testExecutor([stage as unknown as AnyStage<TensorBackend>], { reorder: shuffle(5), ran: done, provide: (e) => e.pipe(Effect.provide(TensorBackend.layer)) })))
      : run
    const outcome = await Effect.runPromise(provided.pipe(Effect.provide(TensorBackend.layer)))
    return { done: done.map((r) => `${r.table} ${r.start}-${r.end}`).sort(), outcome }
  }

  it("generate: shards of one batch each give the single-process table; one process plans none", async () => {
    const params = genParams({ shardBatches: 1 })
    const single = makeContext(generate, params, inputs, path.join(base, "genS1"))
    await Effect.runPromise(generate.run(single).pipe(Effect.provide(TensorBackend.layer)))
    const cluster = makeContext(generate, params, inputs, path.join(base, "genS2"))
    const { done, outcome } = await sharded(generate, cluster, true)
    expect(done).toEqual(["sft.eval 0-4", "sft.eval 4-6"])
    expect(sha(cluster.outputs["generations.main"])).toBe(sha(single.outputs["generations.main"]))
    expect(outcome.metrics?.["computedBatches"]).toBe(2)
    expect(cluster.logs.join("\n")).toMatch(/2 shards computed 2 of 2 batches, the merge 0/)
    // A shard whose scratch folder holds a batch an earlier attempt finished reuses it (and drops the folder once published).
    const root = path.join(base, "genS4", "cache")
    const range = { table: "sft.eval", start: 0, end: 4 }
    const scratch = shardScratchDir(root, "generate", "k2", range)
    fs.mkdirSync(scratch, { recursive: true })
    fs.copyFileSync(path.join(single.scratchDir, "batch-000000.json"), path.join(scratch, "batch-000000.json"))
    const resumed = await Effect.runPromise(
      runShard(generate as unknown as AnyStage<TensorBackend>, { stage: "generate", key: "k2", root, params, inputs }, range, { log: () => {}, progress: () => ({ advance: () => {}, setTotal: () => {}, done: () => {} }) })
        .pipe(Effect.provide(TensorBackend.layer))
    )
    expect(resumed.shard.metrics["computedBatches"]).toBe(0)
    expect(fs.readFileSync(path.join(resumed.shard.dir, "batch-000000.json"), "utf8")).toBe(fs.readFileSync(path.join(single.scratchDir, "batch-000000.json"), "utf8"))
    expect(fs.existsSync(scratch)).toBe(false)

    const local = makeContext(generate, params, inputs, path.join(base, "genS3"))
    const l = await sharded(generate, local, false)
    expect(l.done).toEqual([])
    expect(sha(local.outputs["generations.main"])).toBe(sha(single.outputs["generations.main"]))
    expect(local.logs.join("\n")).toMatch(/2 of 2 batches computed/)
  }, 120_000)

  it("retrievalFull: shards of one batch each give the single-process document", async () => {
    for (const vector of ["meanSlot", "lastSlotHidden"]) {
      const params = paramsOf(retrievalFull, configOf({ split: { evalN: 8 }, retrievalFull: { vector, batchSize: 3, shardBatches: 1 } }))
      const single = makeContext(retrievalFull, params, inputs, path.join(base, `rfS1-${vector}`))
      await Effect.runPromise(retrievalFull.run(single).pipe(Effect.provide(TensorBackend.layer)))
      const cluster = makeContext(retrievalFull, params, inputs, path.join(base, `rfS2-${vector}`))
      const { done } = await sharded(retrievalFull, cluster, true)
      expect(done).toEqual(["eval 0-3", "eval 3-6", "eval 6-8"])
      expect(fs.readFileSync(cluster.outputs["retrieval.full"], "utf8")).toBe(fs.readFileSync(single.outputs["retrieval.full"], "utf8"))
      expect(cluster.logs.join("\n")).toMatch(/vectors from 3 shards/)
    }
  }, 120_000)
})
