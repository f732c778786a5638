/** The `synthesize` stage's work (see stage.ts): candidates, requests (or offline templates), filters, quarantine. */
import { Effect, Option, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import * as fs from "node:fs"
import * as path from "node:path"
import { consecutiveRanges, onCluster } from "../../pipeline/shards.ts"
import type { FinishedShard, ShardContext, ShardOutcome, ShardRange, StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { readTableAll, type Row, writeTable } from "../../formats/parquet/table.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { deriveSeed, makeRng } from "../../models/rng.ts"
import type { SynthesizeParams } from "./params.ts"
import { SftColumns, type SftRow, SynthQuarantineColumns, type SynthQuarantineRow } from "../../schemas/sft.ts"
import { type EndpointError, type EndpointStats, LlmEndpoint, type LlmEndpointShape } from "../../services/endpoint.ts"
import { endpointStageError, shardedStats, withStageEndpoint } from "../../services/stageEndpoint.ts"
import {
  buildSynthesisMessages,
  checkRow,
  offlineRow,
  parseSynthesisReply,
  rowFromReply,
  stageBInput,
  type StageBRow,
  type TaskType
} from "../../prompts/synthesis.ts"

const STAGE = "synthesize"

export type { SynthesizeParams }
type Synth = SynthesizeParams["synth"]

type Split = "train" | "eval"

/** A pair offered to the synthesizer with a task type. */
interface Candidate {
  readonly split: Split
  /** Index into the `train` or `eval` table. */
  readonly row: number
  readonly id: number
  readonly english: string
  readonly foreign: string
  readonly taskType: TaskType
}

type Outcome =
  | { readonly _tag: "row"; readonly row: SftRow; readonly attempts: number }
  | { readonly _tag: "quarantine"; readonly reason: string; readonly raw: string; readonly attempts: number }

interface Pair {
  readonly id: number
  readonly english: string
  readonly foreign: string
}

const bucketOf = (taskType: string): "content" | "qa" => (taskType === "qa_about_text" ? "qa" : "content")

/** The short code of a reason (text before the first ":" or "("), for the metrics' counts. */
export const reasonCode = (reason: string): string => {
  const last = reason.split(/;\s*attempt \d+:\s*/).pop() ?? reason
  const text = last.replace(/^attempt \d+:\s*/, "")
  return text.split(/[:(]/)[0].trim()
}

/** Fisher–Yates over 0..n-1 with a seeded generator. */
export const seededOrder = (n: number, seed: number, label: string): Int32Array => {
  const rng = makeRng(deriveSeed(seed, label))
  const order = Int32Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1))
    const t = order[i]
    order[i] = order[j]
    order[j] = t
  }
  return order
}

/** The paper's length filter (and a non-empty English side), checked before any request, via `checkRow`. */
const prefilter = (pair: Pair, synth: Synth): string | null => {
  if (pair.english.trim() === "") return "empty English reference"
  const probe: StageBRow = {
    task_type: "translate_to_english",
    input: stageBInput("x"),
    output: "x",
    foreign_raw: pair.foreign,
    english_ref: pair.english,
    origin: "offline"
  }
  const check = checkRow(probe, { minForeignChars: synth.minForeignChars, maxForeignChars: synth.maxForeignChars })
  return check.ok ? null : check.reason
}

const toSftRow = (c: Candidate, row: StageBRow, instruction: string): SftRow => ({
  id: c.id,
  row: c.row,
  task_type: row.task_type,
  bucket: bucketOf(row.task_type),
  instruction,
  input: row.input,
  output: row.output,
  foreign_raw: row.foreign_raw,
  english_ref: row.english_ref,
  offline: row.origin === "offline"
})

/** The instruction inside a Stage B prompt (`Instruction: … \nForeign:`). */
const instructionOf = (input: string): string => {
  const m = /^Instruction: ([\s\S]*?)\nForeign: /.exec(input)
  return m === null ? input : m[1]
}

const offlineOutcome = (c: Candidate, synth: Synth): Outcome => {
  const row = offlineRow(c.taskType, c.foreign, c.english)
  const check = checkRow(row, { minForeignChars: synth.minForeignChars, maxForeignChars: synth.maxForeignChars })
  return check.ok
    ? { _tag: "row", row: toSftRow(c, row, instructionOf(row.input)), attempts: 1 }
    : { _tag: "quarantine", reason: check.reason, raw: "", attempts: 1 }
}

/** Statuses of a refused request (a 4xx the endpoint does not retry): the pair is quarantined, not the stage failed. */
const isRefusal = (e: EndpointError): boolean => e.kind === "client"

const endpointOutcome = (
  endpoint: LlmEndpointShape,
  c: Candidate,
  params: SynthesizeParams
): Effect.Effect<Outcome, StageError> =>
  Effect.gen(function*() {
    const synth = params.synth
    const messages = buildSynthesisMessages({ taskType: c.taskType, foreign: c.foreign, english: c.english, language: synth.language })
    const reasons: Array<string> = []
    let raw = ""
    const baseSeed = synth.endpoint.seed ?? synth.seed
    for (let attempt = 0; attempt <= synth.retries; attempt++) {
      const answer = yield* endpoint.chat({
        messages,
        ...(synth.jsonMode ? { responseFormat: "json_object" as const } : {}),
        ...(attempt === 0 ? {} : { variant: attempt, temperature: synth.retryTemperature, seed: baseSeed + attempt })
      }).pipe(
        Effect.map((r) => ({ _tag: "answer" as const, content: r.content })),
        Effect.catch((e: EndpointError) =>
          isRefusal(e) ? Effect.succeed({ _tag: "refused" as const, reason: e.message }) : Effect.fail(endpointStageError(STAGE)(e))
        )
      )
      if (answer._tag === "refused") {
        reasons.push(`attempt ${attempt + 1}: endpoint refused the request: ${answer.reason}`)
        return { _tag: "quarantine", reason: reasons.join("; "), raw, attempts: attempt + 1 } satisfies Outcome
      }
      raw = answer.content
      const parsed = parseSynthesisReply(c.taskType, answer.content, c.english)
      if (parsed._tag === "ok") {
        const row = rowFromReply(c.taskType, c.foreign, c.english, parsed)
        const check = checkRow(row, { minForeignChars: synth.minForeignChars, maxForeignChars: synth.maxForeignChars })
        if (check.ok) return { _tag: "row", row: toSftRow(c, row, parsed.instruction), attempts: attempt + 1 } satisfies Outcome
        reasons.push(`attempt ${attempt + 1}: ${check.reason}`)
      } else {
        reasons.push(`attempt ${attempt + 1}: ${parsed.reason}`)
      }
    }
    return { _tag: "quarantine", reason: reasons.join("; "), raw, attempts: synth.retries + 1 } satisfies Outcome
  })

const readPairs = (file: string): Effect.Effect<Array<Pair>, StageError> =>
  Effect.gen(function*() {
    const rows = yield* readTableAll(file, { columns: ["id", "english", "foreign"] }).pipe(asStageError(STAGE))
    const pairs: Array<Pair> = []
    for (let i = 0; i < rows.length; i++) {
      const { id, english, foreign } = rows[i]
      if (typeof id !== "number" || typeof english !== "string" || typeof foreign !== "string") {
        return yield* new StageError({ stage: STAGE, message: `row ${i}: expected id number, english and foreign strings`, file })
      }
      pairs.push({ id, english, foreign })
    }
    return pairs
  })

const quarantineRow = (c: Pick<Candidate, "split" | "row" | "id" | "taskType">, reason: string, raw: string, attempts: number): SynthQuarantineRow => ({
  split: c.split,
  row: c.row,
  id: c.id,
  task_type: c.taskType,
  reason,
  raw,
  attempts
})

const count = (map: Record<string, number>, key: string) => {
  map[key] = (map[key] ?? 0) + 1
}

/** The stage (`shards`: the finished shards when it is their merge, whose endpoint counters it adds). */
export const runSynthesize = (ctx: StageContext<SynthesizeParams>, shards: ReadonlyArray<FinishedShard> = []): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const params = ctx.params
    const synth = params.synth
    const taskTypes = [...new Set(synth.taskTypes)]
    const contentTypes = taskTypes.filter((t) => bucketOf(t) === "content")
    const hasQa = taskTypes.includes("qa_about_text")

    const train = yield* readPairs(ctx.inputs["train"])
    const evalPairs = yield* readPairs(ctx.inputs["eval"])

    const quarantine: Array<SynthQuarantineRow> = []
    const filtered: Record<string, number> = {}
    const quarantinedByReason: Record<string, number> = {}
    const attemptsHistogram: Record<string, number> = {}
    let visited = 0

    /** Runs one chunk of candidates, in order. */
    const runChunk = (endpoint: LlmEndpointShape | undefined, chunk: ReadonlyArray<Candidate>) =>
      endpoint === undefined
        ? Effect.succeed(chunk.map((c) => offlineOutcome(c, synth)))
        : Effect.forEach(chunk, (c) => endpointOutcome(endpoint, c, params), { concurrency: Math.max(1, synth.endpoint.concurrency * 2) })

    const chunkMax = (endpoint: LlmEndpointShape | undefined) => (endpoint === undefined ? 4096 : Math.max(16, synth.endpoint.concurrency * 16))

    const record = (c: Candidate, outcome: Outcome) => {
      count(attemptsHistogram, String(outcome.attempts))
      if (outcome._tag === "quarantine") {
        quarantine.push(quarantineRow(c, outcome.reason, outcome.raw, outcome.attempts))
        count(quarantinedByReason, reasonCode(outcome.reason))
      }
    }

    const work = (endpoint: LlmEndpointShape | undefined) =>
      Effect.gen(function*() {
        const wanted = synth.val + synth.train + synth.evalPerBucket * ((contentTypes.length > 0 ? 1 : 0) + (hasQa ? 1 : 0))
        const bar = ctx.progress("rows", wanted)

        // Training and validation rows.
        const val: Array<SftRow> = []
        const trainRows: Array<SftRow> = []
        const trainOrder = seededOrder(train.length, synth.seed, "synthesize/train")
        let next = 0
        let assigned = 0
        while (val.length + trainRows.length < synth.val + synth.train && next < trainOrder.length) {
          const need = synth.val + synth.train - val.length - trainRows.length
          const chunk: Array<Candidate> = []
          while (chunk.length < Math.min(need, chunkMax(endpoint)) && next < trainOrder.length) {
            const row = trainOrder[next++]
            const pair = train[row]
            visited++
            const bad = prefilter(pair, synth)
            const taskType = taskTypes[assigned % taskTypes.length]
            if (bad !== null) {
              count(filtered, reasonCode(bad))
              quarantine.push(quarantineRow({ split: "train", row, id: pair.id, taskType }, bad, "", 0))
              continue
            }
            assigned++
            chunk.push({ split: "train", row, id: pair.id, english: pair.english, foreign: pair.foreign, taskType })
          }
          const outcomes = yield* runChunk(endpoint, chunk)
          for (let i = 0; i < chunk.length; i++) {
            const o = outcomes[i]
            record(chunk[i], o)
            if (o._tag !== "row") continue
            if (val.length < synth.val) val.push(o.row)
            else if (trainRows.length < synth.train) trainRows.push(o.row)
            else continue
            bar.advance()
          }
        }

        // Evaluation rows: pass 1 alternates the buckets over distinct pairs, pass 2 offers each pair to the other one.
        const byBucket: Record<"content" | "qa", Array<SftRow>> = { content: [], qa: [] }
        const quota = { content: contentTypes.length > 0 ? synth.evalPerBucket : 0, qa: hasQa ? synth.evalPerBucket : 0 }
        const evalOrder = seededOrder(evalPairs.length, synth.seed, "synthesize/eval")
        const both = quota.content > 0 && quota.qa > 0
        const slots: Array<{ readonly row: number; readonly bucket: "content" | "qa" }> = []
        for (let pass = 0; pass < (both ? 2 : 1); pass++) {
          evalOrder.forEach((row, i) => {
            const first: "content" | "qa" = !both ? (quota.qa > 0 ? "qa" : "content") : i % 2 === 0 ? "qa" : "content"
            slots.push({ row, bucket: pass === 0 ? first : first === "qa" ? "content" : "qa" })
          })
        }
        let contentAssigned = 0
        let slot = 0
        const rejected = new Set<number>()
        const missing = () => Math.max(0, quota.content - byBucket.content.length) + Math.max(0, quota.qa - byBucket.qa.length)
        while (missing() > 0 && slot < slots.length) {
          const chunk: Array<Candidate> = []
          const planned = { content: byBucket.content.length, qa: byBucket.qa.length }
          while (chunk.length < Math.min(missing(), chunkMax(endpoint)) && slot < slots.length) {
            const s = slots[slot++]
            if (planned[s.bucket] >= quota[s.bucket] || rejected.has(s.row)) continue
            const pair = evalPairs[s.row]
            const taskType: TaskType = s.bucket === "qa" ? "qa_about_text" : contentTypes[contentAssigned % contentTypes.length]
            visited++
            const bad = prefilter(pair, synth)
            if (bad !== null) {
              rejected.add(s.row)
              count(filtered, reasonCode(bad))
              quarantine.push(quarantineRow({ split: "eval", row: s.row, id: pair.id, taskType }, bad, "", 0))
              continue
            }
            if (s.bucket === "content") contentAssigned++
            planned[s.bucket]++
            chunk.push({ split: "eval", row: s.row, id: pair.id, english: pair.english, foreign: pair.foreign, taskType })
          }
          if (chunk.length === 0) continue
          const outcomes = yield* runChunk(endpoint, chunk)
          for (let i = 0; i < chunk.length; i++) {
            const o = outcomes[i]
            record(chunk[i], o)
            if (o._tag !== "row") continue
            const rows = byBucket[o.row.bucket]
            if (rows.length >= quota[o.row.bucket]) continue
            rows.push(o.row)
            bar.advance()
          }
        }
        bar.done()
        return { val, trainRows, evalRows: [...byBucket.content, ...byBucket.qa], byBucket, quota }
      })

    const { result, stats: own } = params.mode === "offline"
      ? { result: yield* work(undefined), stats: null as EndpointStats | null }
      : yield* withStageEndpoint(STAGE, synth.endpoint, ctx.scratchDir, (endpoint) => work(endpoint))
    const stats = own === null ? null : shardedStats(shards, own)

    if (result.trainRows.length === 0 && synth.train > 0) {
      return yield* new StageError({
        stage: STAGE,
        message: `no usable Stage B training row out of ${train.length} training pairs (${quarantine.length} quarantined)`,
        file: ctx.inputs["train"]
      })
    }
    const shortfall = {
      train: synth.train - result.trainRows.length,
      val: synth.val - result.val.length,
      content: result.quota.content - result.byBucket.content.length,
      qa: result.quota.qa - result.byBucket.qa.length
    }
    if (Object.values(shortfall).some((n) => n > 0)) {
      ctx.log(`fewer rows than configured (pairs ran out): missing ${JSON.stringify(shortfall)}`)
    }

    const write = (name: string, rows: ReadonlyArray<Row>, columns = SftColumns) =>
      writeTable(ctx.outputs[name], columns, Stream.fromIterable(rows)).pipe(asStageError(STAGE))
    const asRows = (rows: ReadonlyArray<SftRow>): ReadonlyArray<Row> => rows.map((r) => ({ ...r }))
    const nTrain = yield* write("sft.train", asRows(result.trainRows))
    const nVal = yield* write("sft.val", asRows(result.val))
    const nEval = yield* write("sft.eval", asRows(result.evalRows))
    const nQuarantine = yield* write("synthesize.quarantine", quarantine, SynthQuarantineColumns)

    const taskCounts = (rows: ReadonlyArray<SftRow>) => {
      const m: Record<string, number> = {}
      for (const r of rows) count(m, r.task_type)
      return m
    }
    const offline = params.mode === "offline"
    ctx.log(
      `${offline ? "offline template synthesizer" : `endpoint ${params.baseUrl} (${synth.endpoint.model})`}: ` +
        `${nTrain} train, ${nVal} val, ${result.byBucket.content.length} content + ${result.byBucket.qa.length} Q&A eval rows; ` +
        `${nQuarantine} quarantined` +
        (stats === null ? "" : `; ${stats.requestsSent} requests sent, ${stats.cacheHits} cache hits`)
    )
    return {
      rows: { "sft.train": nTrain, "sft.val": nVal, "sft.eval": nEval, "synthesize.quarantine": nQuarantine },
      metrics: {
        mode: params.mode,
        offline,
        synthesizer: offline ? "offline templates (src/prompts/synthesis.ts offlineRow)" : synth.endpoint.model,
        baseUrl: params.baseUrl,
        rows: { train: nTrain, val: nVal, evalContent: result.byBucket.content.length, evalQa: result.byBucket.qa.length },
        taskTypes: { train: taskCounts(result.trainRows), val: taskCounts(result.val), eval: taskCounts(result.evalRows) },
        candidatesVisited: visited,
        filtered,
        quarantined: nQuarantine,
        quarantinedByReason,
        attempts: attemptsHistogram,
        shortfall,
        endpoint: stats
      }
    }
  })


/**
 * Sharding (`synthesize` with an endpoint): the shards are ranges of positions in the seeded visiting order of the
 * training pairs, covering the first `val + train` positions (the fewest a run can visit). A shard sends the requests
 * of its candidates — the same requests, with the same task types and re-samples, as `runSynthesize` sends for them —
 * and so fills the shared request cache (`<cacheDir>/requests`). The merge is `runSynthesize` itself: every request
 * a shard sent is a cache hit, so the tables are the single-process bytes, and only what the shards could not know
 * (candidates past a shortfall, the eval pairs) is sent by the coordinator. Offline mode has no shards, nor has a
 * run whose caller provides the `LlmEndpoint`.
 */
/**
 * Candidates per shard on a cluster: `4 × concurrency` (at least 16), small enough that the runners finish together
 * (the lanes of `src/cluster/executor.ts` hand them out as a work queue); a runner overlaps two of them, so the
 * start and end of each cost no idle permits.
 */
export const shardCandidates = (concurrency: number): number => Math.max(16, concurrency * 4)

export const planSynthesizeShards = (params: SynthesizeParams, inputs: Readonly<Record<string, string>>): Effect.Effect<Array<ShardRange>, StageError> =>
  Effect.gen(function*() {
    // Offline, or an endpoint provided by the caller (a test's scripted one, not necessarily backed by the shared
    // request cache): `run` does everything.
    // In one process (no ShardExecutor) shards would only add their overhead and a tail of idle permits each.
    if (params.mode === "offline" || Option.isSome(yield* Effect.serviceOption(LlmEndpoint))) return []
    if (!(yield* onCluster)) return []
    const train = yield* readPairs(inputs["train"])
    const n = Math.min(train.length, params.synth.val + params.synth.train)
    const size = shardCandidates(params.synth.endpoint.concurrency)
    return consecutiveRanges("train", n, size)
  })

/** The training candidates at visiting positions [start, end), with the task types `runSynthesize` gives them. */
const trainCandidates = (train: ReadonlyArray<Pair>, synth: Synth, start: number, end: number): Array<Candidate> => {
  const taskTypes = [...new Set(synth.taskTypes)]
  const order = seededOrder(train.length, synth.seed, "synthesize/train")
  const out: Array<Candidate> = []
  let assigned = 0
  for (let k = 0; k < Math.min(end, order.length); k++) {
    const row = order[k]
    const pair = train[row]
    const taskType = taskTypes[assigned % taskTypes.length]
    if (prefilter(pair, synth) !== null) continue
    assigned++
    if (k >= start) out.push({ split: "train", row, id: pair.id, english: pair.english, foreign: pair.foreign, taskType })
  }
  return out
}

export const runSynthesizeShard = (ctx: ShardContext<SynthesizeParams>): Effect.Effect<ShardOutcome, StageError> =>
  Effect.gen(function*() {
    const params = ctx.params
    const train = yield* readPairs(ctx.inputs["train"])
    const candidates = trainCandidates(train, params.synth, ctx.range.start, ctx.range.end)
    // the request cache is `<root>/requests` (withStageEndpoint takes it from a scratch path `<root>/<stage>/<key>`)
    const { result, stats } = yield* withStageEndpoint(STAGE, params.synth.endpoint, path.join(ctx.root, STAGE, "shard"), (endpoint) =>
      Effect.forEach(candidates, (c) => endpointOutcome(endpoint, c, params), { concurrency: Math.max(1, params.synth.endpoint.concurrency * 2) }))
    const accepted = result.filter((o) => o._tag === "row").length
    yield* Effect.try({
      try: () => fs.writeFileSync(path.join(ctx.outDir, "outcomes.json"), JSON.stringify(result.map((o) => o._tag))),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot write the shard's outcomes: ${String(cause)}`, cause })
    })
    return { rows: candidates.length, metrics: { accepted, endpoint: stats } }
  })
