/**
 * The decoder's micro-batch workers (src/train/decoderWorkers.ts): a worker that cannot build its model fails the
 * start with the reason, instead of leaving the training waiting. (That the workers' gradients equal this thread's,
 * byte for byte, is checked in pretrain.test.ts.)
 */
import { beforeAll, describe, expect, it } from "vitest"
import { DecoderWorkers } from "../../src/train/decoderWorkers.ts"
import { VariableSet } from "../../src/train/pretrain.ts"
import { oddLlama, setupCpu } from "../support/modelFixtures.ts"

beforeAll(setupCpu)

describe("DecoderWorkers", () => {
  it("a worker whose weights lack a tensor fails the start, naming the worker", async () => {
    const vars = new VariableSet()
    // only the embedding: the worker's model asks for the head and the layers too
    vars.add("model.embed_tokens.weight", { shape: [2, oddLlama.hidden_size], data: new Float32Array(2 * oddLlama.hidden_size) })
    try {
      await expect(DecoderWorkers.start(1, { config: { ...oddLlama, vocab_size: 2 }, zeroCount: 0, examples: [], backend: "cpu" }, vars)).rejects.toThrow(
        /decoder worker 1 (failed|exited)/
      )
    } finally {
      vars.dispose()
    }
  })
})
