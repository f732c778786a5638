/**
 * The `mindmerger` stage's work (MindMerger, Huang et al., NeurIPS 2024; CONE-MT/MindMerger).
 *
 * The decoder reads `[BOS, MLP(encoder token states)…, end_boundary, its own embeddings of the text prompt]` and then
 * the target (loss on the target tokens only); only the MLP and the boundary vector learn, in two phases:
 * 1. "mapping" (the code's `--stage_name mapping`): the `train` pairs, the encoder reads the foreign sentence, the
 *    target is the English sentence, no text prompt (`mappingRows`, `mappingEpochs`, `mappingMaxSteps`); validation
 *    on the first `valMaxRows` pairs (or 16) of the same table;
 * 2. "task" (`--stage_name augmentation`): the Stage B instruction data; the encoder reads the foreign text and the
 *    decoder's text prompt is the task prompt with the original text (src/prompts/bridge.ts).
 * Loading, encoding, the loop and exact resume (per phase): src/train/bridgeStage.ts and src/train/bridge.ts.
 *
 * Metrics: one row per optimizer step of each phase (`phase` "mapping" or "task"), as `langbridge.metrics`.
 */
import { Effect } from "effect"
import type { TensorBackend } from "../../backend/tensorBackend.ts"
import { readStringColumn } from "../../artifacts/columns.ts"
import type { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { peerTaskTexts } from "../../prompts/bridge.ts"
import { stripTokens } from "../../prompts/slots.ts"
import { readSftRows, type SftRow } from "../../schemas/sft.ts"
import { truncateCodePoints } from "../../text/unicode.ts"
import type { BridgeText } from "../../train/bridge.ts"
import { type BridgeRunOptions, runBridgeStage } from "../../train/bridgeStage.ts"
import { loopSettingsOf } from "../../train/sftLoop.ts"
import type { MindMergerParams } from "./params.ts"

const STAGE = "mindmerger"

export const runMindMerger = (ctx: StageContext<MindMergerParams>, options?: BridgeRunOptions): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  runBridgeStage(STAGE, ctx, (reserved) =>
    Effect.gen(function*() {
      const p = ctx.params
      const clean = (t: string) => stripTokens(truncateCodePoints(t.trim(), p.encoderMaxChars), reserved)
      const english = yield* readStringColumn(STAGE, ctx.inputs["train"], "english")
      const foreign = yield* readStringColumn(STAGE, ctx.inputs["train"], "foreign")
      const pairs: Array<BridgeText> = foreign.map((f, i) => ({ row: i, encoderText: clean(f), llmPrompt: "", target: clean(english[i]) }))
      const nVal = Math.min(p.valMaxRows > 0 ? p.valMaxRows : 16, Math.floor(pairs.length / 10))
      const task = (rows: ReadonlyArray<SftRow>) =>
        peerTaskTexts("mindmerger", rows, p.taskTypes, { instruction: p.instruction, reserved, maxChars: p.encoderMaxChars })
      const train = yield* readSftRows(STAGE, ctx.inputs["sft.train"])
      const val = yield* readSftRows(STAGE, ctx.inputs["sft.val"])
      const loop = loopSettingsOf(p, 0)
      return [
        {
          name: "mapping" as const,
          train: pairs.slice(nVal),
          val: pairs.slice(0, nVal),
          maxTrainRows: p.mappingRows,
          valMaxRows: 0,
          settings: { ...loop, epochs: p.mappingEpochs, maxSteps: p.mappingMaxSteps }
        },
        { name: "task" as const, train: task(train), val: task(val), maxTrainRows: p.maxTrainRows, valMaxRows: p.valMaxRows, settings: loop }
      ]
    }), options)
