/**
 * The compact LM head (`HeadRows`, llama.ts) is the full-vocabulary loss, exactly: on a model whose head has mostly
 * zero rows, `targetNll` (compact path) equals the plain full-softmax cross-entropy written out here, and so do
 * the gradients with respect to a LoRA weight — including targets that are zero rows. Its logits (`lmLogits`, which
 * greedy generation reads) are the full product's, bit for bit, zero rows included.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { initLlamaWeights } from "../../src/models/init.ts"
import { compactHeadRows, disposeLlama, generate, llamaFromWeights, lmLogits, withLora, forward } from "../../src/models/llama.ts"
import type { LlamaModel } from "../../src/models/llama.ts"
import { createLora, loraVariables } from "../../src/models/lora.ts"
import { targetNll } from "../../src/train/stageBLoss.ts"
import { oddLlama, setupCpu } from "../support/modelFixtures.ts"

beforeAll(setupCpu)

/** The reference: hidden states at the target coordinates → logits over all V rows → log-softmax, in float64. */
const referenceNll = (model: LlamaModel, ids: Array<Array<number>>, targets: { batch: Array<number>; position: Array<number>; tokens: Array<number> }) => {
  const hidden = forward(model, { ids }).hidden as tf.Tensor3D
  const h = hidden.arraySync()
  const head = model.lmHead.arraySync()
  hidden.dispose()
  return targets.tokens.map((tok, i) => {
    const row = h[targets.batch[i]][targets.position[i]]
    const logits = head.map((w) => w.reduce((s, x, j) => s + x * row[j], 0))
    const max = Math.max(...logits)
    const lse = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0))
    return lse - logits[tok]
  })
}

describe("compact LM head", () => {
  const config = { ...oddLlama, vocab_size: 61 }
  const weights = initLlamaWeights(config, 5, 0.3)
  const head = weights.get("lm_head.weight")!
  const H = config.hidden_size
  // Keep rows 3..12 and 40; zero the other 50.
  for (let r = 0; r < config.vocab_size; r++) if (!((r >= 3 && r <= 12) || r === 40)) head.data.fill(0, r * H, (r + 1) * H)

  it("is found only when at least half the rows are zero", () => {
    const rows = compactHeadRows(head)!
    expect(Array.from(rows.ids)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 40])
    expect(rows.zeroCount).toBe(50)
    rows.compact.dispose()
    expect(compactHeadRows(initLlamaWeights(config, 5).get("lm_head.weight")!)).toBeUndefined()
  })

  it("gives the full-softmax loss and gradients, zero-row targets included", async () => {
    const model = await Effect.runPromise(llamaFromWeights(config, weights, "test"))
    expect(model.headRows?.zeroCount).toBe(50)
    const full: LlamaModel = { ...model, headRows: undefined }
    const lora = createLora(config, { rank: 2, alpha: 4, dropout: 0, targets: ["q", "v", "down"] }, 3)
    // Non-zero B so the LoRA path is live.
    for (const v of loraVariables(lora)) v.assign(tf.randomNormal(v.shape, 0, 0.2, "float32", 7))
    const ids = [[1, 5, 9, 22, 40, 7], [2, 8, 8, 3, 50, 11]]
    const targets = { batch: [0, 0, 1, 1, 1], position: [1, 4, 0, 2, 5], tokens: [9, 22, 8, 50, 40] }
    const ref = referenceNll(full, ids, targets)
    const compact = targetNll(model, { ids }, targets, false)
    const got = compact.arraySync()
    compact.dispose()
    got.forEach((x, i) => expect(Math.abs(x - ref[i])).toBeLessThan(1e-4))
    const vars = loraVariables(lora)
    const gradOf = (m: LlamaModel) => {
      const { grads, value } = tf.variableGrads(() => tf.sum(targetNll(withLora(m, lora), { ids }, targets, false)) as tf.Scalar, vars)
      value.dispose()
      return vars.map((v) => Array.from(grads[v.name].dataSync()))
    }
    const a = gradOf(model)
    const b = gradOf(full)
    let worst = 0
    a.forEach((g, i) => g.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - b[i][j])))))
    expect(worst).toBeLessThan(1e-4)
    expect(Math.max(...a.flat().map(Math.abs))).toBeGreaterThan(1e-3)
  })

  it("gives the full product's logits bit for bit, and the same greedy tokens", async () => {
    const model = await Effect.runPromise(llamaFromWeights(config, weights, "test"))
    const full: LlamaModel = { ...model, headRows: undefined }
    const ids = [[1, 5, 9, 22, 40, 7], [2, 8, 8, 3, 50, 11]]
    const hidden = forward(model, { ids }).hidden
    const a = lmLogits(model, hidden)
    const b = lmLogits(full, hidden)
    expect(a.shape).toEqual([2, 6, config.vocab_size])
    const got = a.dataSync() as Float32Array
    const want = b.dataSync() as Float32Array
    expect(got).toEqual(want)
    expect(got.filter((x) => x !== 0).length).toBeGreaterThan(0)
    tf.dispose([hidden, a, b])
    // a prompt whose best compact logit is negative picks the lowest zero row, as the full arg-max does
    const out = await generate(model, [[1, 5, 9], [2, 8, 50, 11]], { maxNewTokens: 6, stopIds: [0] })
    const ref = await generate(full, [[1, 5, 9], [2, 8, 50, 11]], { maxNewTokens: 6, stopIds: [0] })
    expect(out.tokens).toEqual(ref.tokens)
    disposeLlama(model)
  })
})
