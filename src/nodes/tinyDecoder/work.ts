/** The `tinyDecoder` stage's work (see stage.ts). */
import { Effect } from "effect"
import * as fs from "node:fs"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { readPairs } from "../../artifacts/pairs.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { initTinyDecoder } from "../../models/init.ts"
import { deriveSeed } from "../../models/rng.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { PRETRAIN_FORMAT, PretrainDoc, type PretrainPart } from "../../schemas/pretrain.ts"
import type { TinyDecoderParams } from "./params.ts"

const STAGE = "tinyDecoder"

export const runTinyDecoder = Effect.fn("TinyDecoder.run")(function*(
  ctx: StageContext<TinyDecoderParams>
): Effect.fn.Return<StageOutcome, StageError, TensorBackend> {
  const p = ctx.params
  const dir = ctx.outputs["tinyDecoder"]
  yield* Effect.try({
    try: () => fs.mkdirSync(dir, { recursive: true }),
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${dir}: ${String(cause)}`, file: dir, cause })
  })
  let part: PretrainPart | null = null
  if (p.tiny) {
    if (p.size !== "mini" && p.steps > 0) {
      return yield* new StageError({ stage: STAGE, message: `models.pretrain.decoderSteps needs models.tinySize "mini" (the "test" decoder ties its head), got "${p.size}"` })
    }
    yield* initTinyDecoder(dir, { seed: p.seed, size: p.size }).pipe(asStageError(STAGE))
    ctx.log(`tiny decoder (seed ${p.seed})`)
    // The mini decoder always goes through pretrainDecoderDir, with 0 steps too: the random control then has the
    // same shortlisted head (zero rows outside the English shortlist) as the pretrained model.
    if (p.size === "mini") {
      const pairs = yield* readPairs(ctx.inputs["train"]).pipe(asStageError(STAGE))
      const english = pairs.map((r) => r.english).filter((s) => s.length > 0)
      const backend = (yield* startBackend(STAGE)).tfBackend
      ctx.log(`pretraining on ${backend}`)
      const { pretrainDecoderDir } = yield* Effect.promise(() => import("./pretrain.ts"))
      const d = yield* pretrainDecoderDir(dir, english, p, deriveSeed(p.seed, "pretrain-decoder"), ctx.log)
      part = d
      ctx.log(`decoder: English LM loss ${d.firstLoss?.toFixed(3) ?? "–"} → ${d.finalLoss?.toFixed(3) ?? "–"} over ${d.steps} steps (${d.vocabulary} token ids)`)
      for (const s of d.samples) ctx.log(`decoder sample: ${JSON.stringify(s.prompt.slice(-60))} → ${JSON.stringify(s.output)}`)
    }
  } else {
    ctx.log("models.decoder is a snapshot folder: no tiny decoder to make")
  }
  yield* writeJsonDoc(PretrainDoc, ctx.outputs["tinyDecoder.pretrain"], { format: PRETRAIN_FORMAT, version: 1, decoder: part, encoder: null })
    .pipe(asStageError(STAGE))
  return { rows: {}, metrics: { tiny: p.tiny, steps: part?.steps ?? 0, finalLoss: part?.finalLoss ?? null } }
})
