/**
 * `llink forward --model DIR --ids 0,17,5,2 [--logits]`: prints `{"backend": "cpu-blas", "hidden": [[...], ...]}`,
 * the final hidden state of every position of one unpadded sequence (encoder: last layer; decoder: after the final
 * RMSNorm), and with `--logits` (decoder only) the logits of every position too. Meant for checking the tfjs models
 * against `transformers` on the same snapshot, on every tensor backend (`LLINK_BACKEND`).
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { CheckpointError } from "../models/errors.ts"
import { loadModelConfig } from "../models/hfconfig.ts"
import { TensorBackend } from "../backend/tensorBackend.ts"
import type * as tf from "@tensorflow/tfjs"
import { describeError } from "../errors/describe.ts"

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

export interface ForwardResult {
  /** The tensorflow.js backend that computed it (`cpu-blas`, `webgpu`, …). */
  readonly backend: string
  /** [T][H] */
  readonly hidden: Array<Array<number>>
  /** [T][V], decoder with `logits` only. */
  readonly logits?: Array<Array<number>>
}

/**
 * The final hidden states [T][H] of `ids` under the model in `dir` (XLM-R or Llama, chosen by config.json), and the
 * decoder's logits when asked.
 */
export const forwardHidden = Effect.fn("Cli.forwardHidden")(function*(
  dir: string,
  ids: ReadonlyArray<number>,
  options?: { readonly logits?: boolean }
) {
  const mc = yield* loadModelConfig(dir)
  const vocab = mc.config.vocab_size
  const bad = ids.find((id) => id >= vocab)
  if (bad !== undefined) {
    return yield* new CheckpointError({ file: dir, message: `token id ${bad} is outside the model's vocabulary (${vocab})` })
  }
  if (options?.logits === true && mc.kind === "xlmr") {
    return yield* new CheckpointError({ file: dir, message: "--logits needs a decoder (this is an XLM-R encoder)" })
  }
  const { tf, tfBackend } = yield* TensorBackend.use((b) => b.ready)
  const { llama, xlmr } = yield* models
  const first = (t: tf.Tensor) => Effect.promise(async () => ((await t.array()) as Array<Array<Array<number>>>)[0])
  if (mc.kind === "xlmr") {
    const model = yield* xlmr.loadEncoder(dir)
    const h = xlmr.encode(model, { ids: [ids], attentionMask: [ids.map(() => 1)] })
    const hidden = yield* first(h)
    h.dispose()
    xlmr.disposeXlmr(model)
    return { backend: tfBackend, hidden } satisfies ForwardResult
  }
  const model = yield* llama.loadDecoder(dir)
  const out = llama.forward(model, { ids: [ids] }, { logits: options?.logits === true })
  const hidden = yield* first(out.hidden)
  const logits = out.logits === undefined ? undefined : yield* first(out.logits)
  tf.dispose([out.hidden, ...(out.logits === undefined ? [] : [out.logits])])
  llama.disposeLlama(model)
  return (logits === undefined ? { backend: tfBackend, hidden } : { backend: tfBackend, hidden, logits }) satisfies ForwardResult
})

export const forwardCommand = Command.make(
  "forward",
  {
    model: Flag.String("model").pipe(Flag.withDescription("Hugging Face snapshot folder (XLM-R encoder or Llama decoder)")),
    ids: Flag.String("ids").pipe(
      Flag.mapTryCatch(parseIds, (e) => describeError(e)),
      Flag.withDescription("comma-separated token ids of one sequence, e.g. 0,17,5,2")
    ),
    logits: Flag.Boolean("logits").pipe(Flag.withDefault(false), Flag.withDescription("decoder only: print every position's logits too"))
  },
  ({ model, ids, logits }) =>
    Effect.gen(function*() {
      const result = yield* forwardHidden(model, ids, { logits })
      yield* Console.log(JSON.stringify(result))
    }).pipe(Effect.provide(TensorBackend.layer))
).pipe(Command.withDescription("print the final hidden state of every position as JSON"))
