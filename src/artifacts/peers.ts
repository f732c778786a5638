/**
 * The peer baselines as the evaluation stages run them (`generatePeers`, `retrievalPeers`): the run's frozen encoder
 * and its tokenizer (loaded only when a peer is on), and per trained peer its bridge (src/models/bridge.ts), the frozen
 * decoder it was trained with (no LoRA; one decoder shared when the added tokens and their rows agree) and what its
 * document recorded (prompt settings, encoder cuts). `peerPrompt` builds one example's decoder prompt and encoder
 * ids the way training did (src/prompts/bridge.ts, src/train/bridge.ts); `peerSoftRows` runs the encoder and the
 * bridge on a batch; `generatePeers` answers a batch of examples with every peer that is on; `peerPooledVectors` gives a text's pooled soft-input vector, and `peerRetrievalVectors` the
 * retrieval query vectors of foreign sentences (`retrievalPeers`, `testSetsFull`; no decoder loaded, `loadPeerBridges`).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readTidy } from "../backend/read.ts"
import type { BridgeModule } from "../models/bridge.ts"
import { bridgeFromHost, bridgeOverrides, disposeBridge, meanMappedStates } from "../models/bridge.ts"
import type { EmbeddingOverrides, LlamaModel } from "../models/llama.ts"
import { disposeLlama, generate, loadDecoder } from "../models/llama.ts"
import { loadTokenizer, type TextTokenizer } from "../models/tokenizer.ts"
import type { XlmrModel } from "../models/xlmr.ts"
import { disposeXlmr, encoderTokenIds, loadEncoder, tokenStates } from "../models/xlmr.ts"
import { StageError } from "../pipeline/errors.ts"
import { asStageError } from "../pipeline/stageError.ts"
import { peerRetrievalText, peerTexts } from "../prompts/bridge.ts"
import type { BridgeDoc } from "../schemas/bridge.ts"
import type { PeerGenerationRow, PeerName, SftRow } from "../schemas/sft.ts"
import { PEERS } from "../schemas/sft.ts"
import { numberSteers } from "../text/numberPointer.ts"
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

/** A trained peer's bridge and what its document recorded (no decoder: what retrieval needs). */
export interface PeerBridge {
  readonly kind: PeerName
  readonly doc: NonNullable<BridgeDoc["trained"]>
  readonly bridge: BridgeModule
}

export interface PeerBridges {
  readonly peers: ReadonlyArray<PeerBridge>
  /** Null when no peer is on. */
  readonly encoder: XlmrModel | null
  readonly encoderTokenizer: TextTokenizer | null
  readonly dispose: () => void
}

/**
 * Loads the bridges of the peers whose folders are among `inputs` and trained (a switched-off peer, or one absent
 * from `inputs`, is left out), and the run's encoder when any is. `dOut`, when given, must be every bridge's output
 * width (the decoder's hidden size). Call `dispose()`.
 */
export const loadPeerBridges = (
  stage: string,
  inputs: Readonly<Record<string, string>>,
  models: ResolvedModels,
  dOut?: number
): Effect.Effect<PeerBridges, StageError> =>
  Effect.gen(function*() {
    const owned: Array<() => void> = []
    const dispose = () => {
      for (const f of owned.reverse()) f()
      owned.length = 0
    }
    return yield* Effect.gen(function*() {
      const peers: Array<PeerBridge> = []
      for (const kind of PEERS) {
        const dir = inputs[kind]
        if (dir === undefined) continue
        const read = yield* readBridgeDir(dir).pipe(asStageError(stage))
        if (read.trained === null || read.doc.trained === null) continue
        if (dOut !== undefined && read.doc.trained.bridge.dOut !== dOut) {
          return yield* new StageError({ stage, message: `the ${kind} bridge outputs ${read.doc.trained.bridge.dOut} values but the decoder's hidden size is ${dOut}`, file: dir })
        }
        const trained = read.trained
        const bridge = yield* Effect.try({
          try: () => bridgeFromHost(trained.config, trained.host, { trainable: false }),
          catch: (cause) => new StageError({ stage, message: `cannot build the ${kind} bridge: ${String(cause)}`, cause })
        })
        owned.push(() => disposeBridge(bridge))
        peers.push({ kind, doc: read.doc.trained, bridge })
      }
      if (peers.length === 0) return { peers, encoder: null, encoderTokenizer: null, dispose }
      const encoderTokenizer = yield* loadTokenizer(models.encoderDir).pipe(asStageError(stage))
      const encoder = yield* loadEncoder(models.encoderDir).pipe(asStageError(stage))
      owned.push(() => disposeXlmr(encoder))
      for (const peer of peers) {
        if (encoder.config.hidden_size !== peer.bridge.config.dIn) {
          return yield* new StageError({ stage, message: `the encoder's hidden size ${encoder.config.hidden_size} differs from the ${peer.kind} bridge's input ${peer.bridge.config.dIn}`, file: inputs[peer.kind] })
        }
      }
      return { peers, encoder, encoderTokenizer, dispose }
    }).pipe(Effect.tapError(() => Effect.sync(dispose)))
  })

/**
 * Loads the peers for generation: their bridges and the encoder (`loadPeerBridges`), and per peer its tokenizer and
 * the frozen decoder it was trained with. A decoder already loaded (`base`, with its rows; else the first peer's) is
 * reused as a later peer's when the rows agree. Call `dispose()`.
 */
export const loadPeerSystems = (
  stage: string,
  inputs: Readonly<Record<string, string>>,
  models: ResolvedModels,
  base?: { readonly model: LlamaModel; readonly rows: Rows }
): Effect.Effect<PeerSystems, StageError> =>
  Effect.gen(function*() {
    const bridges = yield* loadPeerBridges(stage, inputs, models, base?.model.config.hidden_size)
    const owned: Array<() => void> = []
    const dispose = () => {
      for (const f of owned.reverse()) f()
      owned.length = 0
      bridges.dispose()
    }
    return yield* Effect.gen(function*() {
      const peers: Array<PeerSystem> = []
      let shared = base
      for (const { kind, doc, bridge } of bridges.peers) {
        const tokenizer = yield* loadTokenizer(models.decoderDir, { addedTokens: doc.addedTokens }).pipe(asStageError(stage))
        let model: LlamaModel
        if (shared !== undefined && sameRows(doc, shared.rows)) {
          model = shared.model
        } else {
          const own = yield* loadDecoder(models.decoderDir, { addedTokens: doc.addedTokens, embeddingInit: doc.embeddingInit, embeddingSeed: doc.embeddingSeed }).pipe(
            asStageError(stage)
          )
          owned.push(() => disposeLlama(own))
          model = own
          shared ??= { model: own, rows: doc }
        }
        if (doc.bridge.dOut !== model.config.hidden_size) {
          return yield* new StageError({ stage, message: `the ${kind} bridge outputs ${doc.bridge.dOut} values but the decoder's hidden size is ${model.config.hidden_size}`, file: inputs[kind] })
        }
        peers.push({ kind, doc, bridge, model, tokenizer, padId: tokenizer.padId ?? tokenizer.eosId ?? 0 })
      }
      return { peers, encoder: bridges.encoder, encoderTokenizer: bridges.encoderTokenizer, dispose }
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

/**
 * Each text's pooled soft-input vector under `peer`'s bridge [texts.length, D]: the encoder reads the text cut as the
 * peer's training cut its encoder input (`encoderTokenIds` with the recorded `encoder` cuts; `<s>` and `</s>`
 * included), and the mapped states of its tokens are averaged (`meanMappedStates`; the end vector left out).
 */
export const peerPooledVectors = async (
  peer: Pick<PeerBridge, "doc" | "bridge">,
  encoder: XlmrModel,
  encoderTokenizer: TextTokenizer,
  texts: ReadonlyArray<string>,
  batchSize: number
): Promise<Float32Array> => {
  const eos = encoderTokenizer.eosId ?? encoder.config.eos_token_id
  const ids = texts.map((t) => encoderTokenIds(encoderTokenizer, t, eos, peer.doc.encoder))
  const states = await tokenStates(encoder, ids, batchSize)
  const { data } = batchStates(ids.map((encoderIds, i) => ({ encoderIds, states: states[i] })), peer.bridge.config.dIn)
  const d = peer.bridge.config.dIn
  return readTidy(() => meanMappedStates(peer.bridge, tf.tensor2d(data, [data.length / d, d]), ids.map((x) => x.length)))
}

/**
 * The retrieval query vectors [foreign.length, D] of `peer`: each foreign sentence cleaned and cut as the peer's
 * training recorded (`peerRetrievalText`), pooled through its bridge (`peerPooledVectors`), `batchSize` sentences per
 * encoder pass; `advance` is told how many sentences each pass finished.
 */
export const peerRetrievalVectors = async (
  peer: Pick<PeerBridge, "doc" | "bridge">,
  encoder: XlmrModel,
  encoderTokenizer: TextTokenizer,
  foreign: ReadonlyArray<string>,
  batchSize: number,
  advance: (sentences: number) => void = () => undefined
): Promise<Float32Array> => {
  const texts = foreign.map((f) => peerRetrievalText(f, { reserved: peer.doc.addedTokens, maxChars: peer.doc.encoder.maxChars }))
  const d = peer.bridge.config.dOut
  const q = new Float32Array(texts.length * d)
  for (let start = 0; start < texts.length; start += batchSize) {
    const chunk = texts.slice(start, start + batchSize)
    q.set(await peerPooledVectors(peer, encoder, encoderTokenizer, chunk, batchSize), start * d)
    advance(chunk.length)
  }
  return q
}

/** The peers' outputs and prompt lengths for a batch (null columns for a peer that is off): each peer's prompts
 *  (`peerPrompt`) and soft rows (`peerSoftRows`), generated greedily with `options` and the peer's pad id. */
export const generatePeers = async (
  peers: PeerSystems,
  rows: ReadonlyArray<SftRow>,
  options: { readonly maxNewTokens: number; readonly noRepeatNgramSize: number },
  batchSize: number,
  copyNumbers: "off" | "on" = "off"
): Promise<Array<Omit<PeerGenerationRow, "id">>> => {
  const out = rows.map(() => ({ langbridge: null, mindmerger: null, langbridgePromptTokens: null, mindmergerPromptTokens: null } as {
    langbridge: string | null
    mindmerger: string | null
    langbridgePromptTokens: number | null
    mindmergerPromptTokens: number | null
  }))
  if (peers.encoder === null || peers.encoderTokenizer === null) return out
  const encoder = peers.encoder
  const encTok = peers.encoderTokenizer
  const eos = encTok.eosId ?? encoder.config.eos_token_id
  for (const peer of peers.peers) {
    const prompts = rows.map((r) => peerPrompt(peer, encTok, eos, r))
    const overrides = await peerSoftRows(peer, encoder, prompts.map((x) => x.encoderIds), batchSize)
    let tokens: ReadonlyArray<ReadonlyArray<number>>
    try {
      const steer = numberSteers(copyNumbers, peer.tokenizer, rows)
      tokens = (await generate(peer.model, prompts.map((x) => x.prompt), { ...options, padId: peer.padId, overrides, steer })).tokens
    } finally {
      overrides.vectors.dispose()
    }
    rows.forEach((_, i) => {
      out[i][peer.kind] = peer.tokenizer.decode(tokens[i], { skipSpecialTokens: true }).trim()
      out[i][`${peer.kind}PromptTokens`] = prompts[i].prompt.length
    })
  }
  return out
}

