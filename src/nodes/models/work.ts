/**
 * The `models` stage's work: write the tiny checkpoints (when asked for) and the `models` document naming both
 * frozen models (see `modelsRef.ts` for the document).
 *
 * - `"tiny"`: `initTinyModels` writes `encoder/` and `decoder/` into the `models.tiny` folder output; the encoder's
 *   Unigram tokenizer is trained on the first `models.tinyTokenizerPairs` training pairs (both sides), so the tiny
 *   encoder covers the corpus's script. Only the tiny side(s) asked for are kept.
 * - A folder: checked now (config.json of the right architecture, a tokenizer.json) so a wrong path fails here and
 *   not hours later; its absolute path goes into the document. `models.tiny` stays an empty folder.
 *
 * Every file of both checkpoint folders is fingerprinted (SHA-256) into the document, so a changed checkpoint
 * changes the document and the cache keys downstream.
 */
import { Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { asStageError } from "../../pipeline/stageError.ts"
import { loadModelConfig } from "../../models/hfconfig.ts"
import { initTinyModels } from "../../models/init.ts"
import { reservedTokens } from "../../models/tokenizer.ts"
import { ArtifactError, StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { readTable } from "../../formats/parquet/table.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { type ModelRef, ModelsDoc, MODELS_FORMAT } from "../../artifacts/models.ts"
import type { ModelsParams } from "./params.ts"
import { PRETRAIN_FORMAT, PretrainDoc, type PretrainPart } from "../../schemas/pretrain.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { deriveSeed } from "../../models/rng.ts"

export type { ModelsParams }

const STAGE = "models"
export const FOREIGN_EMB_TOKEN = "<foreign_emb>"

/** Every regular file under `dir` (recursive; `/`-separated relative names, sorted) → SHA-256 hex. */
export const fingerprintFolder = (dir: string): Effect.Effect<Record<string, string>, ArtifactError> =>
  Effect.tryPromise({
    try: async () => {
      const names: Array<string> = []
      const walk = (rel: string): void => {
        for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
          const name = rel === "" ? entry.name : `${rel}/${entry.name}`
          if (entry.isDirectory()) walk(name)
          else if (entry.isFile() || entry.isSymbolicLink()) names.push(name)
        }
      }
      walk("")
      names.sort()
      const out: Record<string, string> = {}
      for (const name of names) {
        const hash = crypto.createHash("sha256")
        for await (const chunk of fs.createReadStream(path.join(dir, name), { highWaterMark: 1 << 22 })) {
          hash.update(chunk as Buffer)
        }
        out[name] = hash.digest("hex")
      }
      return out
    },
    catch: (cause) =>
      new ArtifactError({ path: dir, message: `cannot fingerprint the checkpoint folder: ${String(cause)}`, cause })
  })

/** Checks a user snapshot folder: it exists and holds a config.json of `kind` and a tokenizer.json. */
const checkSnapshot = (which: "encoder" | "decoder", dir: string) =>
  Effect.gen(function*() {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      return yield* new StageError({
        stage: STAGE,
        message: `models.${which}: ${dir} is not a folder (use "tiny" or a local Hugging Face snapshot folder)`,
        file: dir
      })
    }
    const mc = yield* loadModelConfig(dir).pipe(asStageError(STAGE))
    const want = which === "encoder" ? "xlmr" : "llama"
    if (mc.kind !== want) {
      return yield* new StageError({
        stage: STAGE,
        message: `models.${which}: ${dir} holds a ${mc.kind} model, expected ${want === "xlmr" ? "an XLM-RoBERTa encoder" : "a Llama decoder"}`,
        file: path.join(dir, "config.json")
      })
    }
    if (!fs.existsSync(path.join(dir, "tokenizer.json"))) {
      return yield* new StageError({ stage: STAGE, message: `models.${which}: ${dir} has no tokenizer.json`, file: dir })
    }
  })

/** The training pairs (English, foreign). */
const trainingPairs = (file: string) =>
  readTable(file, { columns: ["english", "foreign"] }).pipe(
    Stream.runCollect,
    Effect.map((rows) => rows.map((r) => ({ english: typeof r.english === "string" ? r.english : "", foreign: typeof r.foreign === "string" ? r.foreign : "" }))),
    asStageError(STAGE)
  )

/** Both sides of pairs as separate sentences (empty ones dropped). */
const sidesOf = (pairs: ReadonlyArray<{ readonly english: string; readonly foreign: string }>): Array<string> =>
  pairs.flatMap((r) => [r.english, r.foreign].filter((s) => s.length > 0))

export const runModels = (ctx: StageContext<ModelsParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const jsonFile = ctx.outputs["models"]
    const tinyDir = ctx.outputs["models.tiny"]
    let decoderPart: PretrainPart | null = null
    let encoderPart: PretrainPart | null = null
    yield* Effect.try({
      try: () => fs.mkdirSync(tinyDir, { recursive: true }),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${tinyDir}: ${String(cause)}`, file: tinyDir, cause })
    })
    const tinyEncoder = p.encoder === "tiny"
    const tinyDecoder = p.decoder === "tiny"
    if (tinyEncoder || tinyDecoder) {
      const pairs = yield* trainingPairs(ctx.inputs["train"])
      const sentences = sidesOf(pairs.slice(0, p.tinyTokenizerPairs))
      if (sentences.length === 0) {
        return yield* new StageError({ stage: STAGE, message: "the train table is empty: no text for the tiny tokenizer", file: ctx.inputs["train"] })
      }
      yield* initTinyModels(tinyDir, { seed: p.seed, sentences, size: p.tinySize }).pipe(asStageError(STAGE))
      // The mini decoder always goes through pretrainDecoder, with 0 steps too: the random control then has the
      // same shortlisted head (zero rows outside the English shortlist) as the pretrained model.
      const pretrainDecoder = tinyDecoder && p.tinySize === "mini"
      const pretrainEncoder = tinyEncoder && p.pretrain.encoderSteps > 0
      if (p.tinySize !== "mini" && (p.pretrain.decoderSteps > 0 || p.pretrain.encoderSteps > 0)) {
        return yield* new StageError({ stage: STAGE, message: `models.pretrain needs models.tinySize "mini" (the "test" decoder ties its head), got "${p.tinySize}"` })
      }
      if (pretrainDecoder || pretrainEncoder) {
        const backend = (yield* startBackend(STAGE)).tfBackend
        ctx.log(`pretraining on ${backend}`)
        const { pretrainDecoderDir, pretrainEncoderDir } = yield* Effect.promise(() => import("./pretrain.ts"))
        if (pretrainEncoder) {
          encoderPart = yield* pretrainEncoderDir(path.join(tinyDir, "encoder"), sidesOf(pairs), p.pretrain, deriveSeed(p.seed, "pretrain-encoder"), ctx.log)
          ctx.log(`encoder: masked-LM loss ${encoderPart.firstLoss?.toFixed(3)} → ${encoderPart.finalLoss?.toFixed(3)} over ${encoderPart.steps} steps`)
        }
        if (pretrainDecoder) {
          decoderPart = yield* pretrainDecoderDir(path.join(tinyDir, "decoder"), pairs.map((r) => r.english).filter((s) => s.length > 0), p.pretrain, deriveSeed(p.seed, "pretrain-decoder"), ctx.log)
          ctx.log(`decoder: English LM loss ${decoderPart.firstLoss?.toFixed(3) ?? "–"} → ${decoderPart.finalLoss?.toFixed(3) ?? "–"} over ${decoderPart.steps} steps (${decoderPart.vocabulary} token ids)`)
          for (const s of decoderPart.samples) ctx.log(`decoder sample: ${JSON.stringify(s.prompt.slice(-60))} → ${JSON.stringify(s.output)}`)
        }
      }
      yield* Effect.try({
        try: () => {
          if (!tinyEncoder) fs.rmSync(path.join(tinyDir, "encoder"), { recursive: true, force: true })
          if (!tinyDecoder) fs.rmSync(path.join(tinyDir, "decoder"), { recursive: true, force: true })
        },
        catch: (cause) => new StageError({ stage: STAGE, message: `cannot tidy ${tinyDir}: ${String(cause)}`, file: tinyDir, cause })
      })
      ctx.log(`tiny ${[tinyEncoder ? "encoder" : "", tinyDecoder ? "decoder" : ""].filter((s) => s !== "").join(" + ")} (seed ${p.seed}, tokenizer from ${sentences.length} sentences)`)
    }

    const ref = (which: "encoder" | "decoder", setting: string) =>
      Effect.gen(function*() {
        if (setting === "tiny") {
          const dir = path.join(tinyDir, which)
          const rel = path.relative(path.dirname(jsonFile), dir).split(path.sep).join("/")
          const r: ModelRef = { kind: "tiny", path: rel, sha256: yield* fingerprintFolder(dir).pipe(asStageError(STAGE)) }
          return r
        }
        const dir = path.resolve(setting)
        yield* checkSnapshot(which, dir)
        const r: ModelRef = { kind: "snapshot", path: dir, sha256: yield* fingerprintFolder(dir).pipe(asStageError(STAGE)) }
        return r
      })
    const encoder = yield* ref("encoder", p.encoder)
    const decoder = yield* ref("decoder", p.decoder)
    const doc: ModelsDoc = {
      format: MODELS_FORMAT,
      version: 1,
      encoder,
      decoder,
      addedTokens: reservedTokens(p.slots),
      foreignEmbToken: FOREIGN_EMB_TOKEN,
      embeddingInit: p.embeddingInit,
      embeddingSeed: p.seed,
      slots: p.slots
    }
    yield* writeJsonDoc(ModelsDoc, jsonFile, doc).pipe(asStageError(STAGE))
    yield* writeJsonDoc(PretrainDoc, ctx.outputs["models.pretrain"], { format: PRETRAIN_FORMAT, version: 1, decoder: decoderPart, encoder: encoderPart }).pipe(asStageError(STAGE))
    ctx.log(`encoder ${encoder.kind} ${encoder.path}; decoder ${decoder.kind} ${decoder.path}; ${doc.addedTokens.length} added tokens (${p.embeddingInit})`)
    return {
      rows: {},
      metrics: { encoder: encoder.kind, decoder: decoder.kind, addedTokens: doc.addedTokens.length, embeddingInit: p.embeddingInit }
    }
  })
