/**
 * The `testSets` stage's work (see stage.ts). Per named test set:
 * 1. read it through the corpus readers (every `ingest` format), normalise both sides as `clean` does, cut the
 *    foreign side to `clean.maxForeignChars` code points, drop pairs with an empty side, keep the first `maxPairs`;
 * 2. count contamination against the training split (exact match after normalisation, per side);
 * 3. z_F by the frozen encoder (`encode`'s cut and mean pooling) and h_E by the frozen decoder (`teacher`'s prompt,
 *    the `<foreign_emb>` position), in batches of the two stages' sizes;
 * 4. project z_F with Stage A's projector and score it against h_E: Table 1's metrics (cosine, foreign→English,
 *    bootstrap CIs) and the bitext grid (both directions × cosine, margin, CSLS; pool curve; mistakes).
 */
import { Effect, Stream } from "effect"
import { hostMatmul } from "../../backend/host.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { describeError } from "../../errors/describe.ts"
import { readModelsRef, type ResolvedModels } from "../../artifacts/models.ts"
import { loadProjectorDir } from "../../artifacts/projector.ts"
import { planFiles, readCorpus, readerOptions, resolveCorpus } from "../../corpus/corpus.ts"
import { openMatrixWriter } from "../../formats/arrow/matrix.ts"
import { readTableAll, writeTable } from "../../formats/parquet/table.ts"
import { bitextSuite } from "../../metrics/bitextSuite.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"
import { projectRows } from "../../metrics/projectorRetrieval.ts"
import { goldRanks, withIntervals } from "../../metrics/retrieval.ts"
import { disposeLlama, loadDecoder, promptEndStates } from "../../models/llama.ts"
import * as Projector from "../../models/projector.ts"
import { loadTokenizer } from "../../models/tokenizer.ts"
import { disposeXlmr, embedTokenized, encoderTokenIds, loadEncoder } from "../../models/xlmr.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { teacherPromptIds } from "../../prompts/teacher.ts"
import { type TestSetResult, TestSetsDoc } from "../../schemas/retrieval.ts"
import { TestSetPairColumns } from "../../schemas/rows.ts"
import { normalizeText, truncateCodePoints } from "../../text/unicode.ts"
import type { TestSetSpec, TestSetsParams } from "./params.ts"

export type { TestSetsParams }

const STAGE = "testSets"

/** A test set's usable pairs, normalised and cut as `clean` cuts the training data. */
export interface TestSetPairs {
  readonly files: ReadonlyArray<string>
  readonly read: number
  readonly quarantined: number
  readonly dropped: number
  readonly english: ReadonlyArray<string>
  readonly foreign: ReadonlyArray<string>
}

/** Reads, normalises and cuts one test set (no model is needed). */
export const readTestSet = (spec: TestSetSpec, clean: TestSetsParams["clean"]): Effect.Effect<TestSetPairs, StageError> =>
  Effect.gen(function*() {
    const at = `eval.testSets "${spec.name}"`
    const plan = yield* resolveCorpus(spec.corpus).pipe(
      Effect.mapError((e) => new StageError({ stage: STAGE, message: `${at}: ${e.message}`, cause: e }))
    )
    const english: Array<string> = []
    const foreign: Array<string> = []
    let read = 0
    let quarantined = 0
    let dropped = 0
    const cap = spec.maxPairs === 0 ? Number.POSITIVE_INFINITY : spec.maxPairs
    yield* readCorpus(plan, readerOptions(spec.corpus)).pipe(
      // with maxPairs, reading stops at the batch that fills it (`read` counts what was read until then)
      Stream.takeWhile(() => english.length < cap),
      Stream.runForEach((batch) =>
        Effect.sync(() => {
          read += batch.pairs.length
          quarantined += batch.bad.length
          for (const p of batch.pairs) {
            const e = normalizeText(p.english, clean.removeZeroWidth)
            const f = truncateCodePoints(normalizeText(p.foreign, clean.removeZeroWidth), clean.maxForeignChars)
            if (e === "" || f === "") {
              dropped++
              continue
            }
            if (english.length < cap) {
              english.push(e)
              foreign.push(f)
            }
          }
        })
      ),
      Effect.mapError((e) => new StageError({ stage: STAGE, message: `${at}: ${e.message}`, cause: e }))
    )
    return { files: planFiles(plan), read, quarantined, dropped, english, foreign }
  })

/** How many of `texts` occur in `seen`. */
export const countIn = (texts: ReadonlyArray<string>, seen: ReadonlySet<string>): number => {
  let n = 0
  for (const t of texts) if (seen.has(t)) n++
  return n
}

const failed = (what: string) => (cause: unknown) => new StageError({ stage: STAGE, message: `${what}: ${describeError(cause)}`, cause })

/** Vectors of one set's rows, computed `batch` rows at a time into one [n, dim] matrix. */
const inBatches = <A>(rows: ReadonlyArray<A>, batch: number, dim: number, what: string, compute: (chunk: ReadonlyArray<A>) => Promise<Float32Array>) =>
  Effect.tryPromise({
    try: async () => {
      const out = new Float32Array(rows.length * dim)
      for (let s = 0; s < rows.length; s += batch) out.set(await compute(rows.slice(s, s + batch)), s * dim)
      return { data: out, dim }
    },
    catch: failed(what)
  })

/** z_F of each set's foreign sentences (one encoder load for all sets), as `encode` makes them. */
const encodeSets = (models: ResolvedModels, sets: ReadonlyArray<TestSetPairs>, p: TestSetsParams) =>
  Effect.gen(function*() {
    const tok = yield* loadTokenizer(models.encoderDir).pipe(asStageError(STAGE))
    return yield* Effect.acquireUseRelease(
      loadEncoder(models.encoderDir).pipe(asStageError(STAGE)),
      (model) => {
        const eos = tok.eosId ?? model.config.eos_token_id
        return Effect.forEach(sets, (set) =>
          inBatches(set.foreign.map((t) => encoderTokenIds(tok, t, eos, p.encode)), p.encode.batchSize, model.config.hidden_size, "encoding a test set", (chunk) => embedTokenized(model, chunk)))
      },
      (model) => Effect.sync(() => disposeXlmr(model))
    )
  })

/** h_E of each set's English sentences (one decoder load for all sets), as `teacher` makes them. */
const teacherSets = (models: ResolvedModels, sets: ReadonlyArray<TestSetPairs>, p: TestSetsParams) =>
  Effect.gen(function*() {
    const { doc } = models
    const tok = yield* loadTokenizer(models.decoderDir, { addedTokens: doc.addedTokens }).pipe(asStageError(STAGE))
    const feId = tok.tokenToId(doc.foreignEmbToken)
    if (feId === undefined) {
      return yield* new StageError({ stage: STAGE, message: `the decoder tokenizer has no ${doc.foreignEmbToken}`, file: models.decoderDir })
    }
    const padId = tok.eosId
    if (padId === undefined) {
      return yield* new StageError({ stage: STAGE, message: "the decoder tokenizer has no eos token to pad with", file: models.decoderDir })
    }
    return yield* Effect.acquireUseRelease(
      loadDecoder(models.decoderDir, { addedTokens: doc.addedTokens, embeddingInit: doc.embeddingInit, embeddingSeed: doc.embeddingSeed }).pipe(
        asStageError(STAGE)
      ),
      (model) =>
        Effect.forEach(sets, (set) =>
          inBatches(set.english.map((e) => teacherPromptIds(tok, e, feId, p.teacher)), p.teacher.batchSize, model.config.hidden_size, "the teacher pass over a test set", (chunk) => promptEndStates(model, chunk, padId))),
      (model) => Effect.sync(() => disposeLlama(model))
    )
  })

/** Writes every set's pairs and their z_F / h_E rows (in set order) for `testSetsFull`. */
const publishVectors = (
  outputs: Readonly<Record<string, string>>,
  sets: ReadonlyArray<{ readonly name: string; readonly pairs: TestSetPairs }>,
  zs: ReadonlyArray<{ readonly data: Float32Array; readonly dim: number }>,
  hs: ReadonlyArray<{ readonly data: Float32Array; readonly dim: number }>
) =>
  Effect.gen(function*() {
    const rows = sets.flatMap(({ name, pairs }) => pairs.english.map((english, row) => ({ set: name, row, english, foreign: pairs.foreign[row] })))
    yield* writeTable(outputs["testSets.pairs"], TestSetPairColumns, Stream.fromIterable(rows))
    for (const [name, parts] of [["zF.testSets", zs], ["hE.testSets", hs]] as const) {
      const dim = parts[0]?.dim ?? 1
      const w = yield* openMatrixWriter(outputs[name], dim)
      for (const m of parts) yield* w.write({ rows: m.data.length / dim, dim, data: m.data })
      yield* w.close
    }
  }).pipe(asStageError(STAGE))

export const runTestSets = (ctx: StageContext<TestSetsParams>): Effect.Effect<StageOutcome, StageError, TensorBackend> =>
  Effect.gen(function*() {
    const p = ctx.params
    const bootstrap = bootstrapSettings(p.bootstrap, "query")
    if (p.testSets.length === 0) {
      yield* writeJsonDoc(TestSetsDoc, ctx.outputs["retrieval.testSets"], { bootstrap, sets: [] }).pipe(asStageError(STAGE))
      yield* publishVectors(ctx.outputs, [], [], [])
      ctx.log("no test sets configured (eval.testSets)")
      return { rows: {}, metrics: { sets: 0 } }
    }
    const read: Array<TestSetPairs> = []
    for (const spec of p.testSets) {
      const set = yield* readTestSet(spec, p.clean)
      if (set.english.length < 2) {
        return yield* new StageError({
          stage: STAGE,
          message: `eval.testSets "${spec.name}": ${set.english.length} usable pairs (read ${set.read}, quarantined ${set.quarantined}, dropped ${set.dropped}); retrieval needs at least 2`,
          file: set.files[0]
        })
      }
      read.push(set)
    }
    const train = yield* readTableAll(ctx.inputs["train"], { columns: ["english", "foreign"] }).pipe(asStageError(STAGE))
    const trainEnglish = new Set(train.map((r) => String(r["english"])))
    const trainForeign = new Set(train.map((r) => String(r["foreign"])))
    const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
    const started = yield* startBackend(STAGE)
    const { matmul } = hostMatmul(started)
    const { config, host } = yield* loadProjectorDir(ctx.inputs["projector"]).pipe(asStageError(STAGE))
    const progress = ctx.progress("test sets", read.length * 2)
    const zs = yield* encodeSets(models, read, p)
    progress.advance(read.length)
    const hs = yield* teacherSets(models, read, p)
    progress.advance(read.length)
    progress.done()
    const zDim = zs[0].dim
    const d = hs[0].dim
    if (zDim !== config.dIn || d !== config.dOut) {
      return yield* new StageError({
        stage: STAGE,
        message: `the projector maps ${config.dIn} → ${config.dOut}, but the encoder's width is ${zDim} and the decoder's ${d}`,
        file: ctx.inputs["projector"]
      })
    }
    // g(z_F) of every set, one projector for all
    const allProjected = yield* Effect.acquireUseRelease(
      Effect.try({ try: () => Projector.fromHost(config, host, { trainable: false }), catch: failed("cannot build the projector") }),
      (proj) =>
        Effect.forEach(zs, (z) => {
          const rows = z.data.length / zDim
          return Effect.tryPromise({ try: () => projectRows(proj, { rows, dim: zDim, data: z.data }, rows), catch: failed("projecting a test set") })
        }),
      (proj) => Effect.sync(() => Projector.dispose(proj))
    )
    const results: Array<TestSetResult> = []
    const f = (x: number) => x.toFixed(3)
    for (let s = 0; s < read.length; s++) {
      const set = read[s]
      const spec = p.testSets[s]
      const n = set.english.length
      const projected = allProjected[s]
      const h = hs[s].data
      const ranks = goldRanks(projected, h, d, { matmul, normalize: true })
      const stageA = withIntervals(ranks, n, p.bootstrap, `testSet:${spec.name}`)
      const suite = bitextSuite("stageA", projected, h, d, n, set.english, { pools: p.pools, bootstrap: p.bootstrap, matmul })
      const contaminatedEnglish = countIn(set.english, trainEnglish)
      const contaminatedForeign = countIn(set.foreign, trainForeign)
      results.push({
        name: spec.name,
        files: [...set.files],
        read: set.read,
        quarantined: set.quarantined,
        dropped: set.dropped,
        n,
        contaminatedEnglish,
        contaminatedForeign,
        stageA,
        ranks: Array.from(ranks),
        suite
      })
      const ci = stageA.r1CI === null ? "" : ` [${f(stageA.r1CI.lo)}, ${f(stageA.r1CI.hi)}]`
      ctx.log(
        `test set ${spec.name}: n = ${n} (read ${set.read}, quarantined ${set.quarantined}, dropped ${set.dropped}); ` +
          `Stage A R@1 ${f(stageA.r1)}${ci} = ${(stageA.r1 / stageA.chanceR1).toFixed(1)}× chance ${stageA.chanceR1.toFixed(4)}, MRR ${f(stageA.mrr)}; ` +
          `in the training split: ${contaminatedEnglish} English, ${contaminatedForeign} foreign`
      )
    }
    yield* writeJsonDoc(TestSetsDoc, ctx.outputs["retrieval.testSets"], { bootstrap, sets: results }).pipe(asStageError(STAGE))
    yield* publishVectors(ctx.outputs, p.testSets.map((spec, i) => ({ name: spec.name, pairs: read[i] })), zs, hs)
    return { rows: {}, metrics: { sets: results.length } }
  })
