/**
 * Helpers for the Stage A stage tests: a synthetic Khmer–English parallel set built from templates, pair tables,
 * a hand-made StageContext (with a progress reporter that can inject a failure), and running a stage's `run`.
 */
import { Cause, Effect, Exit, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TensorBackend } from "../../src/backend/tensorBackend.ts"
import { makeRng } from "../../src/models/rng.ts"
import type { StageError } from "../../src/pipeline/errors.ts"
import type { Progress, Stage, StageContext, StageOutcome } from "../../src/pipeline/stage.ts"
import { openTableWriter } from "../../src/formats/parquet/table.ts"
import { PairColumns } from "../../src/schemas/rows.ts"
import { models } from "../../src/nodes/models/stage.ts"
import type { ModelsParams } from "../../src/nodes/models/params.ts"
import { tinyDecoder } from "../../src/nodes/tinyDecoder/stage.ts"
import { tinyEncoder } from "../../src/nodes/tinyEncoder/stage.ts"

export const repoRoot = path.resolve(import.meta.dirname, "../..")
export const realDataDir = path.resolve(repoRoot, "../shared/data/km-en")

export const tempDir = (label: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `llink-stageA-${label}-`))

export const sha256File = (file: string): string => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

export const decode = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, fields: unknown): S["Type"] =>
  Schema.decodeUnknownSync(schema)(fields)

// ---------------------------------------------------------------------------------------------------------------
// Synthetic parallel data: "{subject} {verb} {number} {object} {time}." ↔ Khmer word for word (SVO + noun-number).

const SUBJECTS: ReadonlyArray<readonly [string, string]> = [
  ["I", "ខ្ញុំ"],
  ["He", "គាត់"],
  ["We", "យើង"],
  ["They", "ពួកគេ"],
  ["She", "នាង"],
  ["The teacher", "លោកគ្រូ"],
  ["My mother", "ម្តាយខ្ញុំ"],
  ["The child", "ក្មេង"]
]
const VERBS: ReadonlyArray<readonly [string, string]> = [
  ["buys", "ទិញ"],
  ["eats", "ញ៉ាំ"],
  ["sees", "មើលឃើញ"],
  ["sells", "លក់"],
  ["wants", "ចង់បាន"],
  ["cooks", "ចម្អិន"]
]
const NUMBERS: ReadonlyArray<readonly [string, string]> = [
  ["one", "មួយ"],
  ["two", "ពីរ"],
  ["three", "បី"],
  ["four", "បួន"],
  ["five", "ប្រាំ"],
  ["six", "ប្រាំមួយ"],
  ["seven", "ប្រាំពីរ"]
]
const OBJECTS: ReadonlyArray<readonly [string, string]> = [
  ["fish", "ត្រី"],
  ["mangoes", "ស្វាយ"],
  ["books", "សៀវភៅ"],
  ["chickens", "មាន់"],
  ["bananas", "ចេក"],
  ["cars", "ឡាន"],
  ["shirts", "អាវ"]
]
const TIMES: ReadonlyArray<readonly [string, string]> = [
  ["today", "ថ្ងៃនេះ"],
  ["yesterday", "ម្សិលមិញ"],
  ["tomorrow", "ថ្ងៃស្អែក"]
]

export interface Pair {
  readonly english: string
  readonly foreign: string
}

/** `n` distinct template pairs in a seeded order. */
export const syntheticPairs = (n: number, seed: number): Array<Pair> => {
  const all: Array<Pair> = []
  for (const s of SUBJECTS) {
    for (const v of VERBS) {
      for (const k of NUMBERS) {
        for (const o of OBJECTS) {
          for (const t of TIMES) {
            all.push({ english: `${s[0]} ${v[0]} ${k[0]} ${o[0]} ${t[0]}.`, foreign: `${s[1]} ${v[1]} ${o[1]} ${k[1]} ${t[1]}។` })
          }
        }
      }
    }
  }
  const rng = makeRng(seed)
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1))
    const x = all[i]
    all[i] = all[j]
    all[j] = x
  }
  if (n > all.length) throw new Error(`only ${all.length} distinct synthetic pairs`)
  return all.slice(0, n)
}

/** Writes a pair table (the `train`/`holdout` schema) and returns its path. */
export const writePairs = async (file: string, pairs: ReadonlyArray<Pair>): Promise<string> => {
  await Effect.runPromise(
    Effect.gen(function*() {
      const w = yield* openTableWriter(file, PairColumns)
      yield* w.write(pairs.map((p, i) => ({ id: i, english: p.english, foreign: p.foreign, origin: `test:${i + 1}`, score: null })))
      return yield* w.close
    })
  )
  return file
}

// ---------------------------------------------------------------------------------------------------------------
// Running stages

const quietProgress: Progress = { advance: () => {}, setTotal: () => {}, done: () => {} }

/** A progress factory whose bars throw after `failAfter` units in total have been advanced (an injected crash). */
export const failingProgress = (failAfter: number): ((label: string, total?: number) => Progress) => {
  let seen = 0
  return () => ({
    advance: (n = 1) => {
      seen += n
      if (seen >= failAfter) throw new Error(`injected failure after ${seen} units`)
    },
    setTotal: () => {},
    done: () => {}
  })
}

export interface RunOptions {
  /** Output folder (default `<dir>/<stage>.out`); a fresh one per run keeps reruns apart. */
  readonly outDir?: string
  readonly scratchDir?: string
  readonly progress?: (label: string, total?: number) => Progress
}

export interface Ran {
  readonly outcome: StageOutcome
  readonly outputs: Readonly<Record<string, string>>
  readonly logs: ReadonlyArray<string>
}

const makeContext = <P>(
  stage: Stage<P, TensorBackend>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  dir: string,
  logs: Array<string>,
  options?: RunOptions
): StageContext<P> => {
  const outDir = options?.outDir ?? path.join(dir, `${stage.name}.out`)
  fs.mkdirSync(outDir, { recursive: true })
  const outputs = Object.fromEntries(stage.outputs.map((o) => [o.name, path.join(outDir, o.file)]))
  return {
    params,
    inputs,
    outputs,
    scratchDir: options?.scratchDir ?? path.join(dir, `${stage.name}.scratch`),
    runDir: dir,
    progress: options?.progress ?? (() => quietProgress),
    log: (m) => logs.push(m)
  }
}

/** Runs `stage.run` directly (outputs in `dir/<stage>.out/` unless told otherwise). */
export const runStage = async <P>(
  stage: Stage<P, TensorBackend>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  dir: string,
  options?: RunOptions
): Promise<Ran> => {
  const logs: Array<string> = []
  const ctx = makeContext(stage, params, inputs, dir, logs, options)
  const outcome = await Effect.runPromise(stage.run(ctx).pipe(Effect.provide(TensorBackend.layer)))
  return { outcome, outputs: ctx.outputs, logs }
}

/**
 * Runs `tinyEncoder` and `tinyDecoder` for the `models` section `params` on the `train` table (outputs in
 * `dir/<stage>.out/`), as the runner would, and returns the `models` stage's inputs.
 */
export const tinyModelInputs = async (params: ModelsParams, train: string, dir: string): Promise<Record<string, string>> => {
  const config = { models: params }
  const enc = await runStage(tinyEncoder, Schema.decodeUnknownSync(tinyEncoder.params)(tinyEncoder.selectParams(config)), { train }, dir)
  const dec = await runStage(tinyDecoder, Schema.decodeUnknownSync(tinyDecoder.params)(tinyDecoder.selectParams(config)), { train }, dir)
  return { ...enc.outputs, ...dec.outputs }
}

/** Runs `tinyEncoder`, `tinyDecoder` and `models` for `params` on the `train` table. */
export const runModels = async (params: ModelsParams, train: string, dir: string, options?: RunOptions): Promise<Ran> =>
  runStage(models, params, await tinyModelInputs(params, train, dir), dir, options)

/** Runs `stage.run` expecting it to fail (typed failure or defect); returns a description of the failure. */
export const runStageExpectingFailure = async <P>(
  stage: Stage<P, TensorBackend>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  dir: string,
  options?: RunOptions
): Promise<{ readonly typed: StageError | undefined; readonly pretty: string }> => {
  const ctx = makeContext(stage, params, inputs, dir, [], options)
  const exit = await Effect.runPromiseExit(stage.run(ctx).pipe(Effect.provide(TensorBackend.layer)))
  if (Exit.isSuccess(exit)) throw new Error(`expected ${stage.name} to fail, it succeeded`)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  return { typed: failure?.error, pretty: Cause.pretty(exit.cause) }
}
