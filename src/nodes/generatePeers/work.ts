/**
 * The `generatePeers` stage's work: the peers' prompts and soft rows (`peerPrompt`, `peerSoftRows` in
 * src/artifacts/peers.ts) over `sft.eval` in batches of `generate.batchSize`, greedy decoding with `generate`'s
 * settings and each peer's pad id. Each finished batch goes to the scratch folder (`batch-000012.json`,
 * atomically), so an interrupted run resumes at the first missing batch.
 */
import { Effect, Stream } from "effect"
import { findBatch, saveBatch } from "../../artifacts/batchFiles.ts"
import { readModelsRef } from "../../artifacts/models.ts"
import { generatePeers, loadPeerSystems, type PeerSystems } from "../../artifacts/peers.ts"
import { startBackend, type TensorBackend } from "../../backend/tensorBackend.ts"
import { describeError } from "../../errors/describe.ts"
import { writeTable } from "../../formats/parquet/table.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { PeerGenerationColumns, type PeerGenerationRow, PeerGenerationTable, readSftRows } from "../../schemas/sft.ts"
import type { GeneratePeersParams } from "./params.ts"

const STAGE = "generatePeers"

export const runGeneratePeers = Effect.fn("GeneratePeers.run")(function*(
  ctx: StageContext<GeneratePeersParams>
): Effect.fn.Return<StageOutcome, StageError, TensorBackend> {
  const p = ctx.params
  const all = yield* readSftRows(STAGE, ctx.inputs["sft.eval"])
  const examples = p.limit === 0 ? all : all.slice(0, p.limit)
  if (examples.length === 0) return yield* new StageError({ stage: STAGE, message: "sft.eval has no rows", file: ctx.inputs["sft.eval"] })
  const nBatches = Math.ceil(examples.length / p.batchSize)
  const idsOf = (b: number) => examples.slice(b * p.batchSize, (b + 1) * p.batchSize).map((_, i) => b * p.batchSize + i)
  const found = new Map<number, ReadonlyArray<PeerGenerationRow>>()
  const find = findBatch(ctx.scratchDir, PeerGenerationTable.read, ctx.log)
  const save = saveBatch(STAGE, ctx.scratchDir)
  for (let b = 0; b < nBatches; b++) {
    const rows = find(b, idsOf(b))
    if (rows !== undefined) found.set(b, rows)
  }
  const bar = ctx.progress("examples", examples.length)
  let computed = 0
  let backend = "none"
  const answer = (peers: PeerSystems | undefined) =>
    Effect.gen(function*() {
      const out: Array<PeerGenerationRow> = []
      for (let b = 0; b < nBatches; b++) {
        const ids = idsOf(b)
        const done = found.get(b)
        if (done !== undefined || peers === undefined) {
          out.push(...(done ?? []))
        } else {
          const batch = ids.map((i) => examples[i])
          const answers = yield* Effect.tryPromise({
            try: () => generatePeers(peers, batch, { maxNewTokens: p.maxNewTokens, noRepeatNgramSize: p.noRepeatNgram }, p.batchSize, p.copyNumbers),
            catch: (cause) => new StageError({ stage: STAGE, message: `batch ${b} (examples ${ids[0]}–${ids[ids.length - 1]}): ${describeError(cause)}`, cause })
          })
          const rows = answers.map((a, i) => ({ id: ids[i], ...a }))
          yield* save(b, ids, rows)
          computed++
          out.push(...rows)
          yield* Effect.yieldNow
        }
        bar.advance(ids.length)
      }
      return out
    })
  const rows = found.size === nBatches
    ? yield* answer(undefined)
    : yield* Effect.gen(function*() {
      backend = (yield* startBackend(STAGE)).tfBackend
      const models = yield* readModelsRef(ctx.inputs["models"]).pipe(asStageError(STAGE))
      return yield* Effect.acquireUseRelease(loadPeerSystems(STAGE, ctx.inputs, models), answer, (peers) => Effect.sync(() => peers.dispose()))
    })
  bar.done()
  const n = yield* writeTable(ctx.outputs["generations.peers"], PeerGenerationColumns, Stream.fromIterable(rows.map((r) => ({ ...r })))).pipe(asStageError(STAGE))
  const on = (["langbridge", "mindmerger"] as const).filter((k) => rows.some((r) => r[k] !== null))
  ctx.log(`${n} examples × ${on.length} peer${on.length === 1 ? "" : "s"} (${on.join(", ") || "none on"}; ${backend}; ${computed} of ${nBatches} batches computed, the rest resumed)`)
  return { rows: { "generations.peers": n }, metrics: { examples: n, peers: on.length, batches: nBatches, computedBatches: computed, backend } }
})
