/**
 * The per-example values behind a finished run's headline metrics, read from its run directory's `artifacts/`
 * links, keyed by the metric's name in results.json (what `llink compare` bootstraps differences of):
 *
 * - `retrieval.{stageA,full,finetune}.{r1,mrr}`: each query's gold rank (`retrieval.json`, `retrieval.full.json`);
 *   an example is the eval pair's id (`eval.parquet`);
 * - `retrieval.testSets.<name>.{stageA,full,finetune}.{r1,mrr}`: each test-set query's gold rank
 *   (`retrieval.testSets.json`, `retrieval.testSets.full.json`); an example is the pair's position in the test set;
 * - `generation.<system>.chrf`: each output's sentence chrF against its target (`generations.parquet`), as the
 *   report computes it; an example is the Stage B eval row's pair id and task type (`sft.eval.parquet`);
 * - `generation.<system>.numberMatchRate`: per output, the target's numbers and how many of them the output has
 *   (`numericFidelity`), resampled as the report's ratio (matched / numbers);
 * - `judge.overall.<comparison>.{preference,winRate}`: each prompt's combined verdict (`judge.pairs.parquet`),
 *   resampled as the report's ratios (wins / (wins + losses); (wins + ½ ties) / valid).
 *
 * A family whose artifacts are absent (the stage did not run) or unreadable (a run made before llink kept ranks) is
 * left out, with a note saying why.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { sentenceChrf } from "../metrics/chrf.ts"
import { numericFidelity } from "../metrics/numeric.ts"
import { type ExampleTable, meanOf, type MetricExamples, ratioOf } from "../metrics/paired.ts"
import { readTableAll, type Row } from "../formats/parquet/table.ts"
import { LLINK_COMPARISONS } from "../schemas/judge.ts"
import { RetrievalDoc, RetrievalFullDoc, TestSetsDoc, TestSetsFullDoc } from "../schemas/retrieval.ts"
import { readJsonDoc } from "./json.ts"
import { PEERS, SYSTEMS } from "../schemas/sft.ts"

export type { MetricExamples }

export interface RunExamples {
  readonly metrics: ReadonlyArray<MetricExamples>
  /** Families left out, and why. */
  readonly notes: ReadonlyArray<string>
}

const describe = (e: unknown): string => {
  const text = typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" ? e.message : String(e)
  return /(ranks|suite): Missing key/.test(text) ? "the run was made by an older llink, before it kept per-query ranks (rerun retrieval to get them)" : text.split("\n")[0]
}

/** Reads what exists; never fails (a missing or unreadable family becomes a note). */
export const readRunExamples = Effect.fn("RunExamples.read")(function*(runDir: string) {
  const art = (file: string) => path.join(runDir, "artifacts", file)
  const has = (file: string) => fs.existsSync(art(file))
  const metrics: Array<MetricExamples> = []
  const notes: Array<string> = []
  const rows = (file: string) => readTableAll(art(file))

  // retrieval: ranks per eval query
  const retrievalFamily = (label: string, evalIds: ReadonlyArray<string>, ranks: ReadonlyArray<number>, prefix = "retrieval") => {
    const table: ExampleTable = {
      ids: evalIds.slice(0, ranks.length),
      columns: { hit: Float64Array.from(ranks, (r) => (r <= 1 ? 1 : 0)), rr: Float64Array.from(ranks, (r) => 1 / r) }
    }
    metrics.push({ name: `${prefix}.${label}.r1`, table, statistic: meanOf("hit") })
    metrics.push({ name: `${prefix}.${label}.mrr`, table, statistic: meanOf("rr") })
  }
  if (has("retrieval.testSets.json")) {
    const doc = yield* Effect.result(readJsonDoc(TestSetsDoc, art("retrieval.testSets.json")))
    if (doc._tag === "Failure") notes.push(`retrieval (test sets): ${describe(doc.failure)}`)
    else {
      for (const set of doc.success.sets) {
        retrievalFamily("stageA", set.ranks.map((_, i) => String(i)), set.ranks, `retrieval.testSets.${set.name}`)
      }
    }
  }
  if (has("retrieval.testSets.full.json")) {
    const doc = yield* Effect.result(readJsonDoc(TestSetsFullDoc, art("retrieval.testSets.full.json")))
    if (doc._tag === "Failure") notes.push(`retrieval (test sets, full and fine-tune): ${describe(doc.failure)}`)
    else {
      for (const set of doc.success.sets) {
        const ids = set.ranks.full.map((_, i) => String(i))
        retrievalFamily("full", ids, set.ranks.full, `retrieval.testSets.${set.name}`)
        retrievalFamily("finetune", ids, set.ranks.finetune, `retrieval.testSets.${set.name}`)
        for (const peer of PEERS) {
          const ranks = set.ranks[peer]
          if (ranks !== null) retrievalFamily(peer, ids, ranks, `retrieval.testSets.${set.name}`)
        }
      }
    }
  }
  if (has("eval.parquet") && (has("retrieval.json") || has("retrieval.full.json"))) {
    const evalRows = yield* Effect.result(rows("eval.parquet"))
    if (evalRows._tag === "Failure") notes.push(`retrieval: ${describe(evalRows.failure)}`)
    else {
      const evalIds = evalRows.success.map((r) => String(r["id"]))
      if (has("retrieval.json")) {
        const doc = yield* Effect.result(readJsonDoc(RetrievalDoc, art("retrieval.json")))
        if (doc._tag === "Failure") notes.push(`retrieval (Stage A): no per-query ranks (${describe(doc.failure)})`)
        else retrievalFamily("stageA", evalIds, doc.success.ranks.stageA)
      }
      if (has("retrieval.full.json")) {
        const doc = yield* Effect.result(readJsonDoc(RetrievalFullDoc, art("retrieval.full.json")))
        if (doc._tag === "Failure") notes.push(`retrieval (full, fine-tune): no per-query ranks (${describe(doc.failure)})`)
        else {
          retrievalFamily("full", evalIds, doc.success.ranks.full)
          retrievalFamily("finetune", evalIds, doc.success.ranks.finetune)
        }
      }
    }
  }

  // generation and judge: examples are the Stage B eval rows
  if (has("generations.parquet")) {
    const gens = yield* Effect.result(rows("generations.parquet"))
    const sftEval = has("sft.eval.parquet") ? yield* Effect.result(rows("sft.eval.parquet")) : undefined
    if (gens._tag === "Failure") notes.push(`generation: ${describe(gens.failure)}`)
    else {
      const evalRows: ReadonlyArray<Row> | undefined = sftEval?._tag === "Success" ? sftEval.success : undefined
      /** Example key of generation row g: the eval pair's id and the task (the row index where sft.eval is absent). */
      const keyOf = (g: Row): string => {
        const i = Number(g["id"])
        const e = evalRows?.[i]
        return e !== undefined ? `${String(e["id"])}:${String(e["task_type"])}` : `row${String(g["row"])}:${String(g["task_type"])}`
      }
      const ids = gens.success.map(keyOf)
      for (const system of [...SYSTEMS, ...PEERS]) {
        const outputs = gens.success.map((g) => g[system])
        if (outputs.some((o) => typeof o !== "string")) continue
        const chrf = Float64Array.from(gens.success, (g) => sentenceChrf(String(g[system]), String(g["target"])))
        metrics.push({ name: `generation.${system}.chrf`, table: { ids, columns: { chrf } }, statistic: meanOf("chrf") })
        const fidelity = gens.success.map((g) => numericFidelity(String(g["target"]), String(g[system])))
        const numbers = { numbers: Float64Array.from(fidelity, (f) => f.mentions), matched: Float64Array.from(fidelity, (f) => f.valuesMatched) }
        metrics.push({ name: `generation.${system}.numberMatchRate`, table: { ids, columns: numbers }, statistic: ratioOf("matched", "numbers") })
      }
      if (has("judge.pairs.parquet")) {
        const pairs = yield* Effect.result(rows("judge.pairs.parquet"))
        if (pairs._tag === "Failure") notes.push(`judge: ${describe(pairs.failure)}`)
        else {
          const byId = new Map(gens.success.map((g) => [Number(g["id"]), keyOf(g)]))
          // LLINK's comparisons (`vs…`): the ones results.json summarises (`judge.comparisons: "all"` adds `<a>~<b>`)
          const comparisons = [...new Set(pairs.success.map((p) => String(p["comparison"])))].filter((c) => c in LLINK_COMPARISONS)
          for (const comparison of comparisons) {
            const mine = pairs.success.filter((p) => String(p["comparison"]) === comparison)
            const outcome = (p: Row, o: string) => (String(p["outcome"]) === o ? 1 : 0)
            const table: ExampleTable = {
              ids: mine.map((p) => byId.get(Number(p["id"])) ?? `id${String(p["id"])}`),
              columns: {
                win: Float64Array.from(mine, (p) => outcome(p, "win")),
                decisive: Float64Array.from(mine, (p) => outcome(p, "win") + outcome(p, "loss")),
                score: Float64Array.from(mine, (p) => outcome(p, "win") + 0.5 * outcome(p, "tie")),
                valid: Float64Array.from(mine, (p) => 1 - outcome(p, "invalid"))
              }
            }
            metrics.push({ name: `judge.overall.${comparison}.preference`, table, statistic: ratioOf("win", "decisive") })
            metrics.push({ name: `judge.overall.${comparison}.winRate`, table, statistic: ratioOf("score", "valid") })
          }
        }
      }
    }
  }
  return { metrics, notes } satisfies RunExamples
})
