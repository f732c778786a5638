/** Config section `models`: the frozen encoder and decoder, and the reserved tokens added to the decoder. */
import { Schema } from "effect"
import { EmbeddingInitRule } from "../../schemas/fields.ts"
import { Count, dflt, Fraction, Positive, Seed, Size, TinySize } from "../../schemas/fields.ts"

/** Pretraining of the tiny checkpoints (`models.encoder`/`models.decoder` = "tiny"); 0 steps = left random. */
export const PretrainConfig = Schema.Struct({
  /** Decoder steps: English language modelling plus every Stage B task type on English inputs. */
  decoderSteps: dflt(Count, 0),
  decoderBatch: dflt(Size, 32),
  decoderLr: dflt(Positive, 3e-3),
  /** Each decoder batch as this many consecutive micro-batches whose token-weighted gradients are summed (the
   *  batch's mean-loss gradient up to float rounding). They run side by side on the machine's cores (worker
   *  threads), and the result does not depend on how many cores there are. */
  decoderMicroBatches: dflt(Size, 1),
  /** Encoder steps: masked-LM on the monolingual sentences of both languages (no parallel signal). */
  encoderSteps: dflt(Count, 0),
  encoderBatch: dflt(Size, 64),
  encoderLr: dflt(Positive, 2e-3),
  /** Share of the encoder's tokens chosen for prediction (XLM-R: 0.15). */
  maskProb: dflt(Fraction, 0.15),
  warmupSteps: dflt(Count, 30),
  /** Beyond the paper: add the number drill (English copy lists and sentences holding every digit-group token,
   *  numberDrill.ts) to the decoder's data, so it can write numbers its training sentences never hold, as Llama-3
   *  can. Absent: off (the paper's setting; the default keeps its digests). */
  numberDrill: Schema.optionalKey(Schema.Boolean),
  weightDecay: dflt(Fraction, 0.01)
})
export type PretrainConfig = typeof PretrainConfig.Type

export const ModelsConfig = Schema.Struct({
  /** `"tiny"` (seeded test-size XLM-R written by the `models` stage) or a local Hugging Face snapshot folder of
   *  xlm-roberta-base (config.json, model.safetensors, tokenizer.json). A relative folder resolves against the
   *  current directory; prefer absolute paths. */
  encoder: dflt(Schema.String, "tiny"),
  /** `"tiny"` (seeded test-size Llama with the real Llama-3 tokenizer) or a local snapshot folder of
   *  Llama-3.2-1B-Instruct. */
  decoder: dflt(Schema.String, "tiny"),
  /** Shapes of the tiny checkpoints: "test" (hidden 32/64, 2 layers: the test suite's) or "mini" (the embedded
   *  default's pretrained miniature: see `miniLlamaConfig`, `miniXlmrConfig`). */
  tinySize: dflt(TinySize, "test"),
  /** Pretraining of the tiny checkpoints (ignored for snapshot folders). */
  pretrain: dflt(PretrainConfig, {}),
  /** Seed of the tiny models and of the "normal" rows of added tokens. */
  seed: dflt(Seed, 17),
  /** K, the number of Stage B slot tokens `<f0>`…`<f{K−1}>` added after `<foreign>`, `</foreign>`, `<foreign_emb>`.
   *  The one K of the run: `tokstats`, `stageB` and everything downstream read it from here. */
  slots: dflt(Size, 8),
  /** Input-embedding rows of the added tokens: "zeros" (paper), "mean" of the existing rows, or "normal"
   *  N(0, 0.02²) (the code's resize_token_embeddings default, close to "mean"). */
  embeddingInit: dflt(EmbeddingInitRule, "zeros"),
  /** Tiny encoder only: its Unigram tokenizer is trained on the first this-many training pairs (both sides). */
  tinyTokenizerPairs: dflt(Size, 2000)
})

export type ModelsParams = typeof ModelsConfig.Type
