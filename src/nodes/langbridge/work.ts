/**
 * The `langbridge` stage's work (LangBridge, Yoon et al., ACL 2024; kaistAI/LangBridge).
 *
 * Per `sft.train` / `sft.val` row (the task types of `taskTypes`, empty = all): the frozen encoder reads
 * `{instruction}\n{English side of the pair}` (English-only training, src/prompts/bridge.ts), every token state is
 * mapped by the linear bridge, the learned `enc_eos` vector follows, and the frozen decoder reads
 * `[BOS, mapped states…, enc_eos]` and then the target (loss on the target tokens only). Only the bridge learns.
 * Loading, encoding, the loop and exact resume: src/train/bridgeStage.ts and src/train/bridge.ts.
 *
 * Metrics (one row per optimizer step, `phase` "task"): `loss`, `lr`, `gradNorm`, and on validation steps `valLoss`
 * and `valLzero` (the mapped states replaced by zeros).
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import type { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { peerTaskTexts } from "../../prompts/bridge.ts"
import { readSftRows, type SftRow } from "../../schemas/sft.ts"
import { type BridgeRunOptions, runBridgeStage } from "../../train/bridgeStage.ts"
import { loopSettingsOf } from "../../train/sftLoop.ts"
import type { LangBridgeParams } from "./params.ts"

const STAGE = "langbridge"

export const runLangBridge = (ctx: StageContext<LangBridgeParams>, options?: BridgeRunOptions): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  runBridgeStage(STAGE, ctx, (reserved) =>
    Effect.gen(function*() {
      const p = ctx.params
      const texts = (rows: ReadonlyArray<SftRow>) =>
        peerTaskTexts("langbridge", rows, p.taskTypes, { instruction: p.instruction, reserved, maxChars: p.encoderMaxChars })
      const train = yield* readSftRows(STAGE, ctx.inputs["sft.train"])
      const val = yield* readSftRows(STAGE, ctx.inputs["sft.val"])
      return [{ name: "task" as const, train: texts(train), val: texts(val), maxTrainRows: p.maxTrainRows, valMaxRows: p.valMaxRows, settings: loopSettingsOf(p, 0) }]
    }), options)
