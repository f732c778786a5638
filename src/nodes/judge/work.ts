/** The `judge` stage's work (see stage.ts): both orders of every comparison, aggregates, numeric fidelity. */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Option, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import { consecutiveRanges, onCluster } from "../../pipeline/shards.ts"
import type { FinishedShard, ShardContext, ShardOutcome, ShardRange, StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { writeTable } from "../../formats/parquet/table.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import {
  aggregate,
  type Bucket,
  combineOrders,
  type JudgeAggregate,
  type JudgeOrder,
  offlineJudge,
  type OrderJudgement,
  outcomeOf,
  type PairItem,
  type PairOutcome,
  pairMessages,
  parseVerdict
} from "../../metrics/judge.ts"
import { aggregateNumericFidelity, numericFidelity } from "../../metrics/numeric.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { bootstrapSettings } from "../../metrics/bootstrap.ts"
import type { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { JUDGED_BASELINES, JudgeDoc, LLINK_COMPARISONS, type LlinkComparison, peerComparison, systemsOf } from "../../schemas/judge.ts"
import type { JudgeParams } from "./params.ts"
import { answerOf, type GenerationRow, JudgePairColumns, type JudgePairRow, PEERS, readGenerations } from "../../schemas/sft.ts"
import { type EndpointError, type EndpointStats, LlmEndpoint, type LlmEndpointShape } from "../../services/endpoint.ts"
import { endpointStageError, shardedStats, withStageEndpoint } from "../../services/stageEndpoint.ts"

const STAGE = "judge"

export type { JudgeParams }

export const COMPARISONS = Object.keys(LLINK_COMPARISONS) as ReadonlyArray<LlinkComparison>
/** A comparison's name: one of LLINK's (`vsBase`, …) or `<a>~<b>` between two baselines (see schemas/judge.ts). */
export type Comparison = string
/** The peer comparisons, judged only on examples where the peer answered (it is on). */
const PEER_COMPARISONS: ReadonlyArray<LlinkComparison> = ["vsLangbridge", "vsMindmerger"]

/** The two answers a comparison puts side by side (null when one of the systems did not answer: a peer that is off). */
const answersOf = (row: GenerationRow, comparison: Comparison): readonly [string, string] | null => {
  const systems = systemsOf(comparison)
  if (systems === undefined) return null
  const a = answerOf(row, systems[0])
  const b = answerOf(row, systems[1])
  return a === null || b === null ? null : [a, b]
}

/** One judged comparison of one example. */
export interface JudgedPair {
  readonly example: GenerationRow
  readonly comparison: Comparison
  readonly outcome: PairOutcome
}

/** The `judge` artifact. */
export type JudgeSummary = JudgeDoc

/** The pair item of one comparison (ids are the example id; the judge never sees system names). */
export const pairItemOf = (row: GenerationRow, comparison: Comparison, showSource: boolean): PairItem => {
  const [system, baseline] = answersOf(row, comparison) ?? [row.llink, ""]
  return {
    id: String(row.id),
    bucket: row.bucket,
    instruction: row.instruction,
    reference: row.reference,
    ...(showSource ? { source: row.foreign } : {}),
    system,
    baseline
  }
}

/** Judges one order with the endpoint, re-sampling an unparseable answer up to `invalidRetries` times. */
const judgeOrder = (
  endpoint: LlmEndpointShape,
  item: PairItem,
  order: JudgeOrder,
  judge: JudgeParams["judge"]
): Effect.Effect<OrderJudgement, StageError> =>
  Effect.gen(function*() {
    const reasons: Array<string> = []
    let raw: string | undefined
    for (let attempt = 0; attempt <= judge.invalidRetries; attempt++) {
      const answer = yield* endpoint.chat({
        messages: pairMessages(item, order),
        maxTokens: judge.maxTokens,
        // The first answer uses the endpoint's own sampling (default temperature 0: a deterministic judge).
        ...(attempt === 0 ? {} : { variant: attempt, temperature: judge.retryTemperature, seed: (judge.endpoint.seed ?? 0) + attempt })
      }).pipe(
        Effect.map((r) => ({ _tag: "answer" as const, content: r.content })),
        Effect.catch((e: EndpointError) =>
          e.kind === "client" ? Effect.succeed({ _tag: "refused" as const, reason: e.message }) : Effect.fail(endpointStageError(STAGE)(e))
        )
      )
      if (answer._tag === "refused") {
        reasons.push(`endpoint refused the request: ${answer.reason}`)
        break
      }
      raw = answer.content
      const verdict = parseVerdict(answer.content)
      if (verdict._tag === "valid") return { order, verdict, outcome: outcomeOf(verdict.verdict, order), raw }
      reasons.push(verdict.reason)
    }
    return { order, verdict: { _tag: "invalid", reason: reasons.join("; ") }, outcome: null, raw }
  })

/** Judges one pair in both orders with the endpoint. */
export const judgePairWithRetries = (
  endpoint: LlmEndpointShape,
  item: PairItem,
  judge: JudgeParams["judge"]
): Effect.Effect<PairOutcome, StageError> =>
  Effect.map(
    Effect.all([judgeOrder(endpoint, item, "system_first", judge), judgeOrder(endpoint, item, "baseline_first", judge)], {
      concurrency: 2
    }),
    ([first, second]) => combineOrders(item, first, second)
  )

/** Per bucket and comparison, the aggregates of the judged pairs (only buckets that occur). Each scope's bootstrap
 *  draws from its own stream (`<comparison>:<bucket or all>`). */
export const summarizePairs = (pairs: ReadonlyArray<JudgedPair>, bootstrap?: BootstrapConfig): {
  readonly byBucket: JudgeSummary["byBucket"]
  readonly overall: JudgeSummary["overall"]
} => {
  const of = (comparison: Comparison, bucket?: Bucket) =>
    aggregate(
      pairs.filter((p) => p.comparison === comparison && (bucket === undefined || p.example.bucket === bucket)).map((p) => p.outcome),
      { ...(bootstrap === undefined ? {} : { bootstrap }), label: `${comparison}:${bucket ?? "all"}` }
    )
  const byBucket: Partial<Record<Bucket, JudgeDoc["overall"]>> = {}
  const present = PEER_COMPARISONS.filter((c) => pairs.some((p) => p.comparison === c))
  const all = (bucket?: Bucket) => ({
    vsBase: of("vsBase", bucket),
    vsFinetune: of("vsFinetune", bucket),
    ...Object.fromEntries(present.map((c) => [c, of(c, bucket)]))
  })
  for (const bucket of ["content", "qa"] as const) {
    if (pairs.some((p) => p.example.bucket === bucket)) byBucket[bucket] = all(bucket)
  }
  return { byBucket, overall: all() }
}

/** Numeric fidelity of each system against the human reference. */
export const numericBySystem = (rows: ReadonlyArray<GenerationRow>): JudgeDoc["numericFidelity"] => {
  const peers = PEERS.filter((name) => rows.length > 0 && rows.every((r) => r[name] !== null))
  return {
    llink: aggregateNumericFidelity(rows.map((r) => numericFidelity(r.reference, r.llink))),
    base: aggregateNumericFidelity(rows.map((r) => numericFidelity(r.reference, r.base))),
    finetune: aggregateNumericFidelity(rows.map((r) => numericFidelity(r.reference, r.finetune))),
    ...Object.fromEntries(peers.map((name) => [name, aggregateNumericFidelity(rows.map((r) => numericFidelity(r.reference, r[name] ?? "")))]))
  }
}

const verdictText = (j: OrderJudgement): string => (j.verdict._tag === "valid" ? j.verdict.verdict : "invalid")

const pairRow = (p: JudgedPair): JudgePairRow => ({
  id: p.example.id,
  bucket: p.example.bucket,
  task_type: p.example.task_type,
  comparison: p.comparison,
  verdictSystemFirst: verdictText(p.outcome.orders[0]),
  verdictBaselineFirst: verdictText(p.outcome.orders[1]),
  outcomeSystemFirst: p.outcome.orders[0].outcome ?? "invalid",
  outcomeBaselineFirst: p.outcome.orders[1].outcome ?? "invalid",
  outcome: p.outcome.outcome,
  flipped: p.outcome.flipped,
  invalidReasons: p.outcome.invalidReasons.join("; "),
  offline: p.outcome.offline,
  chrfSystem: p.outcome.chrf?.system ?? null,
  chrfBaseline: p.outcome.chrf?.baseline ?? null,
  rawSystemFirst: p.outcome.orders[0].raw ?? null,
  rawBaselineFirst: p.outcome.orders[1].raw ?? null
})

/** The comparisons judged on every example: LLINK's, then (with "all") each pair of baselines. */
export const comparisonsFor = (mode: JudgeParams["judge"]["comparisons"]): ReadonlyArray<Comparison> => [
  ...COMPARISONS,
  ...(mode === "all" ? JUDGED_BASELINES.flatMap((a, i) => JUDGED_BASELINES.slice(i + 1).map((b) => peerComparison(a, b))) : [])
]

/** Every comparison of every example whose two systems answered, in the order the stage judges and writes them. */
const tasksOf = (rows: ReadonlyArray<GenerationRow>, mode: JudgeParams["judge"]["comparisons"]) => {
  const comparisons = comparisonsFor(mode)
  return rows.flatMap((example) => comparisons.filter((comparison) => answersOf(example, comparison) !== null).map((comparison) => ({ example, comparison })))
}

/** Examples per shard: `2 × concurrency` (at least 8), up to 10 comparisons × 2 orders each: small enough that the runners finish together (`src/cluster/executor.ts`). */
const shardExamples = (concurrency: number): number => Math.max(8, concurrency * 2)

/**
 * Sharding (`judge` with an endpoint): the shards are ranges of rows of the `generations` table. A shard sends the
 * requests of its examples' comparisons — the same requests, re-samples of unparseable verdicts included, as
 * `runJudge` sends for them — and so fills the shared request cache (`<cacheDir>/requests`). The merge is `runJudge`
 * itself: every request is then a cache hit, so `judge.pairs` and the aggregates are the single-process bytes
 * (the `endpoint` counters add the shards' calls to the merge's, not counting the merge's re-reads twice). Offline mode has no shards, nor has a run whose
 * caller provides the `LlmEndpoint`.
 */
export const planJudgeShards = (params: JudgeParams, inputs: Readonly<Record<string, string>>): Effect.Effect<Array<ShardRange>, StageError> =>
  Effect.gen(function*() {
    if (params.mode === "offline" || Option.isSome(yield* Effect.serviceOption(LlmEndpoint))) return []
    // in one process (no ShardExecutor) `run` does it all: shards would only add their overhead
    if (!(yield* onCluster)) return []
    const rows = yield* readGenerations(STAGE, inputs["generations"])
    const size = shardExamples(params.judge.endpoint.concurrency)
    return consecutiveRanges("generations", rows.length, size)
  })

export const runJudgeShard = (ctx: ShardContext<JudgeParams>): Effect.Effect<ShardOutcome, StageError> =>
  Effect.gen(function*() {
    const cfg = ctx.params.judge
    const rows = yield* readGenerations(STAGE, ctx.inputs["generations"])
    const tasks = tasksOf(rows.slice(ctx.range.start, ctx.range.end), cfg.comparisons)
    const bar = ctx.progress("pairs", tasks.length)
    // the request cache is `<root>/requests` (withStageEndpoint takes it from a scratch path `<root>/<stage>/<key>`)
    const { result, stats } = yield* withStageEndpoint(STAGE, cfg.endpoint, path.join(ctx.root, STAGE, "shard"), (endpoint) =>
      Effect.forEach(
        tasks,
        ({ example, comparison }) =>
          judgePairWithRetries(endpoint, pairItemOf(example, comparison, cfg.showSource), cfg).pipe(
            Effect.tap(() => Effect.sync(() => bar.advance()))
          ),
        { concurrency: Math.max(1, cfg.endpoint.concurrency) }
      ))
    bar.done()
    yield* Effect.try({
      try: () => fs.writeFileSync(path.join(ctx.outDir, "outcomes.json"), JSON.stringify(result.map((o) => o.outcome))),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot write the shard's outcomes: ${String(cause)}`, cause })
    })
    return { rows: tasks.length, metrics: { endpoint: stats } }
  })

/** The stage (`shards`: the finished shards when it is their merge, whose endpoint counters it adds). */
export const runJudge = (ctx: StageContext<JudgeParams>, shards: ReadonlyArray<FinishedShard> = []): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const params = ctx.params
    const cfg = params.judge
    const rows = yield* readGenerations(STAGE, ctx.inputs["generations"])
    const tasks = tasksOf(rows, cfg.comparisons)
    const bar = ctx.progress("pairs", tasks.length)
    const offline = params.mode === "offline"

    const judgeAll = (endpoint: LlmEndpointShape | undefined) =>
      Effect.forEach(
        tasks,
        ({ example, comparison }) => {
          const item = pairItemOf(example, comparison, cfg.showSource)
          const outcome = endpoint === undefined
            ? Effect.sync(() => offlineJudge(item, { margin: cfg.margin, floor: cfg.floor }))
            : judgePairWithRetries(endpoint, item, cfg)
          return outcome.pipe(
            Effect.map((o): JudgedPair => ({ example, comparison, outcome: o })),
            Effect.tap(() => Effect.sync(() => bar.advance()))
          )
        },
        { concurrency: offline ? 1 : Math.max(1, cfg.endpoint.concurrency) }
      )

    const { result: pairs, stats: own } = offline
      ? { result: yield* judgeAll(undefined), stats: null as EndpointStats | null }
      : yield* withStageEndpoint(STAGE, cfg.endpoint, ctx.scratchDir, (endpoint) => judgeAll(endpoint))
    const stats = own === null ? null : shardedStats(shards, own)
    bar.done()

    const { byBucket, overall } = summarizePairs(pairs, cfg.bootstrap)
    const numericFidelityByBucket: { -readonly [B in Bucket]?: JudgeDoc["numericFidelity"] } = {}
    for (const bucket of ["content", "qa"] as const) {
      const inBucket = rows.filter((r) => r.bucket === bucket)
      if (inBucket.length > 0) numericFidelityByBucket[bucket] = numericBySystem(inBucket)
    }
    const summary: JudgeSummary = {
      mode: params.mode,
      offline,
      judge: offline ? "chrF (offline)" : cfg.endpoint.model,
      margin: offline ? cfg.margin : null,
      floor: offline ? cfg.floor : null,
      examples: rows.length,
      bootstrap: bootstrapSettings(cfg.bootstrap, "prompt"),
      byBucket,
      overall,
      numericFidelity: numericBySystem(rows),
      numericFidelityByBucket,
      endpoint: stats
    }
    yield* writeJsonDoc(JudgeDoc, ctx.outputs["judge"], summary).pipe(asStageError(STAGE))
    const n = yield* writeTable(ctx.outputs["judge.pairs"], JudgePairColumns, Stream.fromIterable(pairs.map(pairRow))).pipe(
      asStageError(STAGE)
    )
    const p1 = (x: number) => (x * 100).toFixed(1)
    const pref = (a: JudgeAggregate | undefined) =>
      a?.preference == null ? "-" : `${p1(a.preference)}%${a.preferenceCI === null ? "" : ` [95% CI ${p1(a.preferenceCI.lo)}, ${p1(a.preferenceCI.hi)}]`}`
    ctx.log(
      `${offline ? "offline chrF judge" : `judge ${cfg.endpoint.model}`}: ${rows.length} examples; preference vs base ` +
        `${pref(overall.vsBase)}, vs fine-tune ${pref(overall.vsFinetune)}` +
        (overall.vsLangbridge === undefined ? "" : `, vs LangBridge ${pref(overall.vsLangbridge)}`) +
        (overall.vsMindmerger === undefined ? "" : `, vs MindMerger ${pref(overall.vsMindmerger)}`)
    )
    const brief = (a: JudgeAggregate) => ({
      wins: a.wins,
      losses: a.losses,
      ties: a.ties,
      invalid: a.invalid,
      preference: a.preference,
      preferenceCI: a.preferenceCI,
      winRate: a.winRate
    })
    return {
      rows: { "judge.pairs": n },
      metrics: {
        mode: params.mode,
        offline,
        judge: summary.judge,
        examples: rows.length,
        vsBase: brief(overall.vsBase),
        vsFinetune: brief(overall.vsFinetune),
        ...(overall.vsLangbridge === undefined ? {} : { vsLangbridge: brief(overall.vsLangbridge) }),
        ...(overall.vsMindmerger === undefined ? {} : { vsMindmerger: brief(overall.vsMindmerger) }),
        endpoint: stats
      }
    }
  })

