/**
 * The `models` artifact: a small JSON document naming the frozen encoder and decoder every later stage loads, plus
 * the reserved tokens added to the decoder's vocabulary and how their input-embedding rows start.
 *
 * ```json
 * { "format": "llink-models", "version": 1,
 *   "encoder": { "kind": "tiny", "path": "tiny/encoder", "sha256": { "config.json": "…", … } },
 *   "decoder": { "kind": "snapshot", "path": "/models/Llama-3.2-1B-Instruct", "sha256": { … } },
 *   "addedTokens": ["<foreign>", "</foreign>", "<foreign_emb>", "<f0>", …], "foreignEmbToken": "<foreign_emb>",
 *   "embeddingInit": "zeros", "embeddingSeed": 17, "slots": 8 }
 * ```
 *
 * `kind: "tiny"` paths are RELATIVE to the folder holding the JSON file (the tiny checkpoints are the sibling
 * `models.tiny` output, and the runner moves the whole output folder when it publishes); `kind: "snapshot"` paths
 * are absolute (a user's Hugging Face snapshot folder). `sha256` fingerprints every file of the folder, so a changed
 * checkpoint changes this document and with it the cache key of every stage that reads it.
 *
 * Consumers call `readModelsRef(ctx.inputs["models"])`, which resolves both paths.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { ArtifactError } from "../pipeline/errors.ts"
import { EmbeddingInitRule } from "../schemas/fields.ts"

export const MODELS_FORMAT = "llink-models"


export const ModelRef = Schema.Struct({
  /** "tiny": written by the `models` stage (path relative to the JSON file); "snapshot": a user folder (absolute). */
  kind: Schema.Literals(["tiny", "snapshot"]),
  path: Schema.String,
  /** File name (relative to the folder, `/`-separated) → SHA-256 hex of its content. */
  sha256: Schema.Record(Schema.String, Schema.String)
})
export type ModelRef = typeof ModelRef.Type

export const ModelsDoc = Schema.Struct({
  format: Schema.Literal(MODELS_FORMAT),
  version: Schema.Literal(1),
  encoder: ModelRef,
  decoder: ModelRef,
  /** Tokens appended to the decoder's vocabulary, in id order (`reservedTokens(slots)`). */
  addedTokens: Schema.Array(Schema.String),
  /** The reserved token whose final hidden state is the Stage A teacher (`<foreign_emb>`). */
  foreignEmbToken: Schema.String,
  /** Input-embedding rows of the added tokens (`models.embeddingInit`). */
  embeddingInit: EmbeddingInitRule,
  /** Seed of the "normal" rows. */
  embeddingSeed: Schema.Number,
  slots: Schema.Number
})
export type ModelsDoc = typeof ModelsDoc.Type

/** A `models` document with both folders resolved to absolute paths. */
export interface ResolvedModels {
  readonly doc: ModelsDoc
  readonly encoderDir: string
  readonly decoderDir: string
}

const resolveRef = (jsonFile: string, ref: ModelRef): string =>
  ref.kind === "tiny" ? path.resolve(path.dirname(jsonFile), ref.path) : path.resolve(ref.path)

/** Reads and checks the `models` JSON at `file`, resolving the checkpoint folders (which must exist). */
export const readModelsRef = (file: string): Effect.Effect<ResolvedModels, ArtifactError> =>
  Effect.gen(function*() {
    const raw = yield* Effect.try({
      try: (): unknown => JSON.parse(fs.readFileSync(file, "utf8")),
      catch: (cause) =>
        new ArtifactError({ path: file, message: `cannot read the models document: ${String(cause)}`, cause })
    })
    const doc = yield* Schema.decodeUnknownEffect(ModelsDoc)(raw).pipe(
      Effect.mapError(
        (cause) => new ArtifactError({ path: file, message: `not a ${MODELS_FORMAT} document: ${cause.message}`, cause })
      )
    )
    const encoderDir = resolveRef(file, doc.encoder)
    const decoderDir = resolveRef(file, doc.decoder)
    for (const [which, dir] of [["encoder", encoderDir], ["decoder", decoderDir]] as const) {
      if (!fs.existsSync(path.join(dir, "config.json"))) {
        return yield* new ArtifactError({
          path: file,
          message: `the ${which} folder ${dir} named by ${file} has no config.json (moved or deleted?)`
        })
      }
    }
    return { doc, encoderDir, decoderDir }
  })
