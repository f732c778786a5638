/**
 * The `tinyEncoder` stage's pretraining ("mini" size): XLM-R's masked-LM on every sentence of both sides of `train`,
 * as separate sentences, with no parallel signal (XLM-R had none). The training itself is `src/train/pretrain.ts`.
 */
import { Effect } from "effect"
import * as path from "node:path"
import type { XlmRobertaConfig } from "../../models/hfconfig.ts"
import { loadModelConfig } from "../../models/hfconfig.ts"
import { loadSafetensorsDir, writeSafetensorsFile } from "../../models/safetensors.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { PretrainPart } from "../../schemas/pretrain.ts"
import { pretrainEncoder, progressHook, summariseCurve } from "../../train/pretrain.ts"
import type { TinyEncoderParams } from "./params.ts"

const STAGE = "tinyEncoder"

/** Pretrains the encoder in `dir` in place (masked-LM on `sentences` of both languages). */
export const pretrainEncoderDir = (
  dir: string,
  sentences: ReadonlyArray<string>,
  p: TinyEncoderParams,
  seed: number,
  log: (line: string) => void
): Effect.Effect<PretrainPart, StageError> =>
  Effect.gen(function*() {
    const mc = yield* loadModelConfig(dir).pipe(asStageError(STAGE))
    if (mc.kind !== "xlmr") return yield* new StageError({ stage: STAGE, message: `${dir} is not an XLM-R`, file: dir })
    const config: XlmRobertaConfig = mc.config
    const tokenizer = yield* loadTokenizer(dir).pipe(asStageError(STAGE))
    const maskId = tokenizer.tokenToId("<mask>")
    if (maskId === undefined) return yield* new StageError({ stage: STAGE, message: "the tiny encoder's tokenizer has no <mask>", file: dir })
    const ids = sentences.map((s) => tokenizer.encode(s).slice(0, 128))
    const init = yield* loadSafetensorsDir(dir).pipe(asStageError(STAGE))
    const result = yield* Effect.tryPromise({
      try: () =>
        pretrainEncoder(config, init, ids, maskId, {
          steps: p.steps,
          batchSize: p.batch,
          lr: p.lr,
          warmupSteps: p.warmupSteps,
          weightDecay: p.weightDecay,
          maskProb: p.maskProb,
          seed
        }, progressHook("encoder", p.steps, log)),
      catch: (cause) => new StageError({ stage: STAGE, message: `encoder pretraining: ${String(cause)}`, file: dir, cause })
    })
    yield* writeSafetensorsFile(path.join(dir, "model.safetensors"), result.weights).pipe(asStageError(STAGE))
    return { steps: p.steps, examples: ids.length, vocabulary: config.vocab_size, ...summariseCurve(result.curve), samples: [] }
  })
