/** The `generations` stage's work (see stage.ts): a join on `id`, in `generate`'s row order. */
import { Effect, Stream } from "effect"
import { writeTable } from "../../formats/parquet/table.ts"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { GenerationColumns, type GenerationRow, readMainGenerations, readPeerGenerations } from "../../schemas/sft.ts"
import type { GenerationsParams } from "./params.ts"

const STAGE = "generations"

export const runGenerations = Effect.fn("Generations.run")(function*(
  ctx: StageContext<GenerationsParams>
): Effect.fn.Return<StageOutcome, StageError> {
  const mainFile = ctx.inputs["generations.main"]
  const peersFile = ctx.inputs["generations.peers"]
  const main = yield* readMainGenerations(STAGE, mainFile)
  const peers = yield* readPeerGenerations(STAGE, peersFile)
  const byId = new Map(peers.map((r) => [r.id, r]))
  if (byId.size !== peers.length) return yield* new StageError({ stage: STAGE, message: "generations.peers holds an id twice", file: peersFile })
  const rows: Array<GenerationRow> = []
  for (const m of main) {
    const p = byId.get(m.id)
    if (p === undefined) return yield* new StageError({ stage: STAGE, message: `example ${m.id} of generations.main has no row in generations.peers`, file: peersFile })
    rows.push({ ...m, langbridge: p.langbridge, mindmerger: p.mindmerger, langbridgePromptTokens: p.langbridgePromptTokens, mindmergerPromptTokens: p.mindmergerPromptTokens })
  }
  if (rows.length !== peers.length) {
    return yield* new StageError({ stage: STAGE, message: `generations.peers has ${peers.length} rows, generations.main ${rows.length}`, file: peersFile })
  }
  const n = yield* writeTable(ctx.outputs["generations"], GenerationColumns, Stream.fromIterable(rows.map((r) => ({ ...r })))).pipe(asStageError(STAGE))
  const mean = (xs: ReadonlyArray<number | null>) => (xs.some((x) => x === null) || xs.length === 0 ? null : xs.reduce<number>((a, x) => a + (x ?? 0), 0) / xs.length)
  const meanPromptTokens = {
    llink: mean(rows.map((r) => r.llinkPromptTokens)),
    base: mean(rows.map((r) => r.basePromptTokens)),
    finetune: mean(rows.map((r) => r.finetunePromptTokens)),
    langbridge: mean(rows.map((r) => r.langbridgePromptTokens)),
    mindmerger: mean(rows.map((r) => r.mindmergerPromptTokens))
  }
  ctx.log(`${n} examples, every system's answer`)
  return { rows: { generations: n }, metrics: { examples: n, meanPromptTokens } }
})
