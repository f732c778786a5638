/**
 * The peer baselines at evaluation, on tiny seeded checkpoints (tiny XLM-R, tiny Llama with the real Llama-3
 * tokenizer) with random bridges written as `langbridge` / `mindmerger` folders:
 *
 * - `generate`'s peer path (`generatePeers`): the prompt token counts, the soft rows and the greedy outputs equal
 *   ones built separately here: the encoder text written out by hand, the encoder run one sentence at a time (no
 *   batching, no padding), the bridge as a float64 loop, the decoder prompt as BOS + placeholders + the text prompt's
 *   tokens, generated one example at a time; another bridge gives other outputs.
 * - `retrievalPeers`: the pooled vectors (mean mapped state of the foreign sentence, end vector left out) equal the
 *   float64 reference, and the stage's R@1/MRR/mean rank equal the reference scored against h_E; a peer that is off
 *   gets null and leaves the other's numbers unchanged.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TensorBackend } from "../../src/backend/tensorBackend.ts"
import { readModelsRef, type ResolvedModels } from "../../src/artifacts/models.ts"
import { generatePeers, loadPeerBridges, loadPeerSystems, peerPooledVectors, peerPrompt, peerSoftRows } from "../../src/artifacts/peers.ts"
import { retrievalMetrics } from "../../src/metrics/retrieval.ts"
import type { BridgeConfig } from "../../src/models/bridge.ts"
import { disposeLlama, generate as llamaGenerate, type LlamaModel, loadDecoder } from "../../src/models/llama.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"
import { loadTokenizer, type TextTokenizer } from "../../src/models/tokenizer.ts"
import { disposeXlmr, encode as xlmrEncode, loadEncoder, type XlmrModel } from "../../src/models/xlmr.ts"
import { generatePeers as generatePeersStage } from "../../src/nodes/generatePeers/stage.ts"
import { retrievalPeers } from "../../src/nodes/retrievalPeers/stage.ts"
import { synthesize } from "../../src/nodes/synthesize/stage.ts"
import { finetunePrompt, instructionText } from "../../src/prompts/slots.ts"
import { PEERS, type PeerName, readSftRows, type SftRow } from "../../src/schemas/sft.ts"
import { randomBridgeHost, writeBridgeDir as writeBridgeDirAt, writeBridgeOffDir } from "../support/bridges.ts"
import { configOf, fixturePairs, makeContext, paramsOf, readRows, tmpDir, writePairs, writeRandomMatrix } from "../support/stageB.ts"
import { runModels } from "../support/stageA.ts"

const N_HOLD = 10
const N_EVAL = 8
// Short encoder cuts, so the test sees both the character cut and the token cut (`</s>` kept last).
const CUT = { maxChars: 60, maxTokens: 16 }
const base = tmpDir("eval-peers")
afterAll(() => fs.rmSync(base, { recursive: true, force: true }))

const run = <A, E>(e: Effect.Effect<A, E, TensorBackend>) => Effect.runPromise(e.pipe(Effect.provide(TensorBackend.layer)))

let resolved: ResolvedModels
let hidden = 0
let encoderHidden = 0
const inputs: Record<string, string> = {}
const hosts: Partial<Record<PeerName, Map<string, HostTensor>>> = {}
let otherLangbridge = ""
let teacher = new Float32Array(0)
let sftEval: Array<SftRow> = []
let evalForeign: Array<string> = []

const randomHost = randomBridgeHost
const writeBridgeDir = (dir: string, c: BridgeConfig, host: Map<string, HostTensor>) => writeBridgeDirAt(dir, c, host, resolved, CUT)

const randomMatrix = writeRandomMatrix

beforeAll(async () => {
  const train = await writePairs(path.join(base, "train.parquet"), fixturePairs(30))
  // Long foreign texts (two fixture sentences joined), so the 60-character and 16-token cuts bite.
  const held = fixturePairs(N_HOLD, 3).map((p, i) => ({ english: p.english.replace("(item", "(held"), foreign: `${p.foreign} ${fixturePairs(N_HOLD, 7)[i].foreign}` }))
  const evalFile = await writePairs(path.join(base, "eval.parquet"), held, 1000)
  const mctx = await runModels(configOf({ models: { seed: 9 } }).models, train, path.join(base, "models"))
  resolved = await Effect.runPromise(readModelsRef(mctx.outputs["models"]))
  const enc = await Effect.runPromise(loadEncoder(resolved.encoderDir))
  encoderHidden = enc.config.hidden_size
  disposeXlmr(enc)
  const dec = await Effect.runPromise(loadDecoder(resolved.decoderDir, { addedTokens: resolved.doc.addedTokens }))
  hidden = dec.config.hidden_size
  disposeLlama(dec)
  for (const [i, kind] of PEERS.entries()) {
    const c: BridgeConfig = { kind, dIn: encoderHidden, dOut: hidden }
    const host = randomHost(c, 20 + i)
    hosts[kind] = host
    await writeBridgeDir(path.join(base, kind), c, host)
  }
  otherLangbridge = path.join(base, "langbridge-other")
  await writeBridgeDir(otherLangbridge, { kind: "langbridge", dIn: encoderHidden, dOut: hidden }, randomHost({ kind: "langbridge", dIn: encoderHidden, dOut: hidden }, 77))
  const hE = path.join(base, "hE.holdout.arrow")
  teacher = (await randomMatrix(hE, N_HOLD, hidden, 31)).subarray(0, N_EVAL * hidden)
  const sctx = makeContext(synthesize, paramsOf(synthesize, configOf({ synth: { mode: "offline", train: 4, val: 0, evalPerBucket: 2 } })), { train, eval: evalFile }, path.join(base, "synth"))
  await run(synthesize.run(sctx))
  sftEval = await Effect.runPromise(readSftRows("test", sctx.outputs["sft.eval"]))
  evalForeign = (await readRows(evalFile)).map((r) => String(r["foreign"]))
  Object.assign(inputs, { models: mctx.outputs["models"], langbridge: path.join(base, "langbridge"), mindmerger: path.join(base, "mindmerger"), "hE.holdout": hE, eval: evalFile, "sft.eval": sctx.outputs["sft.eval"] })
}, 120_000)

// ---------------------------------------------------------------------------------------------------------------
// The separately built reference

const cutChars = (t: string) => Array.from(t.trim()).slice(0, CUT.maxChars).join("")

/** XLM-R ids with `<s>`/`</s>` of the whole encoder text cut to CUT.maxChars, then cut to CUT.maxTokens keeping
 *  `</s>` last. */
const refEncoderIds = (tok: TextTokenizer, text: string): Array<number> => {
  const ids = [...tok.encode(Array.from(text).slice(0, CUT.maxChars).join(""), { addSpecialTokens: true })]
  return ids.length <= CUT.maxTokens ? ids : [...ids.slice(0, CUT.maxTokens - 1), tok.eosId!]
}

/** The encoder's last hidden states of one sentence, alone in its batch: [n][d]. */
const refStates = (encoder: XlmrModel, ids: ReadonlyArray<number>): Array<Float64Array> => {
  const t = tf.tidy(() => xlmrEncode(encoder, { ids: [[...ids]], attentionMask: [ids.map(() => 1)] }))
  const h = t.arraySync()[0]
  t.dispose()
  return h.map((row) => Float64Array.from(row))
}

/** The bridge as a float64 loop on the host parameters: one encoder state → one soft row. */
const refMap = (kind: PeerName, host: Map<string, HostTensor>, x: Float64Array): Float64Array => {
  const get = (n: string) => host.get(n)!.data
  const lin = (w: ArrayLike<number>, b: ArrayLike<number>, v: Float64Array, dout: number) =>
    Float64Array.from({ length: dout }, (_, o) => {
      let s = b[o]
      for (let i = 0; i < v.length; i++) s += w[o * v.length + i] * v[i]
      return s
    })
  if (kind === "langbridge") return lin(get("linear.weight"), get("linear.bias"), x, hidden)
  const h = lin(get("mlp.linear1.weight"), get("mlp.linear1.bias"), x, 2 * encoderHidden).map((v) => Math.max(0, v))
  return lin(get("mlp.linear2.weight"), get("mlp.linear2.bias"), h, hidden)
}

const endOf = (kind: PeerName) => Float64Array.from(hosts[kind]!.get(kind === "langbridge" ? "enc_eos" : "end_boundary")!.data)

/** The encoder text of an evaluation example, written out as the module doc of src/prompts/bridge.ts says. */
const refEncoderText = (kind: PeerName, r: SftRow, reserved: ReadonlyArray<string>): string =>
  kind === "langbridge" ? `${instructionText(r.input, r.task_type, "input", reserved)}\n${cutChars(r.foreign_raw)}` : cutChars(r.foreign_raw)

interface Loaded {
  readonly encoder: XlmrModel
  readonly encTok: TextTokenizer
  readonly decoder: LlamaModel
  readonly decTok: TextTokenizer
}
const loadReference = async (): Promise<Loaded> => ({
  encoder: await Effect.runPromise(loadEncoder(resolved.encoderDir)),
  encTok: await Effect.runPromise(loadTokenizer(resolved.encoderDir)),
  decoder: await Effect.runPromise(loadDecoder(resolved.decoderDir, { addedTokens: resolved.doc.addedTokens, embeddingInit: resolved.doc.embeddingInit, embeddingSeed: resolved.doc.embeddingSeed })),
  decTok: await Effect.runPromise(loadTokenizer(resolved.decoderDir, { addedTokens: resolved.doc.addedTokens }))
})
const disposeReference = (l: Loaded) => {
  disposeXlmr(l.encoder)
  disposeLlama(l.decoder)
}

const GEN = { maxNewTokens: 6, noRepeatNgramSize: 3 }

describe("generate: the peers' prompts, soft rows and outputs", () => {
  it("equal ones built separately (unbatched encoder, float64 bridge, one example at a time)", async () => {
    const ref = await loadReference()
    const reserved = resolved.doc.addedTokens
    const placeholder = ref.decTok.padId ?? ref.decTok.eosId!
    const peers = await run(loadPeerSystems("test", inputs, resolved, { model: ref.decoder, rows: resolved.doc }))
    try {
      expect(peers.peers.map((p) => p.kind)).toEqual(["langbridge", "mindmerger"])
      const rows = sftEval
      expect(rows.length).toBe(4)
      const got = await generatePeers(peers, rows, GEN, 3)
      const cuts = { chars: 0, tokens: 0 }
      for (const peer of peers.peers) {
        const kind = peer.kind
        // What the generate path builds, for the soft-row check.
        const built = rows.map((r) => peerPrompt(peer, peers.encoderTokenizer!, ref.encTok.eosId!, r))
        const ov = await peerSoftRows(peer, peers.encoder!, built.map((b) => b.encoderIds), 3)
        const vectors = await ov.vectors.data()
        ov.vectors.dispose()
        let at = 0
        for (const [i, r] of rows.entries()) {
          const encIds = refEncoderIds(ref.encTok, refEncoderText(kind, r, reserved))
          expect(built[i].encoderIds).toEqual(encIds)
          const llmPrompt = kind === "mindmerger" ? finetunePrompt(instructionText(r.input, r.task_type, "input", reserved), cutChars(r.foreign_raw)) : ""
          const promptIds = [ref.decTok.bosId!, ...new Array<number>(encIds.length + 1).fill(placeholder), ...(llmPrompt === "" ? [] : ref.decTok.encode(llmPrompt, { addSpecialTokens: false }))]
          expect(built[i].prompt).toEqual(promptIds)
          expect(got[i][`${kind}PromptTokens`]).toBe(promptIds.length)
          // Soft rows: the float64 map of each state, then the end vector, at positions 1 … n+1 of row i.
          const soft = [...refStates(ref.encoder, encIds).map((s) => refMap(kind, hosts[kind]!, s)), endOf(kind)]
          for (const [t, want] of soft.entries()) {
            expect([ov.batch[at], ov.position[at]]).toEqual([i, 1 + t])
            for (let o = 0; o < hidden; o++) expect(vectors[at * hidden + o]).toBeCloseTo(want[o], 4)
            at++
          }
          // The greedy output, generated alone from the reference rows.
          const alone = await llamaGenerate(ref.decoder, [promptIds], {
            ...GEN,
            padId: placeholder,
            overrides: { batch: soft.map(() => 0), position: soft.map((_, t) => 1 + t), vectors: tf.tensor2d(soft.flatMap((v) => Array.from(v)), [soft.length, hidden]) }
          })
          expect(got[i][kind]).toBe(ref.decTok.decode(alone.tokens[0], { skipSpecialTokens: true }).trim())
        }
        expect(at).toBe(ov.batch.length)
        for (const [i, r] of rows.entries()) {
          if (Array.from(refEncoderText(kind, r, reserved)).length > CUT.maxChars) cuts.chars++
          if (built[i].encoderIds.length === CUT.maxTokens) cuts.tokens++
        }
      }
      // The cuts were exercised: some encoder text was longer than the character cut, some input hit the token cut.
      console.warn(`encoder cuts: ${cuts.chars} by characters, ${cuts.tokens} by tokens`)
      expect(cuts.chars).toBeGreaterThan(0)
      expect(cuts.tokens).toBeGreaterThan(0)
      // The peers read their soft rows: another LangBridge bridge answers otherwise, MindMerger is unchanged.
      const other = await run(loadPeerSystems("test", { ...inputs, langbridge: otherLangbridge }, resolved, { model: ref.decoder, rows: resolved.doc }))
      try {
        const got2 = await generatePeers(other, rows, GEN, 3)
        expect(got2.map((g) => g.mindmerger)).toEqual(got.map((g) => g.mindmerger))
        expect(got2.map((g) => g.langbridge)).not.toEqual(got.map((g) => g.langbridge))
      } finally {
        other.dispose()
      }
      // A peer left out of the inputs gets null columns.
      const one = await run(loadPeerSystems("test", { models: inputs["models"], mindmerger: inputs["mindmerger"] }, resolved, { model: ref.decoder, rows: resolved.doc }))
      try {
        const got3 = await generatePeers(one, rows, GEN, 3)
        expect(got3.every((g) => g.langbridge === null && g.langbridgePromptTokens === null)).toBe(true)
        expect(got3.map((g) => g.mindmerger)).toEqual(got.map((g) => g.mindmerger))
      } finally {
        one.dispose()
      }
    } finally {
      peers.dispose()
      disposeReference(ref)
    }
  }, 120_000)
})

describe("generatePeers, the stage", () => {
  it("answers by id with the decoder it loads itself, as generatePeers does per batch with the run's; resumes per batch", async () => {
    const stageInputs = { models: inputs["models"], langbridge: inputs["langbridge"], mindmerger: inputs["mindmerger"], "sft.eval": inputs["sft.eval"] }
    const params = paramsOf(generatePeersStage, configOf({ generate: { maxNewTokens: 6, batchSize: 3 } }))
    const ctx = makeContext(generatePeersStage, params, stageInputs, path.join(base, "gp1"))
    const outcome = await run(generatePeersStage.run(ctx))
    expect(outcome.metrics?.["computedBatches"]).toBe(2)
    const rows = await readRows(ctx.outputs["generations.peers"])
    const ref = await loadReference()
    const peers = await run(loadPeerSystems("test", inputs, resolved, { model: ref.decoder, rows: resolved.doc }))
    try {
      const want = [...(await generatePeers(peers, sftEval.slice(0, 3), GEN, 3)), ...(await generatePeers(peers, sftEval.slice(3), GEN, 3))]
      expect(rows.map((r) => r["id"])).toEqual(sftEval.map((_, i) => i))
      expect(rows.map((r) => ({ ...r, id: undefined }))).toEqual(want.map((w) => ({ ...w, id: undefined })))
      expect(rows.every((r) => typeof r["langbridge"] === "string" && typeof r["mindmerger"] === "string")).toBe(true)
    } finally {
      peers.dispose()
      disposeReference(ref)
    }
    const again = makeContext(generatePeersStage, params, stageInputs, path.join(base, "gp2"))
    fs.cpSync(ctx.scratchDir, again.scratchDir, { recursive: true })
    fs.rmSync(path.join(again.scratchDir, "batch-000001.json"))
    const outcome2 = await run(generatePeersStage.run(again))
    expect(outcome2.metrics?.["computedBatches"]).toBe(1)
    expect(await readRows(again.outputs["generations.peers"])).toEqual(rows)
  }, 120_000)
})

describe("retrievalPeers: the mean mapped state against h_E", () => {
  it("pools and scores as the separate computation does; a peer that is off gets null", async () => {
    const ref = await loadReference()
    const reserved = resolved.doc.addedTokens
    const refVectors = (kind: PeerName) => {
      const q = new Float32Array(N_EVAL * hidden)
      evalForeign.slice(0, N_EVAL).forEach((f, i) => {
        const mapped = refStates(ref.encoder, refEncoderIds(ref.encTok, cutChars(f))).map((s) => refMap(kind, hosts[kind]!, s))
        for (let o = 0; o < hidden; o++) q[i * hidden + o] = mapped.reduce((a, m) => a + m[o], 0) / mapped.length
      })
      return q
    }
    // The library's pooled vectors against the reference.
    const bridges = await run(loadPeerBridges("test", inputs, resolved, hidden))
    try {
      for (const peer of bridges.peers) {
        const texts = evalForeign.slice(0, N_EVAL).map((f) => cutChars(f))
        const got = await peerPooledVectors(peer, bridges.encoder!, bridges.encoderTokenizer!, texts, 3)
        const want = refVectors(peer.kind)
        expect(got.length).toBe(want.length)
        want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 4))
      }
    } finally {
      bridges.dispose()
    }
    expect(reserved.length).toBeGreaterThan(0)

    const params = paramsOf(retrievalPeers, configOf({ split: { evalN: N_EVAL }, encode: { batchSize: 3 } }))
    expect(params).toMatchObject({ n: 0, evalN: N_EVAL, encoderBatch: 3 })
    const ctx = makeContext(retrievalPeers, params, inputs, path.join(base, "rp1"))
    await run(retrievalPeers.run(ctx))
    const doc = JSON.parse(fs.readFileSync(ctx.outputs["retrieval.peers"], "utf8"))
    expect(doc).toMatchObject({ n: N_EVAL, vector: "meanMappedStates", bootstrap: { unit: "query" } })
    for (const kind of PEERS) {
      const want = retrievalMetrics(refVectors(kind), teacher, hidden, { normalize: true })
      expect(doc[kind].n).toBe(N_EVAL)
      expect(doc[kind].chanceR1).toBe(1 / N_EVAL)
      expect(doc[kind].r1).toBeCloseTo(want.r1, 10)
      expect(doc[kind].r5).toBeCloseTo(want.r5, 10)
      expect(doc[kind].mrr).toBeCloseTo(want.mrr, 6)
      expect(doc[kind].meanRank).toBeCloseTo(want.meanRank, 6)
      expect(doc[kind].r1CI.lo).toBeLessThanOrEqual(doc[kind].r1)
      expect(doc[kind].r1CI.hi).toBeGreaterThanOrEqual(doc[kind].r1)
    }
    // The two peers' vectors differ, so their ranks do (not one number copied into both rows).
    expect(doc.langbridge.meanRank).not.toBe(doc.mindmerger.meanRank)

    // MindMerger switched off: its folder holds only `enabled: false`.
    const off = await writeBridgeOffDir(path.join(base, "mindmerger-off"), "mindmerger")
    const ctx2 = makeContext(retrievalPeers, params, { ...inputs, mindmerger: off }, path.join(base, "rp2"))
    await run(retrievalPeers.run(ctx2))
    const doc2 = JSON.parse(fs.readFileSync(ctx2.outputs["retrieval.peers"], "utf8"))
    expect(doc2.mindmerger).toBeNull()
    expect(doc2.langbridge).toEqual(doc.langbridge)
    disposeReference(ref)
  }, 120_000)
})
