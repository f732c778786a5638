/**
 * `llink init-models --preset tiny|paper --out DIR [--seed N] [--sentences FILE]`: writes a seeded random
 * encoder/decoder pair as Hugging Face snapshots. `tiny`: DIR/encoder (tiny XLM-R + a Unigram tokenizer trained on the
 * sentences) and DIR/decoder (tiny Llama + the real Llama-3 tokenizer), so the pipeline can run without downloading
 * any model. `paper`: the shapes of xlm-roberta-base and Llama-3.2-1B-Instruct (6 GB of float32), for numerics and
 * speed at real size.
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { CheckpointError } from "../models/errors.ts"

export const initModelsCommand = Command.make(
  "init-models",
  {
    preset: Flag.Literals("preset", ["tiny", "paper"]).pipe(
      Flag.withDefault("tiny" as const),
      Flag.withDescription(
        "`tiny` (XLM-R hidden 32 / Llama hidden 64, with tokenizers) or `paper` (xlm-roberta-base / Llama-3.2-1B shapes, random; the encoder has no tokenizer)"
      )
    ),
    out: Flag.String("out").pipe(Flag.withDescription("output folder; gets encoder/ and decoder/")),
    seed: Flag.Int("seed").pipe(Flag.withDefault(0), Flag.withDescription("seed of the random initialisation")),
    sentences: Flag.String("sentences").pipe(
      Flag.optional,
      Flag.withDescription(
        "tab-separated text file to train the tiny encoder's tokenizer on (default: datasets/km-en-sample/km-en.sample.tsv if present, else a built-in list)"
      )
    )
  },
  ({ out, preset, seed, sentences }) =>
    Effect.gen(function*() {
      // The model code (and tfjs) loads only when the command runs.
      const { initPaperShapedModels, initTinyModels, readCorpusSentences } = yield* Effect.promise(() => import("../models/init.ts"))
      if (preset === "paper") {
        const dirs = yield* initPaperShapedModels(out, { seed })
        yield* Console.log(`encoder: ${dirs.encoder}\ndecoder: ${dirs.decoder}`)
        return
      }
      const text =
        sentences._tag === "Some"
          ? yield* Effect.try({
            try: () => readCorpusSentences(sentences.value),
            catch: (e) => new CheckpointError({ file: sentences.value, message: `cannot read sentences: ${String(e)}` })
          })
          : undefined
      const dirs = yield* initTinyModels(out, text === undefined ? { seed } : { seed, sentences: text })
      yield* Console.log(`encoder: ${dirs.encoder}\ndecoder: ${dirs.decoder}`)
    })
).pipe(Command.withDescription("write seeded random tiny encoder/decoder checkpoints in the Hugging Face layout"))
