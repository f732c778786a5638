/**
 * The peer baselines as the evaluation stages run them (`generate`, `retrievalFull`): the run's frozen encoder and
 * its tokenizer (loaded only when a peer is on), and per trained peer its bridge (src/models/bridge.ts), the frozen
 * decoder it was trained with (no LoRA; shared with `base` when the added tokens and their rows agree) and what its
 * document recorded (prompt settings, encoder cuts). `peerPrompt` builds one example's decoder prompt and encoder
 * ids the way training did (src/prompts/bridge.ts, src/train/bridge.ts); `peerSoftRows` runs the encoder and the
 * bridge on a batch.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { BridgeModule } from "../models/bridge.ts"
import { bridgeFromHost, bridgeOverrides, disposeBridge } from "../models/bridge.ts"
import type { EmbeddingOverrides, LlamaModel } from "../models/llama.ts"
import { disposeLlama, loadDecoder } from "../models/llama.ts"
import { loadTokenizer, type TextTokenizer } from "../models/tokenizer.ts"
import type { XlmrModel } from "../models/xlmr.ts"
import { disposeXlmr, encoderTokenIds, loadEncoder, tokenStates } from "../models/xlmr.ts"
import { StageError } from "../pipeline/errors.ts"
import { asStageError } from "../pipeline/stageError.ts"
import { peerTexts } from "../prompts/bridge.ts"
import type { BridgeDoc } from "../schemas/bridge.ts"
import type { PeerName, SftRow } from "../schemas/sft.ts"
import { PEERS } from "../schemas/sft.ts"
import { batchStates, bridgePromptIds } from "../train/bridge.ts"
import { readBridgeDir } from "./bridge.ts"
import type { ResolvedModels } from "./models.ts"

export interface PeerSystem {
  readonly kind: PeerName
  readonly doc: NonNullable<BridgeDoc["trained"]>
  readonly bridge: BridgeModule
  readonly model: LlamaModel
  readonly tokenizer: TextTokenizer
  readonly padId: number
}

export interface PeerSystems {
  readonly peers: ReadonlyArray<PeerSystem>
  /** Null when no peer is on. */
  readonly encoder: XlmrModel | null
  readonly encoderTokenizer: TextTokenizer | null
  readonly dispose: () => void
}

type Rows = Pick<NonNullable<BridgeDoc["trained"]>, "addedTokens" | "embeddingInit" | "embeddingSeed">
const sameRows = (a: Rows, b: Rows): boolean =>
  a.embeddingInit === b.embeddingInit && a.embeddingSeed === b.embeddingSeed && a.addedTokens.length === b.addedTokens.length &&
  a.addedTokens.every((t, i) => t === b.addedTokens[i])

/**
 * Loads the peers whose folders are among `inputs` and trained (a switched-off peer, or one absent from `inputs`,
 * is left out). `base` (with its rows) is reused as a peer's decoder when the rows agree. Call `dispose()`.
 */
export const loadPeerSystems = (
  stage: string,
  inputs: Readonly<Record<string, string>>,
  models: ResolvedModels,
  base: { readonly model: LlamaModel; readonly rows: Rows }
): Effect.Effect<PeerSystems, StageError> =>
  Effect.gen(function*() {
    const owned: Array<() => void> = []
    const dispose = () => {
      for (const f of owned.reverse()) f()
      owned.length = 0
    }
    return yield* Effect.gen(function*() {
      const peers: Array<PeerSystem> = []
      for (const kind of PEERS) {
        const dir = inputs[kind]
        if (dir === undefined) continue
        const read = yield* readBridgeDir(dir).pipe(asStageError(stage))
        if (read.trained === null || read.doc.trained === null) continue
        const doc = read.doc.trained
        if (doc.bridge.dOut !== base.model.config.hidden_size) {
          return yield* new StageError({ stage, message: `the ${kind} bridge outputs ${doc.bridge.dOut} values but the decoder's hidden size is ${base.model.config.hidden_size}`, file: dir })
        }
        const tokenizer = yield* loadTokenizer(models.decoderDir, { addedTokens: doc.addedTokens }).pipe(asStageError(stage))
        let model = base.model
        if (!sameRows(doc, base.rows)) {
          const own = yield* loadDecoder(models.decoderDir, { addedTokens: doc.addedTokens, embeddingInit: doc.embeddingInit, embeddingSeed: doc.embeddingSeed }).pipe(
            asStageError(stage)
          )
          owned.push(() => disposeLlama(own))
          model = own
        }
        const trained = read.trained
        const bridge = yield* Effect.try({
          try: () => bridgeFromHost(trained.config, trained.host, { trainable: false }),
          catch: (cause) => new StageError({ stage, message: `cannot build the ${kind} bridge: ${String(cause)}`, cause })
        })
        owned.push(() => disposeBridge(bridge))
        peers.push({ kind, doc, bridge, model, tokenizer, padId: tokenizer.padId ?? tokenizer.eosId ?? 0 })
      }
      if (peers.length === 0) return { peers, encoder: null, encoderTokenizer: null, dispose }
      const encoderTokenizer = yield* loadTokenizer(models.encoderDir).pipe(asStageError(stage))
      const encoder = yield* loadEncoder(models.encoderDir).pipe(asStageError(stage))
      owned.push(() => disposeXlmr(encoder))
      if (encoder.config.hidden_size !== peers[0].bridge.config.dIn) {
        return yield* new StageError({ stage, message: `the encoder's hidden size ${encoder.config.hidden_size} differs from the bridge's input ${peers[0].bridge.config.dIn}` })
      }
      return { peers, encoder, encoderTokenizer, dispose }
    }).pipe(Effect.tapError(() => Effect.sync(dispose)))
  })

/** One evaluation example for a peer: the encoder ids (foreign text, as at evaluation) and the decoder prompt ids. */
export const peerPrompt = (peer: PeerSystem, encoderTokenizer: TextTokenizer, encoderEos: number, row: SftRow) => {
  const texts = peerTexts(peer.kind, row, { instruction: peer.doc.prompt.instruction, reserved: peer.doc.addedTokens, maxChars: peer.doc.encoder.maxChars }, "eval")
  const encoderIds = encoderTokenIds(encoderTokenizer, texts.encoderText, encoderEos, peer.doc.encoder)
  return { encoderIds, prompt: bridgePromptIds(peer.tokenizer, peer.padId, encoderIds.length, texts.llmPrompt) }
}

/** The overrides of a batch of prompts (`peerPrompt`): the encoder's states of each, mapped, with the end vector.
 *  The caller disposes `vectors`. */
export const peerSoftRows = async (
  peer: PeerSystem,
  encoder: XlmrModel,
  encoderIds: ReadonlyArray<ReadonlyArray<number>>,
  batchSize: number
): Promise<EmbeddingOverrides> => {
  const states = await tokenStates(encoder, encoderIds, batchSize)
  const { spans, data } = batchStates(encoderIds.map((ids, i) => ({ encoderIds: ids, states: states[i] })), peer.bridge.config.dIn)
  let coords: { batch: Array<number>; position: Array<number> } = { batch: [], position: [] }
  const vectors = tf.tidy(() => {
    const ov = bridgeOverrides(peer.bridge, tf.tensor2d(data, [data.length / peer.bridge.config.dIn, peer.bridge.config.dIn]), spans)
    coords = { batch: [...ov.batch], position: [...ov.position] }
    return ov.vectors
  })
  return { ...coords, vectors }
}
