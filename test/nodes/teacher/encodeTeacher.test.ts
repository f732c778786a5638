/**
 * The `models`, `encode` and `teacher` stages on tiny checkpoints and a synthetic Khmer–English set: document and
 * shapes, resume-after-crash equals an uninterrupted run (byte for byte), truncation and prompt construction, and
 * that the teacher vector depends on the English text, the template and the `<foreign_emb>` row rule.
 */
import { loadConfig } from "../../../src/nodes/config.ts"
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { disposeLlama, loadDecoder } from "../../../src/models/llama.ts"
import { loadTokenizer, reservedTokens } from "../../../src/models/tokenizer.ts"
import { disposeXlmr, loadEncoder } from "../../../src/models/xlmr.ts"
import { encode } from "../../../src/nodes/encode/stage.ts"
import { models } from "../../../src/nodes/models/stage.ts"
import { teacher } from "../../../src/nodes/teacher/stage.ts"
import { readMatrix } from "../../../src/formats/arrow/matrix.ts"
import { EncodeConfig } from "../../../src/nodes/encode/params.ts"
import { ModelsConfig } from "../../../src/nodes/models/params.ts"
import { TeacherConfig } from "../../../src/nodes/teacher/params.ts"
import { batchFiles, planBatches, WINDOW_BATCHES } from "../../../src/artifacts/matrixJob.ts"
import { encodeForeign, foreignTokenIds } from "../../../src/nodes/encode/work.ts"
import { readModelsRef } from "../../../src/artifacts/models.ts"
import { teacherPromptIds } from "../../../src/prompts/teacher.ts"
import { leftPad } from "../../../src/models/llama.ts"
import { teacherVectors } from "../../../src/nodes/teacher/work.ts"
import { failingProgress, runModels, runStage, runStageExpectingFailure, sha256File, tinyModelInputs, syntheticPairs, tempDir, writePairs } from "../../support/stageA.ts"

const dir = tempDir("encode")
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const N_TRAIN = 60
const N_HOLD = 20
let train = ""
let holdout = ""
let modelsJson = ""
const pairs = syntheticPairs(N_TRAIN + N_HOLD, 5)

const encodeParams = (fields: Record<string, unknown>) => Schema.decodeUnknownSync(EncodeConfig)(fields)
const teacherParams = (fields: Record<string, unknown>) => Schema.decodeUnknownSync(TeacherConfig)(fields)
const modelsParams = (fields: Record<string, unknown>) => Schema.decodeUnknownSync(ModelsConfig)(fields)
const matrix = (file: string) => Effect.runPromise(readMatrix(file))

const cosine = (a: Float32Array, b: Float32Array): number => {
  let ab = 0
  let aa = 0
  let bb = 0
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i]
    aa += a[i] * a[i]
    bb += b[i] * b[i]
  }
  return ab / Math.sqrt(aa * bb)
}

beforeAll(async () => {
  train = await writePairs(path.join(dir, "train.parquet"), pairs.slice(0, N_TRAIN))
  holdout = await writePairs(path.join(dir, "holdout.parquet"), pairs.slice(N_TRAIN))
  const m = await runModels(modelsParams({ seed: 3 }), train, dir)
  modelsJson = m.outputs["models"]
})

describe("models", () => {
  it("writes tiny checkpoints and a document with relative paths, fingerprints and the reserved tokens", async () => {
    const doc = JSON.parse(fs.readFileSync(modelsJson, "utf8")) as Record<string, unknown>
    expect(doc["format"]).toBe("llink-models")
    expect(doc["encoder"]).toMatchObject({ kind: "tiny", path: "tiny/encoder" })
    expect(doc["decoder"]).toMatchObject({ kind: "tiny", path: "tiny/decoder" })
    expect(doc["addedTokens"]).toEqual(reservedTokens(8))
    expect(doc["embeddingInit"]).toBe("zeros")
    const enc = doc["encoder"] as { sha256: Record<string, string> }
    expect(Object.keys(enc.sha256).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    expect(enc.sha256["model.safetensors"]).toBe(sha256File(path.join(dir, "models.out/tiny/encoder/model.safetensors")))
    const resolved = await Effect.runPromise(readModelsRef(modelsJson))
    expect(resolved.encoderDir).toBe(path.join(dir, "models.out/tiny/encoder"))
    // the tiny encoder's tokenizer was trained on the training text: Khmer words are pieces, not <unk>
    const tok = await Effect.runPromise(loadTokenizer(resolved.encoderDir))
    expect(tok.encode("ខ្ញុំ ទិញ ត្រី", { addSpecialTokens: false })).not.toContain(3)
  })

  it("accepts a snapshot folder (absolute path, same fingerprints, external input) and rejects the wrong architecture", async () => {
    const tinyEnc = path.join(dir, "models.out/tiny/encoder")
    const tinyDec = path.join(dir, "models.out/tiny/decoder")
    const params = modelsParams({ encoder: tinyEnc, decoder: tinyDec })
    expect(models.externalInputs?.(params)).toEqual([tinyEnc, tinyDec])
    const m = await runStage(models, params, { train }, dir, { outDir: path.join(dir, "snap.out") })
    const doc = JSON.parse(fs.readFileSync(m.outputs["models"], "utf8")) as Record<string, { kind: string; path: string; sha256: unknown }>
    expect(doc["encoder"].kind).toBe("snapshot")
    expect(doc["encoder"].path).toBe(tinyEnc)
    const tinyDoc = JSON.parse(fs.readFileSync(modelsJson, "utf8")) as Record<string, { sha256: unknown }>
    expect(doc["decoder"].sha256).toEqual(tinyDoc["decoder"].sha256)
    expect(fs.readdirSync(m.outputs["models.tiny"])).toEqual([])

    const wrong = await runStageExpectingFailure(models, modelsParams({ encoder: tinyDec }), await tinyModelInputs(modelsParams({ encoder: tinyDec }), train, dir), dir, {
      outDir: path.join(dir, "wrong.out")
    })
    expect(wrong.typed?.message).toMatch(/models\.encoder: .* holds a llama model/)
    const missing = await runStageExpectingFailure(models, modelsParams({ decoder: path.join(dir, "nope") }), await tinyModelInputs(modelsParams({ decoder: path.join(dir, "nope") }), train, dir), dir, {
      outDir: path.join(dir, "missing.out")
    })
    expect(missing.typed?.message).toMatch(/models\.decoder: .*nope is not a folder/)
  })
})

describe("batch plan", () => {
  it("sorts each window of batchSize × WINDOW_BATCHES rows by length (ties by row) and covers every row once", () => {
    const rng = [5, 3, 3, 9, 1, 3, 7, 2, 2, 8]
    const lengths = Array.from({ length: 2 * 3 * WINDOW_BATCHES + 5 }, (_, i) => rng[i % rng.length] + (i % 7))
    const plan = planBatches(lengths, 3)
    expect(plan.every((b, i) => b.length === 3 || i === plan.length - 1)).toBe(true)
    expect(plan[plan.length - 1]).toHaveLength(2)
    const all = plan.flatMap((b) => Array.from(b))
    expect([...all].sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i))
    const window = 3 * WINDOW_BATCHES
    for (let w = 0; w * window < lengths.length; w++) {
      const inWindow = all.slice(w * window, (w + 1) * window)
      expect(inWindow.every((r) => r >= w * window && r < (w + 1) * window)).toBe(true)
      for (let i = 1; i < inWindow.length; i++) {
        const [a, b] = [inWindow[i - 1], inWindow[i]]
        expect(lengths[a] < lengths[b] || (lengths[a] === lengths[b] && a < b)).toBe(true)
      }
    }
  })
})

describe("encode", () => {
  it("cuts foreign text to maxChars characters and maxTokens tokens, keeping </s>", async () => {
    const { encoderDir } = await Effect.runPromise(readModelsRef(modelsJson))
    const tok = await Effect.runPromise(loadTokenizer(encoderDir))
    const long = pairs.map((p) => p.foreign).join(" ")
    const full = foreignTokenIds(tok, long, 2, { maxChars: 100_000, maxTokens: 100_000 })
    expect(full.length).toBeGreaterThan(40)
    const cut = foreignTokenIds(tok, long, 2, { maxChars: 100_000, maxTokens: 16 })
    expect(cut).toHaveLength(16)
    expect(cut.slice(0, 15)).toEqual(full.slice(0, 15))
    expect(cut[0]).toBe(0)
    expect(cut[15]).toBe(2)
    const chars = foreignTokenIds(tok, long, 2, { maxChars: 10, maxTokens: 256 })
    expect(chars).toEqual([...tok.encode([...long].slice(0, 10).join(""))])
  })

  it("writes z_F for train and holdout (row i = table row i), equal to a direct forward pass", async () => {
    const r = await runStage(encode, encodeParams({ batchSize: 8 }), { models: modelsJson, train, holdout }, dir)
    expect(r.outcome.rows).toEqual({ "zF.train": N_TRAIN, "zF.holdout": N_HOLD })
    const zt = await matrix(r.outputs["zF.train"])
    const zh = await matrix(r.outputs["zF.holdout"])
    expect([zt.rows, zt.dim, zh.rows, zh.dim]).toEqual([N_TRAIN, 32, N_HOLD, 32])
    expect(Array.from(zt.ids ?? [])).toEqual(Array.from({ length: N_TRAIN }, (_, i) => i))
    expect(zt.data.every(Number.isFinite)).toBe(true)
    // distinct sentences → distinct vectors
    expect(cosine(zt.data.subarray(0, 32), zt.data.subarray(32, 64))).toBeLessThan(0.9999)
    // rows 9..11 (second batch) equal a separate forward pass of just those sentences
    const { encoderDir } = await Effect.runPromise(readModelsRef(modelsJson))
    const model = await Effect.runPromise(loadEncoder(encoderDir))
    const tok = await Effect.runPromise(loadTokenizer(encoderDir))
    const before = tf.memory().numTensors
    const direct = await encodeForeign(model, tok, pairs.slice(9, 12).map((p) => p.foreign), { maxChars: 256, maxTokens: 256 })
    expect(tf.memory().numTensors).toBe(before)
    disposeXlmr(model)
    const stored = zt.data.subarray(9 * 32, 12 * 32)
    for (let i = 0; i < direct.length; i++) expect(Math.abs(direct[i] - stored[i])).toBeLessThan(1e-5)
  })

  it("resumes after a crash from the finished batches and writes the same bytes as an uninterrupted run", async () => {
    const params = encodeParams({ batchSize: 8 })
    const inputs = { models: modelsJson, train, holdout }
    const straight = await runStage(encode, params, inputs, dir, { outDir: path.join(dir, "e1.out"), scratchDir: path.join(dir, "e1.scratch") })
    const scratch = path.join(dir, "e2.scratch")
    const crashed = await runStageExpectingFailure(encode, params, inputs, dir, {
      outDir: path.join(dir, "e2a.out"),
      scratchDir: scratch,
      progress: failingProgress(40) // dies while reporting the 5th train batch (rows 32–39), after storing it
    })
    expect(crashed.pretty).toMatch(/injected failure/)
    expect(fs.existsSync(batchFiles(scratch, "train", 4).marker)).toBe(true)
    expect(fs.existsSync(batchFiles(scratch, "train", 5).marker)).toBe(false)
    // a torn batch (data without a valid marker) is recomputed, not trusted
    fs.writeFileSync(batchFiles(scratch, "train", 3).data, Buffer.alloc(17))
    const resumed = await runStage(encode, params, inputs, dir, { outDir: path.join(dir, "e2b.out"), scratchDir: scratch })
    const detail = resumed.outcome.metrics?.["zF.train"] as { computed: number; reused: number }
    expect(detail).toMatchObject({ batches: 8, computed: 4, reused: 4 }) // batches 3, 5, 6, 7 recomputed
    expect(resumed.logs.join("\n")).toMatch(/recomputed batch 3: data file has 17 bytes/)
    for (const name of ["zF.train", "zF.holdout"]) {
      expect(sha256File(resumed.outputs[name])).toBe(sha256File(straight.outputs[name]))
    }
  })

  it("rejects bad parameters with the field named, when the config loads (before any stage runs)", async () => {
    const err = await Effect.runPromise(Effect.flip(loadConfig({ sets: ["encode.batchSize=0"], cwd: dir })))
    expect(err.message).toMatch(/encode\.batchSize: Expected a whole number ≥ 1, got 0/)
  })
})

describe("teacher", () => {
  it("builds the paper and code prompts: BOS, template prefix, English cut like the code, <foreign_emb> last", async () => {
    const { decoderDir, doc } = await Effect.runPromise(readModelsRef(modelsJson))
    const tok = await Effect.runPromise(loadTokenizer(decoderDir, { addedTokens: doc.addedTokens }))
    const fe = tok.tokenToId("<foreign_emb>")
    if (fe === undefined) throw new Error("no <foreign_emb>")
    expect(fe).toBe(128256 + 2)
    const english = "The teacher sells four chickens tomorrow."
    const code = teacherPromptIds(tok, english, fe, { template: "code", maxTokens: 128 })
    expect(code).toEqual([128000, ...tok.encode(english, { addSpecialTokens: false }), fe])
    const paper = teacherPromptIds(tok, english, fe, { template: "paper", maxTokens: 128 })
    expect(paper).toEqual([...tok.encode(`User:${english}`), fe])
    expect(tok.decode(paper, { skipSpecialTokens: false })).toBe(`<|begin_of_text|>User:${english}<foreign_emb>`)
    const cut = teacherPromptIds(tok, english, fe, { template: "code", maxTokens: 5 })
    expect(cut).toEqual([...code.slice(0, 4), fe])
    const padded = leftPad([[1, 2, 3], [4]], 9)
    expect(padded).toEqual({ ids: [[1, 2, 3], [9, 9, 4]], attentionMask: [[1, 1, 1], [0, 0, 1]] })
  })

  it("writes h_E at <foreign_emb>: shapes, left padding does not change a row, and the vector follows the English", async () => {
    const r = await runStage(teacher, teacherParams({ batchSize: 8 }), { models: modelsJson, train, holdout }, dir)
    expect(r.outcome.rows).toEqual({ "hE.train": N_TRAIN, "hE.holdout": N_HOLD })
    const ht = await matrix(r.outputs["hE.train"])
    expect([ht.rows, ht.dim]).toEqual([N_TRAIN, 64])
    expect(ht.data.every(Number.isFinite)).toBe(true)
    // one sentence alone (no padding) gives the same vector as inside its padded batch
    const { decoderDir, doc } = await Effect.runPromise(readModelsRef(modelsJson))
    const tok = await Effect.runPromise(loadTokenizer(decoderDir, { addedTokens: doc.addedTokens }))
    const model = await Effect.runPromise(loadDecoder(decoderDir, { addedTokens: doc.addedTokens, embeddingInit: "zeros" }))
    const fe = tok.tokenToId("<foreign_emb>") ?? -1
    // a row that was left-padded in its (length-sorted) batch: the shortest of a batch with mixed lengths
    const lengths = pairs.slice(0, N_TRAIN).map((p) => teacherPromptIds(tok, p.english, fe, { template: "paper", maxTokens: 128 }).length)
    const mixed = planBatches(lengths, 8).find((b) => lengths[b[0]] < lengths[b[b.length - 1]])
    if (mixed === undefined) throw new Error("no batch with rows of different lengths")
    const shortest = mixed[0]
    const before = tf.memory().numTensors
    const alone = await teacherVectors(model, tok, [pairs[shortest].english], fe, 128009, { template: "paper", maxTokens: 128 })
    const other = await teacherVectors(model, tok, ["Completely different words here"], fe, 128009, { template: "paper", maxTokens: 128 })
    expect(tf.memory().numTensors).toBe(before)
    disposeLlama(model)
    const stored = ht.data.subarray(shortest * 64, (shortest + 1) * 64)
    for (let i = 0; i < 64; i++) expect(Math.abs(alone[i] - stored[i])).toBeLessThan(1e-4)
    // the state at <foreign_emb> depends on the English before it
    expect(cosine(alone, other)).toBeLessThan(0.999)
    expect(cosine(ht.data.subarray(0, 64), ht.data.subarray(64, 128))).toBeLessThan(0.9999)
  })

  it("depends on the template and on the <foreign_emb> row rule of the models document", async () => {
    const small = { models: modelsJson, train: await writePairs(path.join(dir, "t4.parquet"), pairs.slice(0, 4)), holdout: await writePairs(path.join(dir, "h2.parquet"), pairs.slice(4, 6)) }
    const paper = await runStage(teacher, teacherParams({ template: "paper" }), small, dir, { outDir: path.join(dir, "tp.out"), scratchDir: path.join(dir, "tp.s") })
    const code = await runStage(teacher, teacherParams({ template: "code" }), small, dir, { outDir: path.join(dir, "tc.out"), scratchDir: path.join(dir, "tc.s") })
    const a = await matrix(paper.outputs["hE.train"])
    const b = await matrix(code.outputs["hE.train"])
    expect(cosine(a.data.subarray(0, 64), b.data.subarray(0, 64))).toBeLessThan(0.999)
    // models documents with other <foreign_emb> row rules beside the original (same tiny folders)
    const withRule = async (rule: string) => {
      const ruleJson = path.join(path.dirname(modelsJson), `models.${rule}.json`)
      fs.writeFileSync(ruleJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(modelsJson, "utf8")), embeddingInit: rule }))
      const r = await runStage(teacher, teacherParams({ template: "paper" }), { ...small, models: ruleJson }, dir, {
        outDir: path.join(dir, `t-${rule}.out`),
        scratchDir: path.join(dir, `t-${rule}.s`)
      })
      return (await matrix(r.outputs["hE.train"])).data.subarray(0, 64)
    }
    // N(0, 0.02²) rows are of ordinary size: a clearly different state
    expect(cosine(a.data.subarray(0, 64), await withRule("normal"))).toBeLessThan(0.999)
    // the mean of 128k random rows is tiny (~1e-4), so after RMSNorm the state moves only a little — but it moves
    const mean = await withRule("mean")
    expect(Array.from(mean)).not.toEqual(Array.from(a.data.subarray(0, 64)))
  })

  it("resumes after a crash and writes the same bytes as an uninterrupted run", async () => {
    const params = teacherParams({ batchSize: 16, template: "code" })
    const inputs = { models: modelsJson, train, holdout }
    const straight = await runStage(teacher, params, inputs, dir, { outDir: path.join(dir, "t1.out"), scratchDir: path.join(dir, "t1.scratch") })
    const scratch = path.join(dir, "t2.scratch")
    const crashed = await runStageExpectingFailure(teacher, params, inputs, dir, {
      outDir: path.join(dir, "t2a.out"),
      scratchDir: scratch,
      progress: failingProgress(N_TRAIN + 10) // all train batches and the first holdout batch are stored
    })
    expect(crashed.pretty).toMatch(/injected failure/)
    const resumed = await runStage(teacher, params, inputs, dir, { outDir: path.join(dir, "t2b.out"), scratchDir: scratch })
    expect(resumed.outcome.metrics?.["hE.train"]).toMatchObject({ batches: 4, computed: 0, reused: 4 })
    expect(resumed.outcome.metrics?.["hE.holdout"]).toMatchObject({ batches: 2, computed: 1, reused: 1 })
    for (const name of ["hE.train", "hE.holdout"]) {
      expect(sha256File(resumed.outputs[name])).toBe(sha256File(straight.outputs[name]))
    }
  })
})
