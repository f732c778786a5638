/**
 * Speed at the paper's shapes on the backend LLINK_BACKEND names, as one JSON object:
 *   LLINK_BACKEND=webgpu node bench/device/measure.ts --out FILE [--scale paper|cpu|smoke] [--decoder DIR] [--encoder DIR]
 *
 * 1. backend (and the WebGPU adapter);
 * 2. matmul GFLOP/s of an n³ float32 product through tfjs (n = 4096 at `paper`);
 * 3. forward tokens/s of a Llama-3.2-1B-shaped decoder (16 layers, batch 8 × 128, final hidden states; no LM head,
 *    as the teacher runs it) and of an xlm-roberta-base-shaped encoder (12 layers, batch 32 × 64), random weights,
 *    with achieved GFLOP/s as a share of (2);
 * 4. one Stage A optimizer step at the paper's shapes (768 → 3,072 → 2,048, micro-batch 8 × 16, a full 32,768-entry
 *    queue, 256 hard negatives, shared-mean; the stage's own `makeTrainer`);
 * 5. Stage B micro-batches at the paper's shapes (1B decoder, LoRA r16 on q/k/v/o/gate/up/down, K = 8 slots,
 *    8 × 768 tokens, 3,072 target tokens): forward + backward of `stageBLoss`, with and without the L_zero pass;
 * 6. greedy generation tokens/s (batch 16, 64 new tokens, KV cache);
 * 7. the paper run's hours from these, stage by stage (the assumptions are written next to each figure).
 * `--decoder`/`--encoder` load those checkpoints (e.g. `llink init-models --preset paper`'s) instead of drawing
 * random weights here (which costs a minute of single-threaded JavaScript for the 1B decoder). `cpu` runs (3)–(6)
 * smaller where a CPU would take minutes (4 layers when drawing weights, batch 1 for Stage B) and scales up
 * linearly; `smoke` is a seconds-long check of this script with tiny shapes. Each section that fails records its
 * error and the others still run. Random weights and inputs with fixed seeds.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import { AdamW } from "../../src/backend/adamw.ts"
import { onHost, readScalars } from "../../src/backend/read.ts"
import { initBackend } from "../../src/backend/select.ts"
import { probeWebgpu } from "../../src/backend/webgpu.ts"
import type { LlamaConfig, XlmRobertaConfig } from "../../src/models/hfconfig.ts"
import { baseXlmrConfig, oneBLlamaConfig, tinyLlamaConfig, tinyXlmrConfig } from "../../src/models/hfconfig.ts"
import { initLlamaWeights, initXlmrWeights } from "../../src/models/init.ts"
import { disposeLlama, forward, generate, llamaFromWeights, loadDecoder, withLora } from "../../src/models/llama.ts"
import { createLora, defaultLoraConfig, disposeLora, loraVariables } from "../../src/models/lora.ts"
import * as Projector from "../../src/models/projector.ts"
import { fillNormal, makeRng } from "../../src/models/rng.ts"
import { disposeSlots, initSlots, makeSlotConfig, slotsFromZ } from "../../src/models/slots.ts"
import { disposeXlmr, embedSentences, loadEncoder, xlmrFromWeights } from "../../src/models/xlmr.ts"
import { StageAConfig } from "../../src/nodes/stageA/params.ts"
import { makeTrainer } from "../../src/nodes/stageA/work.ts"
import { DeviceQueue } from "../../src/train/deviceQueue.ts"
import { matMulABtJs } from "../../src/train/hostMath.ts"
import { TeacherQueue } from "../../src/train/queue.ts"
import { defaultStageBLossConfig, lmTargets, stageBLoss } from "../../src/train/stageBLoss.ts"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const outFile = arg("out")
const scale = (arg("scale") ?? "paper") as "paper" | "cpu" | "smoke"
if (!["paper", "cpu", "smoke"].includes(scale)) throw new Error(`--scale must be paper, cpu or smoke (got ${scale})`)
const smoke = scale === "smoke"
const decoderDir = arg("decoder")
const encoderDir = arg("encoder")

const now = () => performance.now()
const result: Record<string, unknown> = { scale, startedAt: new Date().toISOString(), host: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), memGiB: os.totalmem() / 2 ** 30 } }
const save = () => {
  if (outFile !== undefined) fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + "\n")
}

/** Runs one section; an error is recorded in the JSON (and printed), not swallowed, and the next section runs. */
const section = async (name: string, fn: () => Promise<Record<string, unknown>>) => {
  const t = now()
  process.stderr.write(`[measure] ${name}…\n`)
  try {
    result[name] = { ...(await fn()), seconds: (now() - t) / 1000 }
  } catch (e) {
    const message = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e)
    process.stderr.write(`[measure] ${name} failed: ${message}\n`)
    result[name] = { error: message, seconds: (now() - t) / 1000 }
  }
  process.stderr.write(`[measure] ${name}: ${JSON.stringify(result[name]).slice(0, 400)}\n`)
  save()
}

/** Seconds per call of `fn` (which must end with a read that waits for the device), after `warm` calls. */
const timeIt = async (fn: () => Promise<void>, reps: number, warm = 1): Promise<number> => {
  for (let i = 0; i < warm; i++) await fn()
  const t = now()
  for (let i = 0; i < reps; i++) await fn()
  return (now() - t) / 1000 / reps
}

const info = await initBackend()
result.backend = { choice: info.choice, tfBackend: info.tfBackend, description: info.description, reason: info.reason }
if (info.tfBackend === "webgpu") {
  const probe = await probeWebgpu()
  result.adapter = probe.ok ? probe.adapter : { error: probe.why }
}
save()

// ---------------------------------------------------------------------------------------------------------------
// 2. matmul

let peakGflops = Number.NaN
await section("matmul", async () => {
  const n = smoke ? 256 : scale === "cpu" ? 2048 : 4096
  const rng = makeRng(1)
  const a = tf.tensor2d(fillNormal(rng, n * n, 1), [n, n])
  const b = tf.tensor2d(fillNormal(rng, n * n, 1), [n, n])
  const reps = smoke ? 2 : 10
  const sec = await timeIt(async () => {
    const c = tf.matMul(a, b)
    const s = tf.sum(c)
    await s.data()
    tf.dispose([c, s])
  }, reps, 2)
  tf.dispose([a, b])
  peakGflops = (2 * n ** 3) / sec / 1e9
  return { n, msPerProduct: sec * 1000, gflops: peakGflops }
})

// ---------------------------------------------------------------------------------------------------------------
// 3. forward passes

let llamaShape: LlamaConfig = smoke ? tinyLlamaConfig : { ...oneBLlamaConfig, num_hidden_layers: scale === "cpu" ? 4 : 16 }
const fullLlamaLayers = smoke ? tinyLlamaConfig.num_hidden_layers : 16
const decoderParamsPerToken = (c: LlamaConfig): number => {
  const H = c.hidden_size
  const kv = c.num_key_value_heads * (c.head_dim ?? H / c.num_attention_heads)
  return c.num_hidden_layers * (2 * H * H + 2 * H * kv + 3 * H * c.intermediate_size)
}

let decoderTokensPerSecond = Number.NaN
let decoder: Awaited<ReturnType<typeof buildDecoder>> | undefined
const buildDecoder = async () => {
  if (decoderDir === undefined) return Effect.runPromise(llamaFromWeights(llamaShape, initLlamaWeights(llamaShape, 5), "bench"))
  const model = await Effect.runPromise(loadDecoder(decoderDir))
  llamaShape = model.config
  return model
}

await section("decoderForward", async () => {
  const t0 = now()
  decoder = await buildDecoder()
  const buildSeconds = (now() - t0) / 1000
  const B = smoke ? 2 : 8
  const T = smoke ? 16 : 128
  const rng = makeRng(9)
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rng.uniform() * 100_000)))
  const gather = { batch: ids.map((_, b) => b), position: ids.map(() => T - 1) }
  const model = decoder
  const sec = await timeIt(async () => {
    const out = forward(model, { ids }, { gather })
    await out.hidden.data()
    out.hidden.dispose()
  }, smoke ? 1 : 3)
  const layerScale = fullLlamaLayers / llamaShape.num_hidden_layers
  const flops = 2 * B * T * decoderParamsPerToken(llamaShape)
  decoderTokensPerSecond = (B * T) / (sec * layerScale)
  return {
    layers: llamaShape.num_hidden_layers,
    extrapolatedTo: fullLlamaLayers,
    batch: B,
    tokens: T,
    weights: decoderDir ?? "random (drawn here)",
    buildSeconds,
    msPerBatch: sec * 1000,
    tokensPerSecond16Layers: decoderTokensPerSecond,
    gflops: flops / sec / 1e9,
    shareOfMatmulPeak: flops / sec / 1e9 / peakGflops
  }
})

let encoderSentencesPerSecond = Number.NaN
await section("encoderForward", async () => {
  const drawn: XlmRobertaConfig = smoke ? tinyXlmrConfig : { ...baseXlmrConfig, num_hidden_layers: scale === "cpu" ? 4 : 12 }
  const model = encoderDir === undefined
    ? await Effect.runPromise(xlmrFromWeights(drawn, initXlmrWeights(drawn, 5), "bench"))
    : await Effect.runPromise(loadEncoder(encoderDir))
  const config = model.config
  const layers = config.num_hidden_layers
  const B = smoke ? 4 : 32
  const T = smoke ? 16 : 64
  const rng = makeRng(11)
  const V = config.vocab_size
  const ids = Array.from({ length: B }, () => [0, ...Array.from({ length: T - 2 }, () => 4 + Math.floor(rng.uniform() * (V - 4))), 2])
  const sec = await timeIt(async () => {
    const z = embedSentences(model, { ids })
    await z.data()
    z.dispose()
  }, smoke ? 1 : 3)
  disposeXlmr(model)
  const full = smoke ? layers : 12
  encoderSentencesPerSecond = B / (sec * (full / layers))
  const H = config.hidden_size
  const flops = 2 * B * T * layers * (4 * H * H + 2 * H * config.intermediate_size)
  return { layers, extrapolatedTo: full, batch: B, tokens: T, msPerBatch: sec * 1000, sentencesPerSecond12Layers: encoderSentencesPerSecond, gflops: flops / sec / 1e9, shareOfMatmulPeak: flops / sec / 1e9 / peakGflops }
})

// ---------------------------------------------------------------------------------------------------------------
// 4. Stage A step

let stageAStepSeconds = Number.NaN
await section("stageAStep", async () => {
  const s = smoke
    ? { dIn: 32, dOut: 64, micro: 8, accumulation: 2, queue: 256, negatives: 16, rows: 256 }
    : { dIn: 768, dOut: 2048, micro: 8, accumulation: 16, queue: 32_768, negatives: 256, rows: 4096 }
  const params = Schema.decodeUnknownSync(StageAConfig)({ steps: 20_000, microBatch: s.micro, accumulation: s.accumulation, queueSize: s.queue, hardNegatives: s.negatives, hardNegativeRule: "shared-mean" })
  const rng = makeRng(7)
  const z = { rows: s.rows, dim: s.dIn, data: fillNormal(rng, s.rows * s.dIn, 1) }
  const h = { rows: s.rows, dim: s.dOut, data: fillNormal(rng, s.rows * s.dOut, 1) }
  const proj = Projector.init(Projector.makeConfig(s.dIn, s.dOut), 17)
  const opt = new AdamW([...proj.variables], { lr: params.lr, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 })
  const queue = new TeacherQueue(s.queue, s.dOut)
  for (let filled = 0; filled < s.queue; filled += s.rows) queue.enqueue(h.data, Math.min(s.rows, s.queue - filled))
  const device = onHost() ? undefined : new DeviceQueue(queue)
  const trainer = makeTrainer({ params, zTrain: z, hTrain: h, proj, opt, queue, matmul: matMulABtJs, step: 3000, cursor: { epoch: 0, index: 0 }, ...(device === undefined ? {} : { device }) })
  stageAStepSeconds = await timeIt(async () => {
    await trainer.next()
  }, smoke ? 2 : 5, 2)
  device?.dispose()
  opt.dispose()
  Projector.dispose(proj)
  return { ...s, queueFull: true, deviceQueue: device !== undefined, msPerStep: stageAStepSeconds * 1000 }
})

// ---------------------------------------------------------------------------------------------------------------
// 5. Stage B micro-batches

let stageBMicroSeconds = { plain: Number.NaN, withZero: Number.NaN }
const stageBMicro = smoke ? 2 : scale === "cpu" ? 1 : 8
await section("stageBMicroBatch", async () => {
  if (decoder === undefined) throw new Error("no decoder (decoderForward failed)")
  const base = decoder
  const config = llamaShape
  const H = config.hidden_size
  const K = 8
  const B = stageBMicro
  const T = smoke ? 32 : 768
  const answer = smoke ? 8 : 384 // target tokens per row: 8 × 384 = 3,072 at the paper's shapes
  const lora = createLora(config, defaultLoraConfig, 3)
  const model = withLora(base, lora)
  const slots = initSlots(makeSlotConfig(H, K), 4)
  const dIn = smoke ? 32 : 768
  const proj = Projector.init(Projector.makeConfig(dIn, H), 5)
  const rng = makeRng(13)
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rng.uniform() * 100_000)))
  const slotPositions = ids.map(() => Array.from({ length: K }, (_, k) => 20 + k))
  const labels = ids.map((row) => row.map((id, p) => (p >= T - answer ? id : -100)))
  const targets = lmTargets(labels)
  const z = tf.tensor2d(fillNormal(rng, B * dIn, 1), [B, dIn])
  const teacher = tf.tensor2d(fillNormal(rng, B * H, 1), [B, H])
  const vars = [...loraVariables(lora), ...slots.variables]
  const opt = new AdamW(vars, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 })
  const micro = (withZero: boolean) => async () => {
    const { value, grads } = tf.variableGrads(() => {
      const s = slotsFromZ(proj, slots, z)
      return stageBLoss({ model, input: { ids }, slotPositions, targets, slots: s, teacher, withZero, training: true }, defaultStageBLossConfig).total
    }, vars)
    opt.step(grads)
    await readScalars([value])
    tf.dispose([value, ...Object.values(grads)])
  }
  const reps = smoke ? 1 : 2
  const plain = await timeIt(micro(false), reps)
  const withZero = await timeIt(micro(true), reps)
  stageBMicroSeconds = { plain: (plain * 8) / B, withZero: (withZero * 8) / B }
  tf.dispose([z, teacher])
  opt.dispose()
  disposeSlots(slots)
  Projector.dispose(proj)
  disposeLora(lora)
  return { batch: B, scaledToBatch: 8, tokens: T, targetTokens: B * answer, slots: K, loraRank: defaultLoraConfig.rank, layers: config.num_hidden_layers, msPerMicroBatch8: stageBMicroSeconds.plain * 1000, msPerMicroBatch8WithZero: stageBMicroSeconds.withZero * 1000 }
})

// ---------------------------------------------------------------------------------------------------------------
// 6. generation

let generateTokensPerSecond = Number.NaN
await section("generate", async () => {
  if (decoder === undefined) throw new Error("no decoder (decoderForward failed)")
  const model = decoder
  const B = smoke ? 2 : 16
  const newTokens = smoke ? 4 : 64
  const rng = makeRng(17)
  const prompts = Array.from({ length: B }, () => Array.from({ length: smoke ? 8 : 96 }, () => Math.floor(rng.uniform() * 100_000)))
  const sec = await timeIt(async () => {
    await generate(model, prompts, { maxNewTokens: newTokens, stopIds: [-1] })
  }, 1, smoke ? 0 : 1)
  const layerScale = fullLlamaLayers / llamaShape.num_hidden_layers
  generateTokensPerSecond = (B * newTokens) / (sec * layerScale)
  return { batch: B, newTokens, promptTokens: prompts[0].length, secondsPerBatch: sec, newTokensPerSecond16Layers: generateTokensPerSecond }
})
if (decoder !== undefined) disposeLlama(decoder)

// ---------------------------------------------------------------------------------------------------------------
// 7. the paper run, extrapolated (configs/paper.json's sizes)

{
  const PAIRS = 140_000
  const TEACHER_TOKENS = 64 // assumed mean teacher prompt length (template + a 256-character English sentence)
  const SFT_TRAIN = 40_000
  const stageBSteps = 3 * Math.ceil(SFT_TRAIN / (8 * 16)) // 3 epochs, micro-batch 8 × accumulation 16
  const microPerStep = 16
  const contrastShare = 1 / 3 // contrastEvery 3
  const stageBMicro = (1 - contrastShare) * stageBMicroSeconds.plain + contrastShare * stageBMicroSeconds.withZero
  const EVAL_PROMPTS = 4 * 500 // 4 buckets × evalPerBucket 500
  const hours = (s: number) => s / 3600
  const stages = {
    encode: { hours: hours(PAIRS / encoderSentencesPerSecond), assumes: "140,000 sentences at the 32 × 64-token rate" },
    teacher: { hours: hours((PAIRS * TEACHER_TOKENS) / decoderTokensPerSecond), assumes: `140,000 passes × ${TEACHER_TOKENS} tokens at the 8 × 128-token rate` },
    stageA: { hours: hours(20_000 * stageAStepSeconds), assumes: "20,000 steps with a full queue" },
    stageB: { hours: hours(stageBSteps * microPerStep * stageBMicro), assumes: `${stageBSteps} steps × 16 micro-batches of 8 × 768, L_zero every 3rd` },
    finetune: { hours: hours(stageBSteps * microPerStep * stageBMicroSeconds.plain), assumes: "as Stage B without L_zero (an upper bound: no slot module)" },
    generate: { hours: hours((3 * EVAL_PROMPTS * 64) / generateTokensPerSecond), assumes: "3 systems × 2,000 prompts × 64 new tokens at the batch-16 rate" },
    retrievalFull: { hours: hours((2 * 1024 * TEACHER_TOKENS) / decoderTokensPerSecond), assumes: "2 × 1,024 decoder passes" }
  }
  const total = Object.values(stages).reduce((a, s) => a + (Number.isFinite(s.hours) ? s.hours : 0), 0)
  result.paperRun = { stages, totalHours: total, excludes: "synthesis and judging (endpoint-bound), ingest/clean/split (minutes)" }
}
result.finishedAt = new Date().toISOString()
result.tensorsLeft = tf.memory().numTensors
save()
console.log(JSON.stringify(result))
