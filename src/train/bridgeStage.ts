/**
 * The run of a peer-baseline stage (`langbridge`, `mindmerger`), given its phases as data: load the run's frozen
 * encoder and compute every example's token states once, load the frozen decoder (the `models` document's added
 * tokens, no LoRA), initialise the bridge, train it phase after phase (src/train/bridge.ts; each phase resumes
 * exactly from its own checkpoints under `<scratch>/<phase>/`), and write the folder (bridge.safetensors +
 * config.json, src/artifacts/bridge.ts) and the metrics table. A peer that `baselines` leaves out writes only
 * `{ enabled: false, trained: null }`, at once.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { readModelsRef } from "../artifacts/models.ts"
import { writeJsonDoc } from "../artifacts/json.ts"
import { startBackend, type TensorBackend } from "../backend/tensorBackend.ts"
import type { BridgeConfig, BridgeKind, BridgeModule } from "../models/bridge.ts"
import { BRIDGE_FILE, disposeBridge, initBridge, saveBridge } from "../models/bridge.ts"
import { disposeLlama, type LlamaModel, loadDecoder } from "../models/llama.ts"
import { deriveSeed } from "../models/rng.ts"
import { loadTokenizer } from "../models/tokenizer.ts"
import { disposeXlmr, loadEncoder, tokenStates } from "../models/xlmr.ts"
import { StageError } from "../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../pipeline/stage.ts"
import { asStageError } from "../pipeline/stageError.ts"
import { type Cell, openTableWriter } from "../formats/parquet/table.ts"
import { BRIDGE_CONFIG, BRIDGE_METRICS_COLUMNS, BridgeDoc } from "../schemas/bridge.ts"
import type { BridgeExample, BridgeText, BridgeTokens } from "./bridge.ts"
import { encodeBridgeRows, trainBridge, withStates } from "./bridge.ts"
import type { InstructionSource } from "../prompts/slots.ts"
import type { LoopSettings, MetricsRow } from "./sftLoop.ts"
import { describeError } from "../errors/describe.ts"

/** One training phase: its rows and loop settings. */
export interface BridgePhase {
  readonly name: "mapping" | "task"
  readonly train: ReadonlyArray<BridgeText>
  readonly val: ReadonlyArray<BridgeText>
  /** Use at most this many training / validation rows (0 = all). */
  readonly maxTrainRows: number
  readonly valMaxRows: number
  readonly settings: Omit<LoopSettings, "examples">
}

/** The fields of a peer's params this run needs. */
export interface BridgeRunParams {
  readonly enabled: boolean
  readonly seed: number
  readonly lr: number
  readonly weightDecay: number
  readonly maxSeqLen: number
  readonly appendEos: boolean
  readonly instruction: InstructionSource
  readonly encoderMaxChars: number
  readonly encoderMaxTokens: number
  readonly encoderBatch: number
}

export interface BridgeRunOptions {
  /** Stop with a checkpoint after this many optimizer steps of this phase, as a crash would (tests of resume). */
  readonly haltAfter?: { readonly phase: BridgePhase["name"]; readonly steps: number }
  /** Tests only: pair every example with another example's encoder states (the shuffled-encoder control). */
  readonly shuffleStates?: boolean
}

/** The texts the stage needs, read once the peer is known to be enabled (so a disabled peer reads nothing). */
export type PhasesOf = (reserved: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<BridgePhase>, StageError>

const stepsRow = (phase: string, r: MetricsRow): Record<string, Cell> => ({
  phase,
  ...Object.fromEntries(BRIDGE_METRICS_COLUMNS.slice(1).map((c) => [c.name, r[c.name] ?? null]))
})

export const runBridgeStage = (
  stage: BridgeKind,
  ctx: StageContext<BridgeRunParams>,
  phasesOf: PhasesOf,
  options?: BridgeRunOptions
): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const outDir = ctx.outputs[stage]
    const metricsFile = ctx.outputs[`${stage}.metrics`]
    const writeDoc = (doc: BridgeDoc) =>
      Effect.gen(function*() {
        yield* Effect.try({
          try: () => fs.mkdirSync(outDir, { recursive: true }),
          catch: (cause) => new StageError({ stage, message: `cannot create ${outDir}: ${String(cause)}`, file: outDir, cause })
        })
        yield* writeJsonDoc(BridgeDoc, path.join(outDir, BRIDGE_CONFIG), doc).pipe(asStageError(stage))
      })
    if (!p.enabled) {
      yield* writeDoc({ format: "llink-bridge", version: 1, kind: stage, enabled: false, trained: null })
      const writer = yield* openTableWriter(metricsFile, BRIDGE_METRICS_COLUMNS).pipe(asStageError(stage))
      yield* writer.close.pipe(asStageError(stage))
      ctx.log(`switched off (not in baselines)`)
      return { rows: { [`${stage}.metrics`]: 0 }, metrics: { enabled: false } }
    }
    const backend = (yield* startBackend(stage)).tfBackend
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(stage))
    const doc = models.doc
    const addedTokens = [...doc.addedTokens]
    const decTok = yield* loadTokenizer(models.decoderDir, { addedTokens }).pipe(asStageError(stage))
    const encTok = yield* loadTokenizer(models.encoderDir).pipe(asStageError(stage))
    const padId = decTok.padId ?? decTok.eosId ?? 0
    const cut = { maxChars: p.encoderMaxChars, maxTokens: p.encoderMaxTokens }
    const phases = yield* phasesOf(addedTokens)

    // ---- tokens, then the frozen encoder's states of every example (the encoder is released before training)
    const tokenised = phases.map((ph) => ({ phase: ph, train: [] as Array<BridgeTokens>, val: [] as Array<BridgeTokens>, skipped: {} as Record<string, number> }))
    const encoded = yield* Effect.acquireUseRelease(
      loadEncoder(models.encoderDir).pipe(asStageError(stage)),
      (encoder) =>
        Effect.tryPromise({
          try: async () => {
            const eos = encTok.eosId ?? encoder.config.eos_token_id
            const settings = { maxSeqLen: p.maxSeqLen, appendEos: p.appendEos, cut }
            const out: Array<{ readonly train: Array<BridgeExample>; readonly val: Array<BridgeExample>; readonly skipped: Record<string, number> }> = []
            for (const t of tokenised) {
              const tr = encodeBridgeRows(decTok, encTok, eos, padId, t.phase.train, settings, t.phase.maxTrainRows)
              const va = encodeBridgeRows(decTok, encTok, eos, padId, t.phase.val, settings, t.phase.valMaxRows)
              const dim = encoder.config.hidden_size
              const trStates = await tokenStates(encoder, tr.examples.map((e) => e.encoderIds), p.encoderBatch)
              const vaStates = await tokenStates(encoder, va.examples.map((e) => e.encoderIds), p.encoderBatch)
              let train = withStates(tr.examples, trStates, dim)
              if (options?.shuffleStates === true && train.length > 1) {
                // rotate by one: each target sees the next example's encoder states (and its length)
                train = train.map((e, i) => {
                  const o = train[(i + 1) % train.length]
                  return { ...e, encoderIds: o.encoderIds, states: o.states, example: shiftPrompt(e, o.encoderIds.length) }
                })
              }
              out.push({ train, val: withStates(va.examples, vaStates, dim), skipped: { ...tr.skipped } })
            }
            return { sets: out, dIn: encoder.config.hidden_size }
          },
          catch: (cause) => new StageError({ stage, message: `cannot encode the training texts: ${describeError(cause)}`, cause })
        }),
      (encoder) => Effect.sync(() => disposeXlmr(encoder))
    )
    for (const [i, set] of encoded.sets.entries()) {
      if (set.train.length === 0) {
        return yield* new StageError({ stage, message: `phase ${phases[i].name}: no usable training rows (skipped: ${JSON.stringify(set.skipped)})` })
      }
    }

    const acquire = Effect.gen(function*() {
      const model = yield* loadDecoder(models.decoderDir, { addedTokens, embeddingInit: doc.embeddingInit, embeddingSeed: doc.embeddingSeed }).pipe(
        asStageError(stage)
      )
      const config: BridgeConfig = { kind: stage, dIn: encoded.dIn, dOut: model.config.hidden_size }
      const bridge = yield* Effect.try({
        try: () => initBridge(config, deriveSeed(p.seed, `${stage}.bridge`), { prefix: `${stage}${instance++}.bridge/` }),
        catch: (cause) => {
          disposeLlama(model)
          return new StageError({ stage, message: `cannot build the bridge: ${String(cause)}`, cause })
        }
      })
      return { model, bridge }
    })
    return yield* Effect.acquireUseRelease(acquire, ({ model, bridge }) =>
      Effect.gen(function*() {
        const metrics: Array<Record<string, Cell>> = []
        const steps: Record<string, number> = {}
        const summary: Record<string, unknown> = {}
        for (const [i, ph] of phases.entries()) {
          const set = encoded.sets[i]
          const halt = options?.haltAfter?.phase === ph.name ? options.haltAfter.steps : undefined
          const result = yield* trainBridge({
            stage,
            model,
            bridge,
            train: set.train,
            val: set.val,
            padId,
            settings: { ...ph.settings, examples: set.train.length },
            lr: p.lr,
            weightDecay: p.weightDecay,
            identity: JSON.stringify({ params: p, phase: ph.name, index: i, train: set.train.length, val: set.val.length, addedTokens, dIn: encoded.dIn }),
            checkpointRoot: path.join(ctx.scratchDir, ph.name, "checkpoints"),
            log: (m) => ctx.log(`${ph.name}: ${m}`),
            progress: (label, total) => ctx.progress(`${ph.name} ${label}`, total),
            ...(halt === undefined ? {} : { haltAfter: halt })
          })
          if (result.halted) {
            ctx.log(`halted in phase ${ph.name} after step ${result.rows.length} of ${result.totalSteps} (checkpoint saved)`)
            return { rows: {}, metrics: { halted: true, phase: ph.name, steps: result.rows.length, totalSteps: result.totalSteps } } satisfies StageOutcome
          }
          steps[ph.name] = result.totalSteps
          metrics.push(...result.rows.map((r) => stepsRow(ph.name, r)))
          const first = result.rows[0]
          const last = result.rows[result.rows.length - 1]
          summary[ph.name] = {
            steps: result.totalSteps,
            resumedFrom: result.resumedFrom,
            trainExamples: set.train.length,
            valExamples: set.val.length,
            skippedTrain: set.skipped,
            firstLoss: first["loss"],
            finalLoss: last["loss"],
            finalValLoss: last["valLoss"],
            finalValLzero: last["valLzero"]
          }
          ctx.log(
            `${ph.name}: ${result.totalSteps} steps on ${set.train.length} examples (${backend}` +
              `${result.resumedFrom > 0 ? `, resumed from ${result.resumedFrom}` : ""}): loss ${(first["loss"] as number).toFixed(4)} → ` +
              `${(last["loss"] as number).toFixed(4)}` +
              (last["valLoss"] === null ? "" : `; val ${(last["valLoss"] as number).toFixed(4)} (states zeroed ${(last["valLzero"] as number).toFixed(4)})`)
          )
        }
        yield* writeDoc({
          format: "llink-bridge",
          version: 1,
          kind: stage,
          enabled: true,
          trained: {
            bridge: { ...bridge.config },
            addedTokens,
            embeddingInit: doc.embeddingInit,
            embeddingSeed: doc.embeddingSeed,
            prompt: { instruction: p.instruction, appendEos: p.appendEos, maxSeqLen: p.maxSeqLen },
            encoder: cut,
            steps
          }
        })
        yield* saveBridge(path.join(outDir, BRIDGE_FILE), bridge).pipe(asStageError(stage))
        const writer = yield* openTableWriter(metricsFile, BRIDGE_METRICS_COLUMNS).pipe(asStageError(stage))
        yield* writer.write(metrics).pipe(asStageError(stage))
        const n = yield* writer.close.pipe(asStageError(stage))
        return { rows: { [`${stage}.metrics`]: n }, metrics: { enabled: true, ...summary } } satisfies StageOutcome
      }), ({ model, bridge }: { readonly model: LlamaModel; readonly bridge: BridgeModule }) =>
      Effect.sync(() => {
        disposeBridge(bridge)
        disposeLlama(model)
      }))
  })

let instance = 0

/** The example's decoder ids and labels rebuilt for `n` soft rows (the shuffled control changes the state count). */
const shiftPrompt = (e: BridgeTokens, n: number): BridgeTokens["example"] => {
  const old = e.encoderIds.length
  const placeholder = e.example.ids[1]
  const head = [e.example.ids[0], ...new Array<number>(n + 1).fill(placeholder)]
  const ids = [...head, ...e.example.ids.slice(old + 2)]
  const labels = [...head.map(() => -100), ...e.example.labels.slice(old + 2)]
  return { ids, labels, targetStart: e.example.targetStart - old + n, slotPositions: [] }
}
