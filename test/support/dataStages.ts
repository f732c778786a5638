/** Helpers for the data-stage tests: temp dirs, a hand-made StageContext, and running a stage's `run` directly. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Cause, Effect, Exit, Schema } from "effect"
import type { StageError } from "../../src/pipeline/errors.ts"
import type { Stage, StageContext, StageOutcome } from "../../src/pipeline/stage.ts"
import { readTableAll, type Row } from "../../src/formats/parquet/table.ts"
import { CleanConfig } from "../../src/nodes/clean/params.ts"
import { CorpusConfig } from "../../src/corpus/spec.ts"
import { SplitConfig } from "../../src/nodes/split/params.ts"
import { TokstatsParams } from "../../src/nodes/tokstats/params.ts"

export const repoRoot = path.resolve(import.meta.dirname, "../..")

export const tempDir = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `llink-data-${prefix}-`))

export const corpusParams = (fields: Record<string, unknown>) => Schema.decodeUnknownSync(CorpusConfig)(fields)
export const cleanParams = (fields: Record<string, unknown> = {}) => Schema.decodeUnknownSync(CleanConfig)(fields)
export const splitParams = (fields: Record<string, unknown> = {}) => Schema.decodeUnknownSync(SplitConfig)(fields)
/** tokstats params; K (`models.slots`) defaults to 8 as in the config. */
export const tokstatsParams = (fields: Record<string, unknown> = {}) => Schema.decodeUnknownSync(TokstatsParams)({ slots: 8, ...fields })

export interface Ran {
  readonly outcome: StageOutcome
  /** Artifact name → path written. */
  readonly outputs: Readonly<Record<string, string>>
  readonly logs: ReadonlyArray<string>
}

const makeContext = <P>(
  stage: Stage<P>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  dir: string,
  logs: Array<string>
): StageContext<P> => {
  const outDir = path.join(dir, `${stage.name}.out`)
  fs.mkdirSync(outDir, { recursive: true })
  const outputs = Object.fromEntries(stage.outputs.map((o) => [o.name, path.join(outDir, o.file)]))
  return {
    params,
    inputs,
    outputs,
    scratchDir: path.join(dir, `${stage.name}.scratch`),
    runDir: dir,
    progress: () => ({ advance: () => {}, setTotal: () => {}, done: () => {} }),
    log: (m) => logs.push(m)
  }
}

/** Runs `stage.run` with its outputs in `dir/<stage>.out/`. */
export const runStage = async <P>(
  stage: Stage<P>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  dir: string
): Promise<Ran> => {
  const logs: Array<string> = []
  const ctx = makeContext(stage, params, inputs, dir, logs)
  const outcome = await Effect.runPromise(stage.run(ctx))
  return { outcome, outputs: ctx.outputs, logs }
}

/** Runs `stage.run` expecting a failure; returns the StageError. */
export const runStageFailure = async <P>(
  stage: Stage<P>,
  params: P,
  inputs: Readonly<Record<string, string>>,
  dir: string
): Promise<StageError> => {
  const ctx = makeContext(stage, params, inputs, dir, [])
  const exit = await Effect.runPromiseExit(stage.run(ctx))
  if (Exit.isSuccess(exit)) throw new Error(`expected ${stage.name} to fail, it succeeded: ${JSON.stringify(exit.value)}`)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.error
}

export const rows = (file: string): Promise<ReadonlyArray<Row>> => Effect.runPromise(readTableAll(file))
