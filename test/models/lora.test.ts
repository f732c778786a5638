import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { disposeLlama, forward, llamaFromWeights, withLora } from "../../src/models/llama.ts"
import type { LoraAdapters, LoraConfig } from "../../src/models/lora.ts"
import {
  createLora,
  disposeLora,
  loadLora,
  loraToHost,
  loraVariables,
  peftName,
  saveLora
} from "../../src/models/lora.ts"
import { makeRng } from "../../src/models/rng.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"
import { readSafetensorsHeader } from "../../src/models/safetensors.ts"
import { maskedMaxDiff, randomIds, randomLlamaWeights, setupCpu, smallLlama, toMats } from "../support/modelFixtures.ts"
import type { LoraTargetName, ReferenceLora } from "../support/reference.ts"
import { linear, llamaReference, loraLinear, maxAbsDiff } from "../support/reference.ts"

const TOL = 1e-4
const codeTargets: LoraConfig = { rank: 4, alpha: 8, dropout: 0.05, targets: ["q", "k", "v", "o", "up", "down"] }

beforeAll(setupCpu)

const base = () => {
  const weights = randomLlamaWeights(smallLlama, 17)
  return { weights, model: Effect.runSync(llamaFromWeights(smallLlama, weights, "<memory>")) }
}

/** Give every B a random value so the adapters do something. */
const randomiseB = (adapters: LoraAdapters, seed: number) => {
  const rng = makeRng(seed)
  for (const layer of adapters.layers) {
    for (const pair of Object.values(layer)) {
      const v = pair.b
      v.assign(tf.tidy(() => tf.tensor(Array.from({ length: v.size }, () => 0.3 * rng.normal()), v.shape)))
    }
  }
}

const referenceLora = async (adapters: LoraAdapters): Promise<ReferenceLora> => {
  const host = await loraToHost(smallLlama, adapters)
  return {
    scale: adapters.scale,
    layers: adapters.layers.map((layer, l) => {
      const out: Partial<Record<LoraTargetName, { a: HostTensor; b: HostTensor }>> = {}
      for (const t of Object.keys(layer) as Array<LoraTargetName>) {
        out[t] = { a: host.get(peftName(smallLlama, l, t, "A"))!, b: host.get(peftName(smallLlama, l, t, "B"))! }
      }
      return out
    })
  }
}

describe("LoRA", () => {
  it("the reference LoRA linear is x·Wᵀ + s·(x·Aᵀ)·Bᵀ", () => {
    const x = [Float64Array.from([1, 2])]
    const w = { shape: [1, 2], data: Float32Array.from([3, 4]) }
    const a = { shape: [1, 2], data: Float32Array.from([1, 1]) }
    const b = { shape: [1, 1], data: Float32Array.from([2]) }
    expect([...loraLinear(x, w, a, b, 0.5)[0]]).toEqual([11 + 0.5 * 3 * 2])
    expect([...linear(x, w)[0]]).toEqual([11])
  })

  it("fresh adapters (B = 0) leave the output exactly equal to the base model's", () => {
    const { model } = base()
    const adapters = createLora(smallLlama, codeTargets, 1)
    const ids = randomIds(1, 2, 6, 61)
    const h0 = forward(model, { ids }).hidden
    const h1 = forward(withLora(model, adapters), { ids }).hidden
    expect(maxAbsDiff(h0.dataSync(), h1.dataSync())).toBe(0)
    // A is kaiming-uniform: U(−1/√in, 1/√in), using most of the range.
    const a = adapters.layers[0].q!.a.dataSync()
    const bound = 1 / Math.sqrt(32)
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound)
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.9 * bound)
    expect(adapters.layers[1].down!.b.dataSync().every((v) => v === 0)).toBe(true)
    expect(adapters.layers[0].gate).toBeUndefined()
    tf.dispose([h0, h1])
    disposeLora(adapters)
    disposeLlama(model)
  })

  it("adapted forward matches the float64 reference with LoRA linears", async () => {
    const { model, weights } = base()
    const adapters = createLora(smallLlama, { ...codeTargets, targets: ["q", "k", "v", "o", "gate", "up", "down"] }, 2)
    randomiseB(adapters, 3)
    const ids = randomIds(2, 2, 7, 61)
    const mask = [
      [1, 1, 1, 1, 1, 1, 1],
      [0, 0, 1, 1, 1, 1, 1]
    ]
    const h = forward(withLora(model, adapters), { ids, attentionMask: mask }).hidden
    const ref = llamaReference(smallLlama, weights, ids, mask, { lora: await referenceLora(adapters) })
    expect(maskedMaxDiff(toMats(h), ref, mask)).toBeLessThan(TOL)
    const plain = llamaReference(smallLlama, weights, ids, mask)
    expect(maskedMaxDiff(toMats(h), plain, mask)).toBeGreaterThan(1e-2) // the adapters do change the output
    h.dispose()
    disposeLora(adapters)
    disposeLlama(model)
  })

  it("only the LoRA matrices are trainable; gradients reach exactly them", () => {
    const { model } = base()
    const adapters = createLora(smallLlama, codeTargets, 4)
    const vars = loraVariables(adapters)
    expect(vars.length).toBe(2 * 6 * 2)
    const registered = Object.values(tf.engine().registeredVariables).filter((v) => v.trainable)
    expect(new Set(registered.map((v) => v.name))).toEqual(new Set(vars.map((v) => v.name)))
    const lm = withLora(model, adapters)
    const ids = randomIds(3, 1, 5, 61)
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(forward(lm, { ids }, { training: true }).hidden)) as tf.Scalar)
    expect(new Set(Object.keys(grads))).toEqual(new Set(vars.map((v) => v.name)))
    // With B = 0 the gradient reaches B (A's gradient is zero until B moves).
    const gB = grads[adapters.layers[0].q!.b.name].dataSync()
    expect(Math.max(...gB.map(Math.abs))).toBeGreaterThan(0)
    tf.dispose([value, ...Object.values(grads)])
    disposeLora(adapters)
    disposeLlama(model)
  })

  it("dropout acts only in training mode and is seeded", () => {
    const { model } = base()
    const make = () => {
      const a = createLora(smallLlama, { ...codeTargets, dropout: 0.3 }, 5)
      randomiseB(a, 6)
      return a
    }
    const a1 = make()
    const a2 = make()
    const ids = randomIds(4, 1, 6, 61)
    const evalA = forward(withLora(model, a1), { ids }).hidden
    const evalB = forward(withLora(model, a1), { ids }).hidden
    const train1 = forward(withLora(model, a1), { ids }, { training: true }).hidden
    const train2 = forward(withLora(model, a2), { ids }, { training: true }).hidden
    expect(maxAbsDiff(evalA.dataSync(), evalB.dataSync())).toBe(0)
    expect(maxAbsDiff(evalA.dataSync(), train1.dataSync())).toBeGreaterThan(1e-3)
    expect(maxAbsDiff(train1.dataSync(), train2.dataSync())).toBe(0) // same seed, same call order → same masks
    const train3 = forward(withLora(model, a1), { ids }, { training: true }).hidden
    expect(maxAbsDiff(train1.dataSync(), train3.dataSync())).toBeGreaterThan(1e-3) // fresh masks each call
    tf.dispose([evalA, evalB, train1, train2, train3])
    disposeLora(a1)
    disposeLora(a2)
    disposeLlama(model)
  })

  it("save → load round trip (PEFT names and adapter_config.json)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-lora-"))
    const { model } = base()
    const adapters = createLora(smallLlama, codeTargets, 7)
    randomiseB(adapters, 8)
    await Effect.runPromise(saveLora(dir, smallLlama, adapters, { baseModel: "tiny" }))
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8"))
    expect(cfg).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, lora_dropout: 0.05, task_type: "CAUSAL_LM" })
    expect(cfg.target_modules).toEqual(["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"])
    const header = await Effect.runPromise(readSafetensorsHeader(path.join(dir, "adapter_model.safetensors")))
    const names = header.entries.map((e) => e.name)
    expect(names).toContain("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
    expect(names).toContain("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")
    expect(names.length).toBe(24)
    const loaded = await Effect.runPromise(loadLora(dir, smallLlama))
    expect(loaded.config).toMatchObject({ rank: 4, alpha: 8, dropout: 0.05, targets: codeTargets.targets })
    const hostA = await loraToHost(smallLlama, adapters)
    const hostB = await loraToHost(smallLlama, loaded)
    for (const [name, t] of hostA) expect(maxAbsDiff(t.data, hostB.get(name)!.data)).toBe(0)
    const ids = randomIds(5, 1, 5, 61)
    const h1 = forward(withLora(model, adapters), { ids }).hidden
    const h2 = forward(withLora(model, loaded), { ids }).hidden
    expect(maxAbsDiff(h1.dataSync(), h2.dataSync())).toBe(0)
    tf.dispose([h1, h2])
    // A wrong shape is refused with the tensor's name.
    const other = await Effect.runPromise(Effect.flip(loadLora(dir, { ...smallLlama, intermediate_size: 40 })))
    expect(other.tensor).toMatch(/lora_[AB]\.weight$/)
    disposeLora(adapters)
    disposeLora(loaded)
    disposeLlama(model)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("a training step leaves the tensor count unchanged", () => {
    const { model } = base()
    const adapters = createLora(smallLlama, codeTargets, 9)
    const lm = withLora(model, adapters)
    const ids = randomIds(6, 2, 5, 61)
    const opt = tf.train.sgd(0.1)
    const stepOnce = () => {
      const loss = opt.minimize(() => tf.mean(tf.square(forward(lm, { ids }, { training: true }).hidden)) as tf.Scalar, true, loraVariables(adapters))
      loss?.dispose()
    }
    stepOnce()
    const before = tf.memory().numTensors
    stepOnce()
    stepOnce()
    expect(tf.memory().numTensors).toBe(before)
    opt.dispose()
    disposeLora(adapters)
    disposeLlama(model)
  })
})
