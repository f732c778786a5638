/**
 * Fixtures of the Stage B tests: a tiny decoder (`initTinyModels`), a `models` document, a tiny random projector,
 * and a synthetic task whose answer is carried only by the foreign vector: each example belongs to one of
 * `ANSWERS.length` classes, its z_F is that class's prototype plus noise, its target is the class's English word,
 * and its h_E is the class's teacher vector plus noise. The prompt is the same for every example, so a model that
 * ignores the slots cannot do better than guess among the answers.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { initBackend } from "../../src/backend/select.ts"
import { TensorBackend } from "../../src/backend/tensorBackend.ts"
import { initTinyModels } from "../../src/models/init.ts"
import * as Projector from "../../src/models/projector.ts"
import { deriveSeed, makeRng } from "../../src/models/rng.ts"
import { reservedTokens } from "../../src/models/tokenizer.ts"
import { openMatrixWriter } from "../../src/formats/arrow/matrix.ts"
import type { Progress, StageContext } from "../../src/pipeline/stage.ts"
import type { Column, Row } from "../../src/formats/parquet/table.ts"
import { openTableWriter } from "../../src/formats/parquet/table.ts"
import { FinetuneConfig } from "../../src/nodes/finetune/params.ts"
import { StageBParams } from "../../src/nodes/stageB/params.ts"
import { saveProjectorDir } from "../../src/artifacts/projector.ts"

/** Runs a stage-work Effect with the live tensor backend (`LLINK_BACKEND` or the best available). */
export const run = <A, E>(e: Effect.Effect<A, E, TensorBackend>): Promise<A> => Effect.runPromise(e.pipe(Effect.provide(TensorBackend.layer)))

/** The fastest backend here (cpu-blas with OpenBLAS, else the stock cpu). */
export const setupBackend = async (): Promise<string> => {
  const info = await initBackend()
  return info.choice
}

export const ANSWERS = ["alpha", "bravo", "charlie", "delta"] as const
/** A foreign word per class (the fine-tune baseline reads these as text). */
export const FOREIGN = ["ក្រហម", "ខៀវ", "បៃតង", "លឿង"] as const
export const INSTRUCTION = "Translate the foreign text to English."
export const D_IN = 16
export const HIDDEN = 64

const SFT_COLUMNS: ReadonlyArray<Column> = [
  { name: "id", type: "int32" },
  { name: "bucket", type: "utf8" },
  { name: "instruction", type: "utf8" },
  { name: "task_type", type: "utf8" },
  { name: "input", type: "utf8" },
  { name: "output", type: "utf8" },
  { name: "foreign_raw", type: "utf8" },
  { name: "english_ref", type: "utf8" },
  { name: "row", type: "int32" },
  { name: "offline", type: "bool" }
]

export interface Fixture {
  readonly root: string
  readonly decoderDir: string
  readonly inputs: Readonly<Record<string, string>>
  /** Class of each pair (rows of zF/hE). */
  readonly classes: ReadonlyArray<number>
}

export interface FixtureOptions {
  readonly train: number
  readonly val: number
  readonly slots: number
  /** Give the sft rows the zF rows of other classes (slots carry no information about the answer). */
  readonly shuffleForeign?: boolean
  readonly seed?: number
}

const writeMatrix = async (file: string, rows: number, dim: number, data: Float32Array) => {
  const w = await run(openMatrixWriter(file, dim))
  await run(w.write({ rows, dim, data }))
  await run(w.close)
}

const writeRows = async (file: string, rows: ReadonlyArray<Row>) => {
  const w = await run(openTableWriter(file, SFT_COLUMNS))
  await run(w.write(rows))
  await run(w.close)
}

/** Tiny models shared by every fixture under `root` (written once). */
export const tinyModels = async (root: string): Promise<{ encoder: string; decoder: string }> => {
  const dir = path.join(root, "tiny")
  if (!fs.existsSync(path.join(dir, "decoder", "model.safetensors"))) await run(initTinyModels(dir, { seed: 3 }))
  return { encoder: path.join(dir, "encoder"), decoder: path.join(dir, "decoder") }
}

export const writeFixture = async (root: string, name: string, o: FixtureOptions): Promise<Fixture> => {
  const dirs = await tinyModels(root)
  const dir = path.join(root, name)
  fs.mkdirSync(dir, { recursive: true })
  const seed = o.seed ?? 5
  const sha = {}
  const modelsFile = path.join(dir, "models.json")
  fs.writeFileSync(
    modelsFile,
    JSON.stringify({
      format: "llink-models",
      version: 1,
      encoder: { kind: "snapshot", path: dirs.encoder, sha256: sha },
      decoder: { kind: "snapshot", path: dirs.decoder, sha256: sha },
      addedTokens: reservedTokens(o.slots),
      foreignEmbToken: "<foreign_emb>",
      embeddingInit: "zeros",
      embeddingSeed: 17,
      slots: o.slots
    })
  )
  // projector: tiny, random, dropout irrelevant (frozen, evaluation mode)
  const pconf = Projector.makeConfig(D_IN, HIDDEN, { dHidden: 32, dropout: 0.1 })
  await run(saveProjectorDir(path.join(dir, "projector"), pconf, Projector.initHost(pconf, seed), 0))

  const n = o.train + o.val
  const rng = makeRng(deriveSeed(seed, "fixture"))
  const C = ANSWERS.length
  const protos = Float32Array.from({ length: C * D_IN }, () => 2 * rng.normal())
  const teachers = Float32Array.from({ length: C * HIDDEN }, () => rng.normal())
  const classes = Array.from({ length: n }, (_, i) => i % C)
  // the negative control hands each example the vector (and the foreign word) of another class
  const shown = classes.map((c, i) => (o.shuffleForeign ? (c + 1 + (i % (C - 1))) % C : c))
  const z = new Float32Array(n * D_IN)
  const h = new Float32Array(n * HIDDEN)
  for (let i = 0; i < n; i++) {
    const c = shown[i]
    for (let k = 0; k < D_IN; k++) z[i * D_IN + k] = protos[c * D_IN + k] + 0.3 * rng.normal()
    for (let k = 0; k < HIDDEN; k++) h[i * HIDDEN + k] = teachers[classes[i] * HIDDEN + k] + 0.3 * rng.normal()
  }
  await writeMatrix(path.join(dir, "zF.arrow"), n, D_IN, z)
  await writeMatrix(path.join(dir, "hE.arrow"), n, HIDDEN, h)
  const rowOf = (i: number): Row => ({
    id: i,
    bucket: "content",
    instruction: INSTRUCTION,
    task_type: "translate_to_english",
    input: `Instruction: ${INSTRUCTION}\nForeign: <foreign><foreign_emb></foreign>\nAnswer in English only.`,
    output: ANSWERS[classes[i]],
    foreign_raw: FOREIGN[shown[i]],
    english_ref: ANSWERS[classes[i]],
    row: i,
    offline: true
  })
  await writeRows(path.join(dir, "sft.train.parquet"), Array.from({ length: o.train }, (_, i) => rowOf(i)))
  await writeRows(path.join(dir, "sft.val.parquet"), Array.from({ length: o.val }, (_, i) => rowOf(o.train + i)))
  return {
    root: dir,
    decoderDir: dirs.decoder,
    classes,
    inputs: {
      models: modelsFile,
      projector: path.join(dir, "projector"),
      "zF.train": path.join(dir, "zF.arrow"),
      "hE.train": path.join(dir, "hE.arrow"),
      "sft.train": path.join(dir, "sft.train.parquet"),
      "sft.val": path.join(dir, "sft.val.parquet")
    }
  }
}

const quiet: Progress = { advance: () => {}, setTotal: () => {}, done: () => {} }

/** A stage context writing into `outDir`, with its own scratch folder; log lines are collected. */
export const makeContext = <P>(
  params: P,
  inputs: Readonly<Record<string, string>>,
  outDir: string,
  outputs: ReadonlyArray<readonly [string, string]>,
  scratchDir: string,
  logs: Array<string> = []
): StageContext<P> => {
  fs.mkdirSync(outDir, { recursive: true })
  fs.mkdirSync(scratchDir, { recursive: true })
  return {
    params,
    inputs,
    outputs: Object.fromEntries(outputs.map(([name, file]) => [name, path.join(outDir, file)])),
    scratchDir,
    runDir: outDir,
    progress: () => quiet,
    log: (m) => logs.push(m)
  }
}

export const stageBParams = (overrides: Record<string, unknown>): StageBParams =>
  Schema.decodeUnknownSync(StageBParams)(overrides)

export const finetuneParams = (overrides: Record<string, unknown>): typeof FinetuneConfig.Type =>
  Schema.decodeUnknownSync(FinetuneConfig)(overrides)

/** Number of live tf tensors (leak checks). */
export const liveTensors = (): number => tf.memory().numTensors
