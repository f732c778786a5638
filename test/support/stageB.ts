// Helpers shared by the Stage B node tests: temp dirs, fixture pair tables, and a StageContext for calling a stage's
// `run` directly (inputs are files the test wrote; outputs go to a temp folder).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema, Stream } from "effect"
import { afterAll } from "vitest"
import type { Progress, Stage, StageContext, StageOutcome } from "../../src/pipeline/stage.ts"
import { readTableAll, type Row, writeTable } from "../../src/formats/parquet/table.ts"
import { LlinkConfig } from "../../src/nodes/config.ts"
import { PairColumns } from "../../src/schemas/rows.ts"
import type { StageError } from "../../src/pipeline/errors.ts"
import { GenerationColumns, type GenerationRow } from "../../src/schemas/sft.ts"
import { makeRng } from "../../src/models/rng.ts"
import { openMatrixWriter } from "../../src/formats/arrow/matrix.ts"

const made: Array<string> = []
/** A fresh temp folder, removed when the test file ends (`removeTmpDirs`, registered below). */
export const tmpDir = (label: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `llink-stageB-${label}-`))
  made.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

/** The whole config decoded from a partial one (defaults filled, unknown keys rejected). */
export const configOf = (partial: unknown): LlinkConfig =>
  Schema.decodeUnknownSync(LlinkConfig)(partial, { onExcessProperty: "error" })

/** The params a stage would get from `config` (as the runner computes them). */
export const paramsOf = <P, R>(stage: Stage<P, R>, config: LlinkConfig): P =>
  Schema.decodeUnknownSync(stage.params)(stage.selectParams(config))

const quietProgress = (): Progress => ({ advance: () => {}, setTotal: () => {}, done: () => {} })

export interface TestContext<P> extends StageContext<P> {
  readonly logs: Array<string>
  readonly outDir: string
}

/** A StageContext writing outputs into a fresh folder (`<base>/out/<file>`), scratch in `<base>/cache/<stage>/k.partial`. */
export const makeContext = <P, R>(
  stage: Stage<P, R>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  base: string = tmpDir(stage.name)
): TestContext<P> => {
  const outDir = path.join(base, "out")
  fs.mkdirSync(outDir, { recursive: true })
  const scratchDir = path.join(base, "cache", stage.name, "k.partial")
  fs.mkdirSync(scratchDir, { recursive: true })
  const outputs: Record<string, string> = {}
  for (const o of stage.outputs) outputs[o.name] = path.join(outDir, o.file)
  const logs: Array<string> = []
  return {
    params,
    inputs,
    outputs,
    scratchDir,
    runDir: path.join(base, "run"),
    progress: () => quietProgress(),
    log: (m) => void logs.push(m),
    logs,
    outDir
  }
}

export const runStage = <P, R>(stage: Stage<P, R>, ctx: StageContext<P>): Effect.Effect<StageOutcome, StageError, R> => stage.run(ctx)

export interface FixturePair {
  readonly english: string
  readonly foreign: string
}

/** Writes a pair table (the `train`/`holdout`/`eval` layout) and returns its path. */
export const writePairs = async (file: string, pairs: ReadonlyArray<FixturePair>, firstId = 0): Promise<string> => {
  const rows: Array<Row> = pairs.map((p, i) => ({ id: firstId + i, english: p.english, foreign: p.foreign, origin: `fixture:${i + 1}`, score: null }))
  await Effect.runPromise(writeTable(file, PairColumns, Stream.fromIterable(rows)))
  return file
}

export const readRows = (file: string): Promise<ReadonlyArray<Row>> => Effect.runPromise(readTableAll(file))

const KHMER_WORDS = ["ក្រុមហ៊ុន", "សាលារៀន", "ប្រទេស", "កម្ពុជា", "ទីក្រុង", "ភ្នំពេញ", "សៀវភៅ", "ការងារ", "ផ្ទះ", "ថ្ងៃ", "ឆ្នាំ", "មនុស្ស"]
const ENGLISH = [
  "The company opened a new office in Phnom Penh in 2019.",
  "Classes resume on Monday, 12 March.",
  "The fee is $50 per person.",
  "Capacity: 30 MW of solar power.",
  "We do not share your contact information unless you consent.",
  "The store sells books, magazines and newspapers.",
  "Parking is available on the second floor.",
  "The course includes lectures, group work, and a final exam.",
  "The building was constructed in 1985.",
  "The distance is 25 kilometers."
]

/** `n` deterministic pairs: Khmer-looking foreign text of 20–120 code points and English sentences. */
export const fixturePairs = (n: number, seed = 0): Array<FixturePair> =>
  Array.from({ length: n }, (_, i) => {
    const k = (i * 7 + seed) % KHMER_WORDS.length
    const words = 3 + ((i * 5 + seed) % 8)
    const foreign = Array.from({ length: words }, (_, j) => KHMER_WORDS[(k + j) % KHMER_WORDS.length]).join(" ")
    return { english: `${ENGLISH[(i + seed) % ENGLISH.length]} (item ${i})`, foreign }
  })

/** A generations row with defaults for the fields a test does not care about. */
export const generationRow = (g: Partial<GenerationRow> & Pick<GenerationRow, "id">): GenerationRow => ({
  row: g.id,
  task_type: g.bucket === "qa" ? "qa_about_text" : "translate_to_english",
  bucket: "content",
  instruction: "Translate the foreign text to English.",
  foreign: "ក្រុមហ៊ុន សាលារៀន",
  reference: "The reference.",
  target: "The reference.",
  llink: "",
  base: "",
  finetune: "",
  llinkPromptTokens: 30,
  basePromptTokens: 90,
  finetunePromptTokens: 95,
  langbridge: null,
  mindmerger: null,
  langbridgePromptTokens: null,
  mindmergerPromptTokens: null,
  ...g
} as GenerationRow)

export const writeGenerations = async (file: string, rows: ReadonlyArray<GenerationRow>): Promise<string> => {
  await Effect.runPromise(writeTable(file, GenerationColumns, Stream.fromIterable(rows.map((r) => ({ ...r })))))
  return file
}

/** A seeded N(0, 1) matrix written as an Arrow matrix file (the `zF.*` / `hE.*` layout); returns its values. */
export const writeRandomMatrix = async (file: string, rows: number, dim: number, seed: number) => {
  const rng = makeRng(seed)
  const data = Float32Array.from({ length: rows * dim }, () => rng.normal())
  await Effect.runPromise(
    Effect.gen(function*() {
      const w = yield* openMatrixWriter(file, dim)
      yield* w.write({ rows, dim, data })
      yield* w.close
    })
  )
  return data
}
