/**
 * `llink forward --model DIR --ids 0,17,5,2`: prints `{"hidden": [[...], ...]}`, the final hidden state of every
 * position of one unpadded sequence (encoder: last layer; decoder: after the final RMSNorm). Meant for checking the
 * tfjs models against `transformers` on the same snapshot.
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { CheckpointError } from "../models/errors.ts"
import { loadModelConfig } from "../models/hfconfig.ts"
import { TensorBackend } from "../backend/tensorBackend.ts"

// The model code loads only when the command runs (keeps `llink status` and a cached `run` fast); the tensor backend
// is the one `LLINK_BACKEND` names (or the best available), as for `llink run`.
const models = Effect.promise(async () => ({
  llama: await import("../models/llama.ts"),
  xlmr: await import("../models/xlmr.ts")
}))

/** Comma-separated token ids → numbers (non-negative integers only). */
export const parseIds = (text: string): Array<number> => {
  const parts = text.split(",").map((s) => s.trim())
  const ids = parts.map(Number)
  if (parts.length === 0 || parts.some((p) => p === "") || ids.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(`--ids must be comma-separated non-negative integers, got ${JSON.stringify(text)}`)
  }
  return ids
}

/** The final hidden states [T][H] of `ids` under the model in `dir` (XLM-R or Llama, chosen by config.json). */
export const forwardHidden = Effect.fn("Cli.forwardHidden")(function*(dir: string, ids: ReadonlyArray<number>) {
  const mc = yield* loadModelConfig(dir)
  const vocab = mc.config.vocab_size
  const bad = ids.find((id) => id >= vocab)
  if (bad !== undefined) {
    return yield* new CheckpointError({ file: dir, message: `token id ${bad} is outside the model's vocabulary (${vocab})` })
  }
  const { tf } = yield* TensorBackend.use((b) => b.ready)
  const { llama, xlmr } = yield* models
  if (mc.kind === "xlmr") {
    const model = yield* xlmr.loadEncoder(dir)
    const h = xlmr.encode(model, { ids: [ids], attentionMask: [ids.map(() => 1)] })
    const all = (yield* Effect.promise(() => h.array())) as Array<Array<Array<number>>>
    const out = all[0]
    h.dispose()
    xlmr.disposeXlmr(model)
    return out
  }
  const model = yield* llama.loadDecoder(dir)
  const { hidden } = llama.forward(model, { ids: [ids] })
  const all = (yield* Effect.promise(() => hidden.array())) as Array<Array<Array<number>>>
  const out = all[0]
  tf.dispose(hidden)
  llama.disposeLlama(model)
  return out
})

export const forwardCommand = Command.make(
  "forward",
  {
    model: Flag.String("model").pipe(Flag.withDescription("Hugging Face snapshot folder (XLM-R encoder or Llama decoder)")),
    ids: Flag.String("ids").pipe(
      Flag.mapTryCatch(parseIds, (e) => (e instanceof Error ? e.message : String(e))),
      Flag.withDescription("comma-separated token ids of one sequence, e.g. 0,17,5,2")
    )
  },
  ({ model, ids }) =>
    Effect.gen(function*() {
      const hidden = yield* forwardHidden(model, ids)
      yield* Console.log(JSON.stringify({ hidden }))
    }).pipe(Effect.provide(TensorBackend.layer))
).pipe(Command.withDescription("print the final hidden state of every position as JSON"))
