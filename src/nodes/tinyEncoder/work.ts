/** The `tinyEncoder` stage's work (see stage.ts). */
import { Effect } from "effect"
import * as fs from "node:fs"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { readPairs, sidesOf } from "../../artifacts/pairs.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { initTinyEncoder } from "../../models/init.ts"
import { deriveSeed } from "../../models/rng.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { PRETRAIN_FORMAT, PretrainDoc, type PretrainPart } from "../../schemas/pretrain.ts"
import type { TinyEncoderParams } from "./params.ts"

const STAGE = "tinyEncoder"

export const runTinyEncoder = Effect.fn("TinyEncoder.run")(function*(
  ctx: StageContext<TinyEncoderParams>
): Effect.fn.Return<StageOutcome, StageError, TensorBackend> {
  const p = ctx.params
  const dir = ctx.outputs["tinyEncoder"]
  yield* Effect.try({
    try: () => fs.mkdirSync(dir, { recursive: true }),
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${dir}: ${String(cause)}`, file: dir, cause })
  })
  let part: PretrainPart | null = null
  if (p.tiny) {
    if (p.size !== "mini" && p.steps > 0) {
      return yield* new StageError({ stage: STAGE, message: `models.pretrain.encoderSteps needs models.tinySize "mini", got "${p.size}"` })
    }
    const pairs = yield* readPairs(ctx.inputs["train"]).pipe(asStageError(STAGE))
    const sentences = sidesOf(pairs.slice(0, p.tokenizerPairs))
    if (sentences.length === 0) {
      return yield* new StageError({ stage: STAGE, message: "the train table is empty: no text for the tiny tokenizer", file: ctx.inputs["train"] })
    }
    yield* initTinyEncoder(dir, { seed: p.seed, sentences, size: p.size }).pipe(asStageError(STAGE))
    ctx.log(`tiny encoder (seed ${p.seed}, tokenizer from ${sentences.length} sentences)`)
    if (p.steps > 0) {
      const backend = (yield* startBackend(STAGE)).tfBackend
      ctx.log(`pretraining on ${backend}`)
      const { pretrainEncoderDir } = yield* Effect.promise(() => import("./pretrain.ts"))
      part = yield* pretrainEncoderDir(dir, sidesOf(pairs), p, deriveSeed(p.seed, "pretrain-encoder"), ctx.log)
      ctx.log(`encoder: masked-LM loss ${part.firstLoss?.toFixed(3)} → ${part.finalLoss?.toFixed(3)} over ${part.steps} steps`)
    }
  } else {
    ctx.log("models.encoder is a snapshot folder: no tiny encoder to make")
  }
  yield* writeJsonDoc(PretrainDoc, ctx.outputs["tinyEncoder.pretrain"], { format: PRETRAIN_FORMAT, version: 1, decoder: null, encoder: part })
    .pipe(asStageError(STAGE))
  return { rows: {}, metrics: { tiny: p.tiny, steps: part?.steps ?? 0, finalLoss: part?.finalLoss ?? null } }
})
