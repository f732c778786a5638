/**
 * Pretraining of the miniature checkpoints (src/train/pretrain.ts, src/nodes/tinyDecoder/pretrain.ts): the decoder's data
 * holds no foreign script, the decoder and encoder learn (loss falls by a margin on data with structure), the
 * written full-vocabulary decoder has zero head rows outside the shortlist and its compact loss is its full loss,
 * and masking never touches special tokens.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { decoderExamples } from "../../src/nodes/tinyDecoder/pretrain.ts"
import { initLlamaWeights, initXlmrWeights } from "../../src/models/init.ts"
import { llamaFromWeights } from "../../src/models/llama.ts"
import type { LlamaModel } from "../../src/models/llama.ts"
import { loadTokenizer } from "../../src/models/tokenizer.ts"
import { makeRng } from "../../src/models/rng.ts"
import { microBatchesOf, mlmCorrupt, pretrainDecoder, pretrainEncoder, targetCount } from "../../src/train/pretrain.ts"
import { lmLoss, lmTargets } from "../../src/train/stageBLoss.ts"
import { oddLlama, setupCpu, smallXlmr } from "../support/modelFixtures.ts"

beforeAll(setupCpu)

const repoRoot = path.resolve(import.meta.dirname, "../..")
const KHMER = /[\u1780-\u17FF\u19E0-\u19FF]/u

describe("decoder pretraining data", () => {
  it("is English only: no Khmer character in any sequence built from the miniature corpus", async () => {
    const lines = fs.readFileSync(path.join(repoRoot, "datasets/km-en-sample/km-en.mini.tsv"), "utf8").trim().split("\n")
    const english = lines.map((l) => l.split("\t")[0])
    expect(english.some((e) => KHMER.test(e))).toBe(false)
    expect(lines.every((l) => KHMER.test(l.split("\t")[1]))).toBe(true) // the other side is Khmer: the check can fail
    const tok = await Effect.runPromise(loadTokenizer("llama3"))
    const examples = decoderExamples(tok, english.slice(0, 300))
    expect(examples.length).toBe(300 * 5)
    for (const e of examples) {
      const text = tok.decode(e.ids)
      expect(KHMER.test(text)).toBe(false)
      expect(e.ids.length).toBe(e.labels.length)
    }
    // Each task example trains its answer and EOS only.
    const task = examples[1]
    expect(task.labels.filter((l) => l !== -100).at(-1)).toBe(tok.eosId)
    expect(tok.decode(task.ids)).toContain("Answer in English only.")
  })
})

describe("pretrainDecoder", () => {
  const config = { ...oddLlama, vocab_size: 300 }
  // Sequences from a small grammar: token i is followed by i+1 (mod a 40-token cycle starting at 100).
  const rng = makeRng(11)
  const examples = Array.from({ length: 64 }, () => {
    const start = Math.floor(rng.uniform() * 40)
    const ids = [1, ...Array.from({ length: 10 }, (_, j) => 100 + ((start + j) % 40))]
    return { ids, labels: [-100, ...ids.slice(1)] }
  })

  it("learns, writes zero head rows outside the shortlist, and its compact loss is the full loss", async () => {
    const init = initLlamaWeights(config, 3)
    const r = await pretrainDecoder(config, init, examples, [2], { steps: 60, batchSize: 16, lr: 1e-2, warmupSteps: 5, weightDecay: 0, seed: 1 })
    expect(r.shortlist.length).toBe(42) // 40 cycle tokens, BOS, EOS
    const first = r.curve.slice(0, 5).reduce((a, c) => a + c.loss, 0) / 5
    const last = r.curve.slice(-5).reduce((a, c) => a + c.loss, 0) / 5
    expect(first).toBeGreaterThan(Math.log(300) - 0.5) // near uniform over the full vocabulary at the start
    expect(last).toBeLessThan(first / 3)
    const head = r.weights.get("lm_head.weight")!
    const H = config.hidden_size
    const nonzero = (row: number) => head.data.subarray(row * H, (row + 1) * H).some((x) => x !== 0)
    expect(nonzero(100) && nonzero(2) && nonzero(1)).toBe(true)
    expect([0, 3, 50, 99, 140, 299].some(nonzero)).toBe(false)
    // Input rows outside the shortlist stay random (not zero): a fine-tune can still tell them apart.
    const embed = r.weights.get("model.embed_tokens.weight")!
    expect(embed.data.subarray(50 * H, 51 * H).some((x) => x !== 0)).toBe(true)
    const model = await Effect.runPromise(llamaFromWeights(config, r.weights, "pretrained"))
    expect(model.headRows?.ids.length).toBe(42)
    const full: LlamaModel = { ...model, headRows: undefined }
    const batch = examples.slice(0, 8)
    const input = { ids: batch.map((e) => [...e.ids]) }
    const targets = lmTargets(batch.map((e) => e.labels))
    const a = (await tf.tidy(() => lmLoss(model, input, targets, false)).data())[0]
    const b = (await tf.tidy(() => lmLoss(full, input, targets, false)).data())[0]
    expect(Math.abs(a - b)).toBeLessThan(1e-4)
    expect(a).toBeLessThan(first / 3)
  })

  describe("micro-batches", () => {
    // Rows of different lengths, so the parts pad differently and weigh by their own target counts.
    const ragged = examples.map((e, i) => {
      const n = 4 + (i % 7)
      return { ids: e.ids.slice(0, n), labels: e.labels.slice(0, n) }
    })
    const settings = { steps: 8, batchSize: 16, lr: 1e-2, warmupSteps: 2, weightDecay: 0.01, seed: 4 }
    const run = (microBatches: number, threads: number) =>
      pretrainDecoder(config, initLlamaWeights(config, 3), ragged, [2], { ...settings, microBatches, threads })

    it("cuts a batch into consecutive parts whose sizes differ by at most one", () => {
      expect(microBatchesOf([5, 6, 7, 8, 9], 2)).toEqual([[5, 6, 7], [8, 9]])
      expect(microBatchesOf([5, 6, 7, 8, 9, 10], 3)).toEqual([[5, 6], [7, 8], [9, 10]])
      expect(microBatchesOf([5, 6], 4)).toEqual([[5], [6]])
      expect(targetCount([{ ids: [1, 2, 3], labels: [-100, 2, 3] }, { ids: [1, 2, 3], labels: [-100, -100, 3] }])).toBe(3)
    })

    it("give the whole batch's loss, and train as the whole batch does up to float rounding", async () => {
      const whole = await run(1, 1)
      const parts = await run(3, 1)
      // the first step's loss is computed before any update: the parts' shares sum to the batch mean
      expect(Math.abs(parts.curve[0].loss - whole.curve[0].loss)).toBeLessThan(1e-5)
      whole.curve.forEach((c, i) => expect(Math.abs(parts.curve[i].loss - c.loss)).toBeLessThan(1e-3))
      expect(parts.curve.at(-1)!.loss).toBeLessThan(parts.curve[0].loss - 0.5) // it learns: the check can fail
    })

    it("give the same bytes on worker threads as on this thread", async () => {
      for (const m of [2, 3]) {
        const here = await run(m, 1)
        const there = await run(m, 2)
        expect(there.threads).toBe(2)
        expect(there.curve).toEqual(here.curve)
        for (const [name, t] of here.weights) expect([name, Buffer.from(there.weights.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer))]).toEqual([name, true])
      }
    })
  })
})

describe("encoder masked-LM", () => {
  it("masks about 15% of the ordinary tokens and never a special one", () => {
    const rows = Array.from({ length: 50 }, (_, b) => [0, ...Array.from({ length: 20 }, (_, j) => 4 + ((b + j) % 50)), 2, 1, 1])
    const c = mlmCorrupt(rows, 60, 59, 0.15, 7)
    const share = c.targets.length / (50 * 20)
    expect(share).toBeGreaterThan(0.1)
    expect(share).toBeLessThan(0.2)
    for (let i = 0; i < c.targets.length; i++) expect(c.targets[i]).toBeGreaterThanOrEqual(4)
    for (const [b, row] of rows.entries()) for (const p of [0, 21, 22, 23]) expect(c.ids[b][p]).toBe(row[p])
  })

  it("learns a corpus with structure (loss falls by a margin)", async () => {
    const config = { ...smallXlmr, vocab_size: 60 }
    const sentences = Array.from({ length: 64 }, (_, b) => [0, ...Array.from({ length: 12 }, (_, j) => 4 + ((b % 8) * 6 + j) % 54), 2])
    const r = await pretrainEncoder(config, initXlmrWeights(config, 2), sentences, 59, {
      steps: 80, batchSize: 16, lr: 5e-3, warmupSteps: 5, weightDecay: 0, seed: 3, maskProb: 0.15
    })
    const first = r.curve.slice(0, 5).reduce((a, c) => a + c.loss, 0) / 5
    const last = r.curve.slice(-10).reduce((a, c) => a + c.loss, 0) / 10
    expect(last).toBeLessThan(first - 1)
    expect(r.weights.has("mlm.dense.weight")).toBe(false)
    expect(r.weights.get("embeddings.word_embeddings.weight")!.shape).toEqual([60, config.hidden_size])
  })
})
