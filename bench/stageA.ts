/**
 * Stage A throughput: `node bench/stageA.ts [--quick]` (LLINK_BACKEND picks the backend; default auto = cpu-blas).
 *
 * 1. Training: optimizer steps/s of the `stageA` step loop (`makeTrainer`, the code the stage runs) with a FULL
 *    hard-negative queue, for the tiny run's shapes (32 → 128 → 64, micro-batch 32 × 1, queue 1,024, 64 negatives)
 *    and the paper's (768 → 3,072 → 2,048, micro-batch 8 × 16, queue 32,768, 256 negatives, shared-mean), with the
 *    achieved GFLOP/s as a fraction of measured sgemm peak, and the time of 20,000 steps.
 * 2. Encoding: sentences/s of `encode` and `teacher` batches (`encodeTokenized`, `teacherFromIds`, length-sorted as
 *    the stages batch them) on the tiny checkpoints (real Khmer–English sentences when ../shared/data/km-en is
 *    present, else synthetic ones).
 * 3. Real-size cost: a Llama-3.2-1B-shaped decoder stack (hidden 2,048, 32 heads / 8 KV heads, intermediate 8,192,
 *    2 layers, random weights, ~40 tokens, batch 8) and an xlm-roberta-base-shaped encoder stack (hidden 768,
 *    12 heads, intermediate 3,072, 2 layers, ~64 tokens, batch 32), extrapolated to the full 16 / 12 layers and to
 *    the paper's 140,000 teacher / encoder passes.
 * Random weights and inputs with fixed seeds; prints measurements, never verdicts.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { AdamW } from "../src/backend/adamw.ts"
import { loadBlas } from "../src/backend/blas.ts"
import { initBackend } from "../src/backend/select.ts"
import type { LlamaConfig, XlmRobertaConfig } from "../src/models/hfconfig.ts"
import { tinyLlamaConfig, tinyXlmrConfig } from "../src/models/hfconfig.ts"
import { initLlamaWeights, initTinyModels, initXlmrWeights } from "../src/models/init.ts"
import { disposeLlama, forward, llamaFromWeights, loadDecoder } from "../src/models/llama.ts"
import * as Projector from "../src/models/projector.ts"
import { fillNormal, makeRng } from "../src/models/rng.ts"
import { loadTokenizer, reservedTokens } from "../src/models/tokenizer.ts"
import { disposeXlmr, embedSentences, loadEncoder, xlmrFromWeights } from "../src/models/xlmr.ts"
import { StageAConfig } from "../src/nodes/stageA/params.ts"
import { hostMatmul } from "../src/backend/host.ts"
import { planBatches } from "../src/artifacts/matrixJob.ts"
import { encodeTokenized, foreignTokenIds } from "../src/nodes/encode/work.ts"
import { teacherFromIds } from "../src/nodes/teacher/work.ts"
import { teacherPromptIds } from "../src/prompts/teacher.ts"
import { makeTrainer } from "../src/nodes/stageA/work.ts"
import { TeacherQueue } from "../src/train/queue.ts"

const quick = process.argv.includes("--quick")
const info = await initBackend()
console.log(`backend: ${info.description}`)
console.log(`cpu: ${os.cpus()[0]?.model ?? "?"} × ${os.availableParallelism()}`)
const { matmul, name: matmulName } = hostMatmul(info)

const now = () => performance.now()
const fmt = (x: number, d = 1) => x.toFixed(d)
const hours = (s: number) => (s >= 3600 ? `${fmt(s / 3600)} h` : s >= 60 ? `${fmt(s / 60)} min` : `${fmt(s)} s`)

// ---------------------------------------------------------------------------------------------------------------
// sgemm peak (float32), for the fractions below

const sgemmPeak = (): number => {
  const blas = loadBlas()
  const n = 2048
  const a = fillNormal(makeRng(1), n * n, 1)
  const b = fillNormal(makeRng(2), n * n, 1)
  const c = new Float32Array(n * n)
  blas.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
  const reps = 3
  const t = now()
  for (let r = 0; r < reps; r++) blas.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
  return (reps * 2 * n ** 3) / ((now() - t) / 1000) / 1e9
}
const peak = sgemmPeak()
console.log(`sgemm peak (2048³, float32): ${fmt(peak)} GFLOP/s`)

// ---------------------------------------------------------------------------------------------------------------
// 1. Stage A steps/s

interface TrainShape {
  readonly label: string
  readonly dIn: number
  readonly dOut: number
  readonly micro: number
  readonly accumulation: number
  readonly queue: number
  readonly negatives: number
  readonly rows: number
  readonly steps: number
}

const benchTrain = async (s: TrainShape): Promise<void> => {
  const params = Schema.decodeUnknownSync(StageAConfig)({
    steps: 20_000,
    microBatch: s.micro,
    accumulation: s.accumulation,
    queueSize: s.queue,
    hardNegatives: s.negatives
  })
  const rng = makeRng(7)
  const z = { rows: s.rows, dim: s.dIn, data: fillNormal(rng, s.rows * s.dIn, 1) }
  const h = { rows: s.rows, dim: s.dOut, data: fillNormal(rng, s.rows * s.dOut, 1) }
  const config = Projector.makeConfig(s.dIn, s.dOut)
  const proj = Projector.init(config, 17)
  const opt = new AdamW([...proj.variables], { lr: params.lr, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 })
  const queue = new TeacherQueue(s.queue, s.dOut)
  for (let filled = 0; filled < s.queue; filled += s.rows) queue.enqueue(h.data, Math.min(s.rows, s.queue - filled))
  const trainer = makeTrainer({ params, zTrain: z, hTrain: h, proj, opt, queue, matmul, step: 3000, cursor: { epoch: 0, index: 0 } })
  await trainer.next()
  await trainer.next()
  // the hard-negative selection alone (one micro-batch against the full queue)
  const p = fillNormal(rng, s.micro * s.dOut, 1)
  const ts = now()
  const selReps = 5
  for (let r = 0; r < selReps; r++) queue.selectHard(p, s.micro, s.negatives, "shared-mean", { matmul })
  const selMs = (now() - ts) / selReps
  const t = now()
  for (let i = 0; i < s.steps; i++) await trainer.next()
  const sec = (now() - t) / 1000 / s.steps
  const rowsPerStep = s.micro * s.accumulation
  const mlpFlops = 6 * rowsPerStep * (s.dIn * config.dHidden + config.dHidden * s.dOut)
  const queueFlops = s.accumulation * 2 * s.queue * s.dOut // each micro-batch's mean·Qᵀ
  const gflops = (mlpFlops + queueFlops) / sec / 1e9
  console.log(
    `  ${s.label}: ${fmt(1 / sec, 2)} steps/s (${fmt(sec * 1000)} ms/step; for scale: one plain selectHard over the full queue ` +
      `${fmt(selMs)} ms, the step does ${s.accumulation} through one block product); ~${fmt(gflops)} GFLOP/s = ${fmt((100 * gflops) / peak)}% of sgemm peak; 20,000 steps ≈ ${hours(20_000 * sec)}`
  )
  opt.dispose()
  Projector.dispose(proj)
}

console.log(`\n1. Stage A training (full queue, ${matmulName} matmul for queue scores)`)
await benchTrain({ label: "tiny 32→128→64, micro 32 × 1, queue 1,024, K 64", dIn: 32, dOut: 64, micro: 32, accumulation: 1, queue: 1024, negatives: 64, rows: 2000, steps: quick ? 20 : 100 })
await benchTrain({ label: "paper 768→3072→2048, micro 8 × 16, queue 32,768, K 256", dIn: 768, dOut: 2048, micro: 8, accumulation: 16, queue: 32_768, negatives: 256, rows: 4096, steps: quick ? 2 : 6 })

// ---------------------------------------------------------------------------------------------------------------
// 2. Tiny checkpoints: sentences/s

const dataFile = path.resolve(import.meta.dirname, "../../shared/data/km-en/mixed_real_pairs.en-km.tsv")
const pairs: Array<readonly [string, string]> = fs.existsSync(dataFile)
  ? fs.readFileSync(dataFile, "utf8").split("\n").filter((l) => l.includes("\t")).slice(0, 512).map((l) => {
    const [en, km] = l.split("\t")
    return [en, km.replace(/[\u200b-\u200d\ufeff]/g, "")] as const
  })
  : Array.from({ length: 512 }, (_, i) => [`Sentence number ${i} about fish and rice.`, `ប្រយោគ ${i} អំពី ត្រី និង បាយ។`] as const)
console.log(`\n2. encode / teacher on the tiny checkpoints (${fs.existsSync(dataFile) ? "real" : "synthetic"} sentences)`)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-stageA-"))
try {
  await Effect.runPromise(initTinyModels(tmp, { seed: 1, sentences: pairs.flat() }))
  const enc = await Effect.runPromise(loadEncoder(path.join(tmp, "encoder")))
  const etok = await Effect.runPromise(loadTokenizer(path.join(tmp, "encoder")))
  const n = quick ? 128 : 512
  const km = pairs.slice(0, n).map((p) => p[1])
  const en = pairs.slice(0, n).map((p) => p[0])
  // as the stages batch: everything tokenised first, then length-sorted windows (`planBatches`)
  const seqs = km.map((s) => foreignTokenIds(etok, s, 2, { maxChars: 256, maxTokens: 256 }))
  await encodeTokenized(enc, seqs.slice(0, 32))
  let t = now()
  for (const rows of planBatches(seqs.map((q) => q.length), 32)) await encodeTokenized(enc, Array.from(rows, (i) => seqs[i]))
  const meanLen = seqs.reduce((a, q) => a + q.length, 0) / seqs.length
  console.log(`  encode (tiny XLM-R, batch 32, ${fmt(meanLen)} tokens/sentence): ${fmt(n / ((now() - t) / 1000))} sentences/s`)
  disposeXlmr(enc)
  const added = reservedTokens(8)
  const dec = await Effect.runPromise(loadDecoder(path.join(tmp, "decoder"), { addedTokens: added, embeddingInit: "zeros" }))
  const dtok = await Effect.runPromise(loadTokenizer(path.join(tmp, "decoder"), { addedTokens: added }))
  const fe = dtok.tokenToId("<foreign_emb>") ?? 0
  const prompts = en.map((e) => teacherPromptIds(dtok, e, fe, { template: "paper", maxTokens: 128 }))
  const meanPrompt = prompts.reduce((a, q) => a + q.length, 0) / prompts.length
  for (const bs of [8, 32]) {
    await teacherFromIds(dec, prompts.slice(0, bs), 128009)
    t = now()
    for (const rows of planBatches(prompts.map((q) => q.length), bs)) await teacherFromIds(dec, Array.from(rows, (i) => prompts[i]), 128009)
    console.log(`  teacher (tiny Llama, batch ${bs}, ${fmt(meanPrompt)} tokens/prompt): ${fmt(n / ((now() - t) / 1000))} sentences/s`)
  }
  disposeLlama(dec)
} finally {
  fs.rmSync(tmp, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Real-size layer stacks, extrapolated

console.log("\n3. Real-size stacks (2 layers, random weights), extrapolated to the full models and 140,000 passes")
const PASSES = 140_000

{
  const layers = 2
  const config: LlamaConfig = {
    ...tinyLlamaConfig,
    vocab_size: 4096, // a stand-in vocabulary: the gather costs nothing, and the LM head is not run
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: layers,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64
  }
  const tBuild = now()
  const model = await Effect.runPromise(llamaFromWeights(config, initLlamaWeights(config, 5), "bench"))
  const B = 8
  const T = 40
  const rng = makeRng(9)
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rng.uniform() * 4096)))
  const gather = { batch: ids.map((_, b) => b), position: ids.map(() => T - 1) }
  const run = () => {
    const out = forward(model, { ids }, { gather })
    out.hidden.dataSync()
    out.hidden.dispose()
  }
  console.log(`  Llama-1B-shaped stack built in ${fmt((now() - tBuild) / 1000)} s`)
  run()
  const reps = quick ? 1 : 3
  const t = now()
  for (let r = 0; r < reps; r++) run()
  const perBatch = (now() - t) / 1000 / reps
  const perLayer = perBatch / layers
  const full = perLayer * 16
  const params = 2048 * 2048 * 2 + 2048 * 512 * 2 + 3 * 2048 * 8192
  const flops = 2 * B * T * params * layers
  console.log(
    `  Llama-3.2-1B shape, ${layers} layers, batch ${B} × ${T} tokens: ${fmt(perBatch * 1000)} ms/batch ` +
      `(${fmt(flops / perBatch / 1e9)} GFLOP/s = ${fmt((100 * flops) / perBatch / 1e9 / peak)}% of sgemm peak)`
  )
  console.log(
    `  → 16 layers: ${fmt(full * 1000)} ms per batch of ${B} = ${fmt(B / full)} sentences/s; ` +
      `${PASSES.toLocaleString("en-US")} teacher passes ≈ ${hours((PASSES / B) * full)} on this machine`
  )
  disposeLlama(model)
}

{
  const layers = 2
  const config: XlmRobertaConfig = {
    ...tinyXlmrConfig,
    vocab_size: 4096,
    hidden_size: 768,
    num_hidden_layers: layers,
    num_attention_heads: 12,
    intermediate_size: 3072
  }
  const model = await Effect.runPromise(xlmrFromWeights(config, initXlmrWeights(config, 5), "bench"))
  const B = 32
  const T = 64
  const rng = makeRng(11)
  const ids = Array.from({ length: B }, () => [0, ...Array.from({ length: T - 2 }, () => 4 + Math.floor(rng.uniform() * 4000)), 2])
  const run = () => {
    const z = embedSentences(model, { ids })
    z.dataSync()
    z.dispose()
  }
  run()
  const reps = quick ? 1 : 3
  const t = now()
  for (let r = 0; r < reps; r++) run()
  const perBatch = (now() - t) / 1000 / reps
  const full = (perBatch / layers) * 12
  const flops = 2 * B * T * (4 * 768 * 768 + 2 * 768 * 3072) * layers
  console.log(
    `  xlm-roberta-base shape, ${layers} layers, batch ${B} × ${T} tokens: ${fmt(perBatch * 1000)} ms/batch ` +
      `(${fmt(flops / perBatch / 1e9)} GFLOP/s = ${fmt((100 * flops) / perBatch / 1e9 / peak)}% of sgemm peak)`
  )
  console.log(
    `  → 12 layers: ${fmt(B / full)} sentences/s; ${PASSES.toLocaleString("en-US")} encoder passes ≈ ${hours((PASSES / B) * full)}`
  )
  disposeXlmr(model)
}
console.log(`\ntensors still allocated: ${tf.memory().numTensors}`)
