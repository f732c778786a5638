/**
 * The `models` stage's work: gather the checkpoints and write the `models` document naming both frozen models (see
 * `src/artifacts/models.ts` for the document).
 *
 * - `"tiny"`: the checkpoint the `tinyEncoder` / `tinyDecoder` stage made is hard-linked into the `models.tiny` folder
 *   output (`encoder/`, `decoder/`), and its pretraining part into the `models.pretrain` document.
 * - A folder: checked now (config.json of the right architecture, a tokenizer.json) so a wrong path fails here and
 *   not hours later; its absolute path goes into the document. `models.tiny` stays an empty folder.
 *
 * Every file of both checkpoint folders is fingerprinted (SHA-256) into the document, so a changed checkpoint
 * changes the document and the cache keys downstream.
 */
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { asStageError } from "../../pipeline/stageError.ts"
import { loadModelConfig } from "../../models/hfconfig.ts"
import { reservedTokens } from "../../models/tokenizer.ts"
import { ArtifactError, StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { readJsonDoc, writeJsonDoc } from "../../artifacts/json.ts"
import { type ModelRef, ModelsDoc, MODELS_FORMAT } from "../../artifacts/models.ts"
import type { ModelsParams } from "./params.ts"
import { PRETRAIN_FORMAT, PretrainDoc, type PretrainPart } from "../../schemas/pretrain.ts"

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

/** Link errors after which a copy does the job: another file system, or one without hard links. */
const NO_LINK = new Set(["EXDEV", "EPERM", "ENOTSUP", "EMLINK"])

/**
 * `from`'s files under `to`, hard-linked: cached artifacts are never written again, so the 130 MB decoder is not
 * stored twice. A file that cannot be linked (`NO_LINK`) is copied. A file already at `to` (a retried attempt) is
 * replaced.
 */
const linkTree = (from: string, to: string): void => {
  fs.mkdirSync(to, { recursive: true })
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const a = path.join(from, entry.name)
    const b = path.join(to, entry.name)
    if (entry.isDirectory()) {
      linkTree(a, b)
      continue
    }
    fs.rmSync(b, { force: true })
    try {
      fs.linkSync(a, b)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === undefined || !NO_LINK.has(code)) throw e
      fs.copyFileSync(a, b)
    }
  }
}

export const runModels = (ctx: StageContext<ModelsParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const p = ctx.params
    const jsonFile = ctx.outputs["models"]
    const tinyDir = ctx.outputs["models.tiny"]
    yield* Effect.try({
      try: () => fs.mkdirSync(tinyDir, { recursive: true }),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${tinyDir}: ${String(cause)}`, file: tinyDir, cause })
    })
    // The tiny checkpoints come from the tinyEncoder and tinyDecoder stages (which ran side by side); the ones this
    // run uses are linked in, so models.tiny holds both as before and the document's relative paths stay inside it.
    const parts = { encoder: null as PretrainPart | null, decoder: null as PretrainPart | null }
    for (const which of ["encoder", "decoder"] as const) {
      if ((which === "encoder" ? p.encoder : p.decoder) !== "tiny") continue
      const from = ctx.inputs[which === "encoder" ? "tinyEncoder" : "tinyDecoder"]
      const to = path.join(tinyDir, which)
      yield* Effect.try({
        try: () => linkTree(from, to),
        catch: (cause) => new StageError({ stage: STAGE, message: `cannot link the tiny ${which} from ${from}: ${String(cause)}`, file: from, cause })
      })
      const doc = yield* readJsonDoc(PretrainDoc, ctx.inputs[which === "encoder" ? "tinyEncoder.pretrain" : "tinyDecoder.pretrain"]).pipe(asStageError(STAGE))
      parts[which] = doc[which]
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
    yield* writeJsonDoc(PretrainDoc, ctx.outputs["models.pretrain"], { format: PRETRAIN_FORMAT, version: 1, decoder: parts.decoder, encoder: parts.encoder }).pipe(asStageError(STAGE))
    ctx.log(`encoder ${encoder.kind} ${encoder.path}; decoder ${decoder.kind} ${decoder.path}; ${doc.addedTokens.length} added tokens (${p.embeddingInit})`)
    return {
      rows: {},
      metrics: { encoder: encoder.kind, decoder: decoder.kind, addedTokens: doc.addedTokens.length, embeddingInit: p.embeddingInit }
    }
  })
