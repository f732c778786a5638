/**
 * `llink compare RUN_DIR RUN_DIR… [--all] [--json | --csv]`
 *
 * Two or more run directories side by side (src/pipeline/compare.ts): the config parameters that differ, every
 * metric of results.json that differs (with deltas against the first run, marked real or noise where the runs keep
 * per-example values: a 95% bootstrap interval of the difference, paired when they share the eval set), and the
 * stages whose content key differs. `--all` keeps the unchanged rows too. Markdown by default (pastes into a PR), `--json` or `--csv` for
 * tools.
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { readRunExamples } from "../artifacts/runExamples.ts"
import type { Difference } from "../metrics/paired.ts"
import { type CompareRow, type Comparison, compareRuns, type Leaf, readRuns } from "../pipeline/compare.ts"
import { reportCommandError } from "./kit.ts"

/** A number in a table: integers as they are, others to 4 significant digits (no exponent for ordinary sizes). */
export const formatNumber = (x: number): string => {
  if (!Number.isFinite(x)) return String(x)
  if (Number.isInteger(x)) return String(x)
  const a = Math.abs(x)
  if (a >= 1e-4 && a < 1e6) return String(Number(x.toPrecision(4)))
  return x.toExponential(3)
}

const formatLeaf = (v: Leaf | undefined): string =>
  v === undefined ? "–" : v === null ? "null" : typeof v === "number" ? formatNumber(v) : String(v)

const formatDelta = (d: number | null): string => (d === null ? "" : d > 0 ? `+${formatNumber(d)}` : d < 0 ? `−${formatNumber(-d)}` : "0")

const mdCell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\r?\n/g, " ")
const mdTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  [`| ${header.map(mdCell).join(" | ")} |`, `|${header.map(() => " --- ").join("|")}|`, ...rows.map((r) => `| ${r.map(mdCell).join(" | ")} |`)].join("\n")

const keyCell = (key: string | null | undefined, status: string | undefined): string =>
  key === undefined ? "–" : `${key === null ? "none" : key.slice(0, 12)}${status === undefined ? "" : ` (${status})`}`

const VERDICT_MARK: Record<Difference["verdict"], string> = { real: "real", noise: "noise", "n/a": "" }

/** The interval of `name` against run `label`, if computed. */
const intervalOf = (c: Comparison, name: string, label: string): Difference | undefined =>
  c.intervals.find((r) => r.name === name && r.against === label)?.difference

const formatCi = (d: Difference): string => (d.ci === null ? "–" : `[${formatDelta(d.ci.lo)}, ${formatDelta(d.ci.hi)}]`)

/** What the intervals rest on: paired over the shared examples, or unpaired because the eval sets differ. */
const intervalBasis = (c: Comparison): Array<string> => {
  const out: Array<string> = []
  for (const label of c.runs.slice(1).map((r) => r.label)) {
    const rows = c.intervals.filter((r) => r.against === label)
    if (rows.length === 0) continue
    const paired = rows.filter((r) => r.difference.paired)
    const unpaired = rows.filter((r) => !r.difference.paired)
    if (paired.length > 0) {
      out.push(`- ${label} vs ${c.runs[0].label}: paired bootstrap over the examples both runs scored (${[...new Set(paired.map((r) => r.difference.n))].join(" / ")} per metric)`)
    }
    if (unpaired.length > 0) {
      out.push(`- ${label} vs ${c.runs[0].label}: **the eval sets differ** for ${unpaired.map((r) => r.name).join(", ")}: each run resampled on its own (unpaired intervals, wider)`)
    }
  }
  return out
}

/** The comparison as Markdown: parameters, metrics with deltas (marked real or noise), intervals, stage keys. */
export const formatCompareMarkdown = (c: Comparison): string => {
  const labels = c.runs.map((r) => r.label)
  const scope = c.all ? "all" : "changed"
  const markedDelta = (r: CompareRow, i: number): string => {
    const d = r.deltas[i]
    const iv = intervalOf(c, r.name, labels[i + 1])
    const mark = iv === undefined ? "" : VERDICT_MARK[iv.verdict]
    return mark === "" || d === null ? formatDelta(d) : `${formatDelta(d)} (${mark})`
  }
  const valueRows = (rows: ReadonlyArray<CompareRow>, deltas: boolean) =>
    rows.map((r) => [r.name, ...r.values.map(formatLeaf), ...(deltas ? r.deltas.map((_, i) => markedDelta(r, i)) : [])])
  const section = (title: string, empty: string, table: string | undefined) => [`## ${title}`, "", table ?? empty, ""]
  const out = [
    `# llink compare: ${labels.join(" vs ")}`,
    "",
    ...c.runs.map((r) => `- **${r.label}**: \`${r.dir}\`${r.hasResults ? "" : " (no results.json: no metrics)"}`),
    "",
    ...section(
      `Parameters (${scope})`,
      "No parameter differs.",
      c.params.length === 0 ? undefined : mdTable(["parameter", ...labels], valueRows(c.params, false))
    ),
    ...section(
      `Metrics (${scope}; Δ against ${labels[0]})`,
      "No metric differs.",
      c.metrics.length === 0
        ? undefined
        : mdTable(["metric", ...labels, ...labels.slice(1).map((l) => `Δ ${l}`)], valueRows(c.metrics, true))
    ),
    ...section(
      `Which changes are real (95% bootstrap interval of the difference against ${labels[0]})`,
      "No metric with per-example values differs (or the runs keep none).",
      c.intervals.length === 0
        ? undefined
        : [
          ...intervalBasis(c),
          "",
          mdTable(
            ["metric", "run", "Δ", "95% CI", "change"],
            c.intervals.map((r) => [r.name, r.against, formatDelta(r.difference.delta), formatCi(r.difference), r.difference.verdict])
          ),
          ...(c.intervalNotes.length === 0 ? [] : ["", ...c.intervalNotes.map((n) => `- ${n}`)])
        ].join("\n")
    ),
    ...section(
      c.all ? "Stages (content keys)" : "Stages whose content key differs",
      "Every stage has the same key in all runs.",
      c.stages.length === 0
        ? undefined
        : mdTable(["stage", ...labels], c.stages.map((s) => [s.stage, ...s.keys.map((k, i) => keyCell(k, s.statuses[i]))]))
    )
  ]
  return out.join("\n").trimEnd()
}

const csvCell = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s)

/** The comparison as one CSV table: section, name, a value per run, then a delta per run after the first. */
export const formatCompareCsv = (c: Comparison): string => {
  const labels = c.runs.map((r) => r.label)
  const raw = (v: Leaf | undefined) => (v === undefined ? "" : v === null ? "null" : String(v))
  const others = labels.slice(1)
  const rows: Array<ReadonlyArray<string>> = [[
    "section",
    "name",
    ...labels,
    ...others.map((l) => `delta ${l}`),
    ...others.flatMap((l) => [`ci_lo ${l}`, `ci_hi ${l}`, `change ${l}`, `paired ${l}`])
  ]]
  const blank = [...others.map(() => ""), ...others.flatMap(() => ["", "", "", ""])]
  const intervalCells = (name: string) =>
    others.flatMap((l) => {
      const d = intervalOf(c, name, l)
      return d === undefined ? ["", "", "", ""] : [d.ci === null ? "" : String(d.ci.lo), d.ci === null ? "" : String(d.ci.hi), d.verdict, String(d.paired)]
    })
  for (const r of c.params) rows.push(["param", r.name, ...r.values.map(raw), ...blank])
  for (const r of c.metrics) {
    rows.push(["metric", r.name, ...r.values.map(raw), ...r.deltas.map((d) => (d === null ? "" : String(d))), ...intervalCells(r.name)])
  }
  for (const s of c.stages) rows.push(["stage", s.stage, ...s.keys.map((k) => (k === undefined ? "" : k === null ? "none" : k)), ...blank])
  return rows.map((r) => r.map(csvCell).join(",")).join("\n")
}

/** The comparison as JSON (absent values as null). */
export const formatCompareJson = (c: Comparison): string =>
  JSON.stringify(
    {
      runs: c.runs,
      all: c.all,
      params: c.params.map((r) => ({ name: r.name, values: r.values.map((v) => v ?? null) })),
      metrics: c.metrics.map((r) => ({ name: r.name, values: r.values.map((v) => v ?? null), deltas: r.deltas })),
      stages: c.stages.map((s) => ({ stage: s.stage, keys: s.keys.map((k) => k ?? null), statuses: s.statuses.map((x) => x ?? null) })),
      intervals: c.intervals.map((r) => ({
        name: r.name,
        against: r.against,
        paired: r.difference.paired,
        n: r.difference.n,
        delta: r.difference.delta,
        ci: r.difference.ci,
        change: r.difference.verdict
      })),
      intervalNotes: c.intervalNotes
    },
    null,
    2
  )

export const compareCommand = Command.make(
  "compare",
  {
    runDirs: Argument.String("run-dir").pipe(Argument.withDescription("run directories (two or more)"), Argument.atLeast(2)),
    all: Flag.Boolean("all").pipe(Flag.withDefault(false), Flag.withDescription("show every parameter, metric and stage, not only those that differ")),
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print JSON instead of Markdown")),
    csv: Flag.Boolean("csv").pipe(Flag.withDefault(false), Flag.withDescription("print CSV instead of Markdown"))
  },
  (flags) =>
    Effect.gen(function*() {
      if (flags.json && flags.csv) {
        process.stderr.write("error: --json and --csv cannot be combined\n")
        process.exitCode = 2
        return
      }
      const runs = yield* readRuns(flags.runDirs)
      const examples = yield* Effect.forEach(runs, (r) => readRunExamples(r.dir))
      const comparison = compareRuns(runs, { all: flags.all, examples })
      yield* Console.log(flags.json ? formatCompareJson(comparison) : flags.csv ? formatCompareCsv(comparison) : formatCompareMarkdown(comparison))
    }).pipe(reportCommandError)
).pipe(Command.withDescription("Compare run directories: changed parameters, metrics (with deltas, real or noise) and stage keys"))
