/**
 * The run report: `results.json` (the numbers), `report.md` and `report.html` (self-contained: inline CSS and SVG).
 *
 * Pure functions over already-read inputs (`ReportInputs`), so they are easy to test; the `report` stage reads the
 * artifacts with their producers' Schemas (src/schemas/) and writes files. After a partial run the sections whose
 * inputs were not computed say so instead of showing numbers.
 *
 * Sections: offline markers; Table 1 (retrieval) and Table 2 (judge) beside the paper's numbers
 * (src/schemas/paper.ts); decoder prompt tokens per system and the tokenizer statistics; numeric fidelity; Stage A
 * and Stage B training curves (loss components, τ and learning rate; L_SFT against L_zero and their gap); sample
 * generations side by side; data quality; and the lineage of the run (`<run-dir>/manifest.json`, when present).
 */
import type { Manifest } from "../../pipeline/manifest.ts"
import { type JudgeDoc, systemsOf } from "../../schemas/judge.ts"
import type { IngestSummaryDoc } from "../../schemas/ingestSummary.ts"
import type { QualityDoc } from "../../schemas/quality.ts"
import type { ResultsDoc } from "../../schemas/results.ts"
import type { RetrievalDoc, RetrievalFullDoc, RetrievalPeersDoc, TestSetsDoc, TestSetsFullDoc } from "../../schemas/retrieval.ts"
import { answerOf, type GenerationRow, PEERS } from "../../schemas/sft.ts"
import type { TokstatsDoc } from "../../schemas/tokstats.ts"
import { PAPER_JUDGE, PAPER_RETRIEVAL, PAPER_TOKENS } from "../../schemas/paper.ts"
import { barChartSvg, escapeXml, histogramSvg, lineChartSvg } from "../../plots/svg.ts"
import type { PretrainDoc } from "../../schemas/pretrain.ts"
import type { GenerationQuality } from "../../schemas/generation.ts"
import { systemQuality } from "../../metrics/generation.ts"
import { type Battle, type Ranking, rankSystems } from "../../metrics/bradleyTerry.ts"
import { runClaims } from "./claims.ts"
import type { NumbersMode } from "../../train/sftParams.ts"
import { describeSlotPolicy, type SlotPolicy } from "../../prompts/slotPolicy.ts"

/** A training-metrics table: column name → values per logged step (NaN for missing cells). */
export type MetricsTable = ReadonlyMap<string, ReadonlyArray<number>>

/** What the report reads; an input that was not computed (a partial run) is undefined. */
export interface ReportInputs {
  readonly title: string
  /** `stageB.numbers` (absent: "off"). */
  readonly numbers?: NumbersMode | undefined
  /** `stageB.slotPolicy` (absent: every example gets all K slots). */
  readonly slotPolicy?: SlotPolicy | undefined
  /** `generate.copyNumbers` (absent: "off"). */
  readonly copyNumbers?: "on" | undefined
  readonly retrieval: RetrievalDoc | undefined
  readonly retrievalFull: RetrievalFullDoc | undefined
  readonly retrievalPeers: RetrievalPeersDoc | undefined
  /** `retrieval.testSets`: Stage A on the named test sets (absent: not computed). */
  readonly testSets?: TestSetsDoc | undefined
  /** `retrieval.testSets.full`: LLINK (full) and the fine-tune on the named test sets (absent: not computed). */
  readonly testSetsFull?: TestSetsFullDoc | undefined
  readonly judge: JudgeDoc | undefined
  readonly tokstats: TokstatsDoc | undefined
  readonly quality: QualityDoc | undefined
  /** `ingest.summary`: quarantine reasons and an accepted Moses line-count mismatch. */
  readonly ingestSummary?: IngestSummaryDoc | undefined
  /** `models.pretrain`: the tiny models' pretraining (absent: not computed). */
  readonly pretrain?: PretrainDoc | undefined
  readonly stageAMetrics: MetricsTable
  readonly stageBMetrics: MetricsTable
  readonly generations: ReadonlyArray<GenerationRow> | undefined
  /** `judge.pairs`: each judged pair's combined outcome from LLINK's side (absent: not computed). */
  readonly judgePairs?: ReadonlyArray<JudgedPair> | undefined
  /** Whether the Stage B data came from the offline template synthesizer (null: unknown). */
  readonly synthOffline: boolean | null
  readonly manifest: Manifest | undefined
  /** Sample generations to show. */
  readonly samples: number
  /** Input artifacts that were not computed (empty for a complete run). */
  readonly missing: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------------------------
// results.json

const tokenUse = (values: ReadonlyArray<number>) => {
  const total = values.reduce((a, b) => a + b, 0)
  return { mean: values.length === 0 ? 0 : total / values.length, total }
}

/** The last finite value of every column of a metrics table (the end-of-training numbers). */
export const lastValues = (table: MetricsTable): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const [name, values] of table) {
    for (let i = values.length - 1; i >= 0; i--) {
      if (Number.isFinite(values[i])) {
        out[name] = values[i]
        break
      }
    }
  }
  return out
}

/** One row of `judge.pairs`, as the ranking needs it. */
export interface JudgedPair {
  readonly id: number
  readonly comparison: string
  readonly outcome: string
}

/**
 * The judge's verdicts as battles (a prompt is a generations row; invalid verdicts left out): LLINK against each
 * baseline and, with `judge.comparisons: "all"`, the baselines against each other; and the Bradley–Terry ranking of
 * all judged systems, raw and style-controlled (length in characters).
 */
export const judgeRanking = (
  pairs: ReadonlyArray<JudgedPair>,
  generations: ReadonlyArray<GenerationRow>,
  bootstrap: { readonly resamples: number; readonly seed: number }
): { readonly raw: Ranking; readonly styleControlled: Ranking } | null => {
  const byId = new Map(generations.map((g) => [g.id, g]))
  const battles: Array<Battle> = []
  for (const p of pairs) {
    const systems = systemsOf(p.comparison)
    const g = byId.get(p.id)
    if (systems === undefined || g === undefined || p.outcome === "invalid") continue
    const [a, b] = systems
    const mine = answerOf(g, a)
    const theirs = answerOf(g, b)
    battles.push({
      prompt: String(p.id),
      a,
      b,
      score: p.outcome === "win" ? 1 : p.outcome === "tie" ? 0.5 : 0,
      ...(mine !== null && theirs !== null ? { lengthDiff: mine.length - theirs.length } : {})
    })
  }
  const systems = ["llink", ...new Set(battles.flatMap((x) => [x.a, x.b]).filter((s) => s !== "llink"))]
  const options = { resamples: bootstrap.resamples, seed: bootstrap.seed, label: "judge" }
  const raw = rankSystems(battles, systems, options)
  const styleControlled = rankSystems(battles, systems, { ...options, styleControl: true })
  return raw === null || styleControlled === null ? null : { raw, styleControlled }
}

export const buildResults = (inputs: ReportInputs): ResultsDoc => {
  const g = inputs.generations
  const t = inputs.tokstats
  const q = inputs.quality
  const j = inputs.judge
  const stageA = inputs.retrieval?.stageA ?? null
  const rf = inputs.retrievalFull
  const rp = inputs.retrievalPeers
  const tokens = (() => {
    if (g === undefined) return null
    const llink = tokenUse(g.map((r) => r.llinkPromptTokens))
    const base = tokenUse(g.map((r) => r.basePromptTokens))
    const finetune = tokenUse(g.map((r) => r.finetunePromptTokens))
    const peers = PEERS.filter((name) => g.length > 0 && g.every((r) => r[`${name}PromptTokens`] !== null))
    return {
      examples: g.length,
      llink,
      base,
      finetune,
      ...Object.fromEntries(peers.map((name) => [name, tokenUse(g.map((r) => r[`${name}PromptTokens`] ?? 0))])),
      ratioBaseToLlink: llink.mean > 0 ? base.mean / llink.mean : null,
      ratioFinetuneToLlink: llink.mean > 0 ? finetune.mean / llink.mean : null,
      paperReduction: PAPER_TOKENS.decoderTokenReduction
    }
  })()
  const generation: GenerationQuality | null = g === undefined || g.length === 0
    ? null
    : Object.fromEntries(
      (["llink", "base", "finetune", ...PEERS] as const)
        .filter((name) => g.every((row) => row[name] !== null))
        .map((name) => [
          name,
          systemQuality(g.map((row) => ({ task_type: row.task_type, target: row.target, output: row[name] ?? "" })), { label: name })
        ])
    )
  const withoutClaims = {
    title: inputs.title,
    ...(inputs.numbers === "copy" ? { numbers: "copy" as const } : {}),
    ...(inputs.slotPolicy === undefined ? {} : { slotPolicy: inputs.slotPolicy }),
    ...(inputs.copyNumbers === "on" ? { copyNumbers: "on" as const } : {}),
    offline: { synthesizer: inputs.synthOffline, judge: j?.offline ?? null },
    retrieval: {
      n: stageA?.n ?? rf?.n ?? rp?.n ?? null,
      stageA,
      full: rf?.full ?? null,
      finetune: rf?.finetune ?? null,
      fullVector: rf?.fullVector ?? null,
      langbridge: rp?.langbridge ?? null,
      mindmerger: rp?.mindmerger ?? null,
      peerVector: rp?.vector ?? null,
      suite: inputs.retrieval?.suite ?? null,
      testSets: inputs.testSets === undefined ? null : Object.fromEntries(inputs.testSets.sets.map(({ ranks: _ranks, ...summary }) => {
        const other = inputs.testSetsFull?.sets.find((x) => x.name === summary.name)
        return [summary.name, {
          ...summary,
          full: other?.full ?? null,
          finetune: other?.finetune ?? null,
          langbridge: other?.langbridge ?? null,
          mindmerger: other?.mindmerger ?? null
        }]
      })),
      bootstrap: inputs.retrieval?.bootstrap ?? rf?.bootstrap ?? rp?.bootstrap ?? null,
      paper: PAPER_RETRIEVAL
    },
    judge: j === undefined
      ? null
      : {
        mode: j.mode,
        judge: j.judge,
        bootstrap: j.bootstrap,
        byBucket: j.byBucket,
        overall: j.overall,
        ranking: inputs.judgePairs === undefined || g === undefined ? null : judgeRanking(inputs.judgePairs, g, j.bootstrap),
        paper: PAPER_JUDGE
      },
    numericFidelity: j?.numericFidelity ?? null,
    generation,
    claims: [],
    pretrain: inputs.pretrain ?? null,
    tokens,
    tokenizer: t === undefined
      ? null
      : {
        pairs: t.pairs,
        englishTokensPerChar: t.english.tokensPerChar,
        foreignTokensPerChar: t.foreign.tokensPerChar,
        foreignToEnglishTokenRatio: t.foreignToEnglishTokenRatio.ofTotals,
        slots: t.slots.K,
        savedPerSentence: t.slots.savedPerSentence.mean,
        paper: PAPER_TOKENS
      },
    data: q === undefined ? null : { rowsIn: q.rowsIn, kept: q.kept, rejected: q.rejected, truncated: q.truncated },
    training: { stageA: lastValues(inputs.stageAMetrics), stageB: lastValues(inputs.stageBMetrics) },
    ...(inputs.missing.length === 0 ? {} : { partial: { missing: [...inputs.missing] } })
  }
  return { ...withoutClaims, claims: runClaims(withoutClaims) }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(3))
const f1 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(1))
const pct = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(1)}%`)
const int = (x: number): string => Math.round(x).toLocaleString("en-US")
const share = (k: number, n: number): string => (n === 0 ? "–" : `${((100 * k) / n).toFixed(1)}`)

/** A table as header + rows of cells (plain text), rendered to Markdown or HTML. */
interface Table {
  readonly caption: string
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  /** Rows (by index) shown as the paper's numbers (muted in HTML, italics in Markdown). */
  readonly paperRows?: ReadonlySet<number>
}

const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\r?\n/g, "<br>")
const tableMd = (t: Table): string =>
  [
    `**${t.caption}**`,
    "",
    `| ${t.header.map(mdCell).join(" | ")} |`,
    `|${t.header.map(() => " --- ").join("|")}|`,
    ...t.rows.map((r, i) => `| ${r.map((c) => (t.paperRows?.has(i) && c !== "" ? `*${mdCell(c)}*` : mdCell(c))).join(" | ")} |`),
    ""
  ].join("\n")

const html = escapeXml
const tableHtml = (t: Table): string =>
  [
    `<table>`,
    `<caption>${html(t.caption)}</caption>`,
    `<thead><tr>${t.header.map((h) => `<th>${html(h)}</th>`).join("")}</tr></thead>`,
    `<tbody>`,
    ...t.rows.map((r, i) => `<tr${t.paperRows?.has(i) ? ` class="paper"` : ""}>${r.map((c) => `<td>${html(c).replace(/\n/g, "<br>")}</td>`).join("")}</tr>`),
    `</tbody>`,
    `</table>`
  ].join("\n")

// ---------------------------------------------------------------------------------------------------------------
// Tables

/** What a cell says when its stage did not run in this (partial) run. */
const NOT_COMPUTED = "not computed in this run"

/** A confidence interval as `lo–hi` (of proportions shown in percent with `percent`). */
const ciCell = (i: { readonly lo: number; readonly hi: number } | null, percent = false): string =>
  i === null ? "–" : percent ? `${(i.lo * 100).toFixed(1)}–${(i.hi * 100).toFixed(1)}%` : `${f3(i.lo)}–${f3(i.hi)}`

export const retrievalTable = (r: ResultsDoc): Table => {
  const rows: Array<Array<string>> = []
  const paperRows = new Set<number>()
  const systems = [
    ["Direct fine-tune", r.retrieval.finetune, PAPER_RETRIEVAL.finetune],
    ["LLINK (Stage A)", r.retrieval.stageA, PAPER_RETRIEVAL.stageA],
    ["LLINK (Full)", r.retrieval.full, PAPER_RETRIEVAL.full]
  ] as const
  for (const [name, run, paper] of systems) {
    rows.push(
      run === null
        ? [name, NOT_COMPUTED, "–", "–", "–", "–", "–", "–", "–", "–"]
        : [name, `this run (n = ${int(run.n)})`, f3(run.r1), ciCell(run.r1CI), f3(run.r5), f3(run.r10), f3(run.mrr), ciCell(run.mrrCI), f1(run.meanRank), f3(run.chanceR1)]
    )
    paperRows.add(rows.length)
    rows.push(["", `paper (n = ${int(paper.n)})`, f3(paper.r1), "–", f3(paper.r5), f3(paper.r10), f3(paper.mrr), "–", f1(paper.meanRank), f3(1 / paper.n)])
  }
  // The peers: not in the paper; `peerVector` is null when `retrievalPeers` did not run, a null row means "off".
  for (const [name, label] of [["langbridge", "LangBridge (mean mapped state)"], ["mindmerger", "MindMerger (mean mapped state)"]] as const) {
    const run = r.retrieval[name]
    rows.push(
      run !== null
        ? [label, `this run (n = ${int(run.n)})`, f3(run.r1), ciCell(run.r1CI), f3(run.r5), f3(run.r10), f3(run.mrr), ciCell(run.mrrCI), f1(run.meanRank), f3(run.chanceR1)]
        : [label, r.retrieval.peerVector === null ? NOT_COMPUTED : "off in this run (baselines)", "–", "–", "–", "–", "–", "–", "–", "–"]
    )
  }
  const b = r.retrieval.bootstrap
  return {
    caption: "Table 1: bilingual retrieval (foreign → English, cosine against the teacher vectors h_E" +
      (b === null ? ")" : `; 95% CIs: percentile bootstrap over queries, ${int(b.resamples)} resamples, seed ${b.seed})`),
    header: ["Method", "Source", "R@1", "R@1 95% CI", "R@5", "R@10", "MRR", "MRR 95% CI", "Mean rank", "Chance R@1"],
    rows,
    paperRows
  }
}

/** Table 1's grid for Stage A: both directions × cosine, margin, CSLS; then the pool curve and the mistakes. */
export const retrievalSuiteTable = (r: ResultsDoc): Table | undefined => {
  const suite = r.retrieval.suite
  if (suite === null) return undefined
  const rows: Array<Array<string>> = suite.grid.map((c) => [
    c.direction,
    c.scoring === "cosine" ? "cosine" : `${c.scoring} (k = ${c.k})`,
    f3(c.metrics.r1),
    ciCell(c.metrics.r1CI),
    f3(c.metrics.r5),
    f3(c.metrics.r10),
    f3(c.metrics.mrr),
    `${(100 * c.xsimError).toFixed(1)}%`
  ])
  return {
    caption: `Table 1b: LLINK (Stage A) retrieval both ways under the field's scorings (n = ${int(suite.grid[0]?.metrics.n ?? 0)}; ` +
      "ratio margin as LASER's xsim, CSLS as MUSE; xsim error = 1 − R@1)",
    header: ["Direction", "Scoring", "R@1", "R@1 95% CI", "R@5", "R@10", "MRR", "xsim error"],
    rows
  }
}

/** Table 1c: Stage A on each named test set, both directions under cosine and margin, with its contamination; then
 *  LLINK (full), the fine-tune and the peers that are on, foreign → English. */
export const testSetsTable = (r: ResultsDoc): Table | undefined => {
  const sets = Object.values(r.retrieval.testSets ?? {})
  if (sets.length === 0) return undefined
  /** R@1 and its interval in one cell; a dash where the row was not computed. */
  const r1 = (m: { readonly r1: number; readonly r1CI: { readonly lo: number; readonly hi: number } | null } | null | undefined) =>
    m === null || m === undefined ? "–" : m.r1CI === null ? f3(m.r1) : `${f3(m.r1)} (${ciCell(m.r1CI)})`
  const cell = (s: (typeof sets)[number], direction: string, scoring: string) =>
    r1(s.suite.grid.find((x) => x.direction === direction && x.scoring === scoring)?.metrics)
  return {
    caption: "Table 1c: retrieval on the named test sets (eval.testSets): LLINK (Stage A) both ways, then LLINK (full), the fine-tune and the peers (their pooled soft input, as Table 1), R@1 with 95% bootstrap CIs, MRR of Stage A; " +
      "contamination = evaluated pairs whose English (foreign) sentence also occurs in the training split",
    header: ["Test set", "n", "Contamination en / km", "km→en cosine", "km→en margin", "en→km cosine", "en→km margin", "MRR", "LLINK (full) km→en", "Fine-tune km→en", "LangBridge km→en", "MindMerger km→en", "Chance R@1"],
    rows: sets.map((s) => [
      s.name,
      int(s.n),
      `${int(s.contaminatedEnglish)} / ${int(s.contaminatedForeign)}`,
      cell(s, "foreign→english", "cosine"),
      cell(s, "foreign→english", "margin"),
      cell(s, "english→foreign", "cosine"),
      cell(s, "english→foreign", "margin"),
      f3(s.stageA.mrr),
      r1(s.full),
      r1(s.finetune),
      r1(s.langbridge),
      r1(s.mindmerger),
      s.stageA.chanceR1.toFixed(4)
    ])
  }
}

/** The pool curve and the top-1 mistakes of Table 1b, as sentences. */
export const retrievalSuiteNotes = (r: ResultsDoc): Array<string> => {
  const suite = r.retrieval.suite
  if (suite === null) return []
  const curve = (direction: string, scoring: string) =>
    suite.pool.filter((x) => x.direction === direction && x.scoring === scoring).map((x) => `${int(x.pool)}: ${f3(x.r1)}`).join(", ")
  const m = suite.mistakes
  const share = (k: number) => (m.total === 0 ? "0" : `${k} (${((100 * k) / m.total).toFixed(0)}%)`)
  return [
    `R@1 by candidate pool (pairs; the whole holdout last), foreign → English: cosine ${curve("foreign→english", "cosine")}; margin ${curve("foreign→english", "margin")}. ` +
    `English → foreign: cosine ${curve("english→foreign", "cosine")}; margin ${curve("english→foreign", "margin")}.`,
    `Top-1 mistakes (margin, foreign → English): ${int(m.total)}; the retrieved English differs from the gold only in numbers ${share(m.number)}, ` +
    `only in names or numbers ${share(m.entity)}, otherwise ${share(m.other)}, not at all (a duplicate sentence) ${share(m.identical)}.` +
    (m.examples.length === 0 ? "" : ` For example: "${m.examples[0].gold}" → "${m.examples[0].retrieved}" (${m.examples[0].kind}).`)
  ]
}

const RANKING_NOTE = "Every verdict above (LLINK against each baseline; ties count half) feeds one Bradley–Terry model, so the " +
  "baselines are ranked against each other through LLINK; they were not judged against each other directly. The " +
  "style-controlled scores discount what answer length alone explains."

/** Table 2b: one ranking of every judged system (Bradley–Terry over all verdicts), raw and style-controlled. */
export const rankingTable = (r: ResultsDoc): Table | undefined => {
  const ranking = r.judge?.ranking ?? null
  if (ranking === null) return undefined
  const styled = new Map(ranking.styleControlled.rows.map((x) => [x.system, x]))
  const score = (x: { readonly score: number; readonly ci: { readonly lo: number; readonly hi: number } | null } | undefined) =>
    x === undefined ? ["–", "–"] : [x.score.toFixed(0), x.ci === null ? "–" : `${x.ci.lo.toFixed(0)}–${x.ci.hi.toFixed(0)}`]
  return {
    caption: `Table 2b: one ranking of all judged systems (Bradley–Terry over ${int(ranking.raw.battles)} verdicts on ${int(ranking.raw.prompts)} prompts; ` +
      "Elo scale, mean 1000; 95% CIs: bootstrap over prompts; style-controlled: answer length as a covariate, as Arena-Hard-Auto)",
    header: ["Rank", "System", "Score", "95% CI", "Style-controlled", "95% CI"],
    rows: ranking.raw.rows.map((x, i) => [String(i + 1), SYSTEM_NAMES[x.system] ?? x.system, ...score(x), ...score(styled.get(x.system))])
  }
}

/** The ranking as the chance of beating an average system, σ(β), with its interval (raw and style-controlled). */
export const rankingFigure = (r: ResultsDoc): Figure | undefined => {
  const ranking = r.judge?.ranking ?? null
  if (ranking === null) return undefined
  const systems = ranking.raw.rows.map((x) => x.system)
  const p = (elo: number) => 1 / (1 + Math.exp(-((elo - 1000) * Math.LN10) / 400))
  const group = (label: string, rows: ReadonlyArray<{ readonly system: string; readonly score: number; readonly ci: { readonly lo: number; readonly hi: number } | null }>) => {
    const by = new Map(rows.map((x) => [x.system, x]))
    return {
      label,
      values: systems.map((s) => p(by.get(s)?.score ?? Number.NaN)),
      intervals: systems.map((s) => {
        const ci = by.get(s)?.ci ?? null
        return ci === null ? null : ([p(ci.lo), p(ci.hi)] as const)
      })
    }
  }
  return {
    title: "One ranking of all systems",
    svg: barChartSvg(systems.map((s) => SYSTEM_NAMES[s] ?? s), [group("raw", ranking.raw.rows), group("style-controlled", ranking.styleControlled.rows)], {
      title: "Chance of beating an average system (Bradley–Terry; error bar: 95% CI over prompts)",
      yLabel: "P(win)",
      maxY: 1
    })
  }
}

const BUCKET_NAMES = { content: "Content understanding", qa: "Q&A" } as const
const COMPARISON_NAMES = {
  vsBase: "LLINK vs. Base",
  vsFinetune: "LLINK vs. Fine-tune",
  vsLangbridge: "LLINK vs. LangBridge",
  vsMindmerger: "LLINK vs. MindMerger"
} as const

export const judgeTable = (r: ResultsDoc): Table => {
  const rows: Array<Array<string>> = []
  const paperRows = new Set<number>()
  for (const bucket of ["content", "qa"] as const) {
    const b = r.judge?.byBucket[bucket]
    for (const comparison of ["vsBase", "vsFinetune", "vsLangbridge", "vsMindmerger"] as const) {
      const a = b?.[comparison]
      if (a !== undefined) {
        const valid = a.n - a.invalid
        rows.push([
          BUCKET_NAMES[bucket],
          COMPARISON_NAMES[comparison],
          `this run (n = ${int(a.n)})`,
          share(a.wins, valid),
          share(a.losses, valid),
          share(a.ties, valid),
          int(a.invalid),
          pct(a.preference),
          ciCell(a.preferenceCI, true),
          pct(a.winRate),
          ciCell(a.winRateCI, true),
          pct(a.flipRate),
          pct(a.positionConsistency),
          a.verdicts === 0 ? "–" : `${pct(a.firstShownWins / a.verdicts)} / ${pct(a.secondShownWins / a.verdicts)}`,
          a.meanChars.system === null || a.meanChars.baseline === null
            ? "–"
            : `${f1(a.meanChars.system)} / ${f1(a.meanChars.baseline)}${a.meanChars.ratio === null ? "" : ` (${a.meanChars.ratio.toFixed(2)}×)`}`
        ])
      }
      // the paper compares with the base model and the fine-tune only
      if (comparison !== "vsBase" && comparison !== "vsFinetune") continue
      const paper = PAPER_JUDGE[bucket][comparison]
      paperRows.add(rows.length)
      rows.push([
        a === undefined ? BUCKET_NAMES[bucket] : "",
        a === undefined ? COMPARISON_NAMES[comparison] : "",
        `paper (n = ${int(paper.n)})`,
        String(paper.winsPct),
        String(paper.lossesPct),
        String(paper.tiesPct),
        "–",
        pct(paper.preference),
        "–",
        // The paper's shares are over all N pairs, so its (W + ½T)/N follows from them.
        pct((paper.winsPct + paper.tiesPct / 2) / 100),
        "–",
        "–",
        "–",
        "–",
        "–"
      ])
    }
  }
  return {
    caption: `Table 2: pairwise judge (${r.judge === null ? `${NOT_COMPUTED}: paper rows only` : r.judge.mode === "offline" ? "OFFLINE chrF judge" : r.judge.judge}; both orders, human reference shown; preference = wins / (wins + losses); ` +
      `win rate = (wins + ½ ties) / valid pairs${r.judge === null ? "" : `; 95% CIs: percentile bootstrap over prompts, ${int(r.judge.bootstrap.resamples)} resamples, seed ${r.judge.bootstrap.seed}`})`,
    header: [
      "Bucket",
      "Comparison",
      "Source",
      "Wins %",
      "Losses %",
      "Ties %",
      "Invalid",
      "Preference",
      "Preference 95% CI",
      "Win rate (W + ½T)/N",
      "Win rate 95% CI",
      "Order flips",
      "Position consistency",
      "First / second shown won",
      "Mean chars LLINK / baseline"
    ],
    rows,
    paperRows
  }
}

const CLAIMS_NOTE =
  "A claim is reproduced only when this run's 95% interval supports it (a preference: raw and length-controlled both above 50%; " +
  "retrieval: intervals apart), not reproduced when the interval goes against it, and inconclusive otherwise. " +
  "The embedded default is a miniature (tiny pretrained models, a templated corpus, an offline judge): it shows whether the method works here, not the paper's numbers."

const JUDGE_NOTE =
  "Position consistency: share of the pairs (both orders valid) whose two orders agree. First / second shown won: " +
  "shares of the single-order verdicts that picked the answer shown first and the one shown second (equal without " +
  "position bias; a tie picks neither). " +
  "Mean chars: mean output length in characters, and LLINK's over the baseline's."

const PEER_ROWS = [
  ["langbridge", "LangBridge", "BOS + one soft row per encoder token + end vector"],
  ["mindmerger", "MindMerger", "BOS + one soft row per encoder token + boundary + the prompt with the original text's own tokens"]
] as const

/** How the peers' Table 1 vectors are formed (src/nodes/retrievalPeers/work.ts). */
export const PEER_VECTOR_NOTE =
  "Peer rows of Table 1 (not in the paper): each peer's query vector is its pooled soft input, the mean of the rows its trained bridge makes from the encoder's token states of the foreign sentence read alone (<s> and </s> included; the learned end vector left out, as it is the same for every sentence), compared by cosine with the same teacher vectors h_E on the same eval slice. The peers are never trained toward h_E, and their rows live in the decoder's input-embedding space while h_E is a final hidden state, so near-chance numbers are expected; LangBridge at evaluation would read a task instruction before the sentence, which this vector leaves out."

/** What each peer baseline feeds the decoder (the report's "Peer baselines" section). */
export const PEERS_NOTE = [
  "LLINK feeds the decoder K soft tokens made from one pooled encoder vector. The peer baselines feed it every token state of the same frozen encoder (the run's XLM-R; both papers used mT5 encoders: LangBridge the mT5-XL LM-adapted encoder, MindMerger mT5-xl), with the decoder frozen and no LoRA:",
  "LangBridge (Yoon et al., ACL 2024): [BOS, W·h₁+b, …, W·hₙ+b, enc_eos], a linear map of each encoder state plus a learned end vector, then the answer. The encoder reads the instruction with the text; trained on English-only data (the pair's English side), the foreign text goes through the encoder at evaluation.",
  "MindMerger (Huang et al., NeurIPS 2024): [BOS, MLP(h₁), …, MLP(hₙ), end_boundary, the decoder's own embeddings of the prompt with the original text], MLP d → 2d → D with ReLU; phase 1 on the parallel pairs (translation), phase 2 on the Stage B instruction data. It keeps the original text's tokens, so its prompt is the longest (Tokens table).",
  PEER_VECTOR_NOTE
] as const

export const tokensTable = (r: ResultsDoc): Table => {
  const t = r.tokens
  const k = r.tokenizer
  const paper = PAPER_TOKENS
  const promptRows = t === null
    ? [["Decoder prompt tokens (generate)", NOT_COMPUTED, `≈${paper.decoderTokenReduction}× fewer with LLINK`]]
    : [
      ["Examples", int(t.examples), ""],
      ["LLINK prompt tokens (mean)", f1(t.llink.mean), ""],
      ["Base prompt tokens (mean)", f1(t.base.mean), ""],
      ["Fine-tune prompt tokens (mean)", f1(t.finetune.mean), ""],
      ["Base / LLINK prompt tokens", t.ratioBaseToLlink === null ? "–" : `${t.ratioBaseToLlink.toFixed(2)}×`, `≈${t.paperReduction}×`],
      ["Fine-tune / LLINK prompt tokens", t.ratioFinetuneToLlink === null ? "–" : `${t.ratioFinetuneToLlink.toFixed(2)}×`, ""],
      ...PEER_ROWS.flatMap(([name, label, what]) => {
        const u = t[name]
        if (u === undefined) return []
        return [
          [`${label} prompt tokens (mean; ${what})`, f1(u.mean), ""],
          [`${label} / LLINK prompt tokens`, t.llink.mean > 0 ? `${(u.mean / t.llink.mean).toFixed(2)}×` : "–", ""]
        ]
      })
    ]
  const tokenizerRows = k === null
    ? [["Tokenizer statistics (tokstats)", NOT_COMPUTED, ""]]
    : [
      ["Training pairs measured", int(k.pairs), ""],
      ["English tokens per character", f3(k.englishTokensPerChar), String(paper.englishTokensPerChar)],
      ["Foreign tokens per character", f3(k.foreignTokensPerChar), String(paper.foreignTokensPerChar)],
      ["Foreign / English tokens (same sentences)", `${k.foreignToEnglishTokenRatio.toFixed(2)}×`, `${paper.fragmentation}× (example: ${paper.exampleForeignTokens} vs ${paper.exampleEnglishTokens})`],
      [`Decoder tokens saved per sentence with K = ${k.slots} slots`, f1(k.savedPerSentence), ""]
    ]
  return {
    caption: "Decoder prompt tokens per evaluation example, and the tokenizer's inflation of the foreign language",
    header: ["Quantity", "This run", "Paper"],
    rows: [...promptRows, ...tokenizerRows]
  }
}

export const numericTable = (r: ResultsDoc, byBucket?: JudgeDoc["numericFidelityByBucket"]): Table => {
  const rows: Array<Array<string>> = []
  const add = (scope: string, bySystem: JudgeDoc["numericFidelity"]) => {
    for (const [name, a] of [["LLINK", bySystem.llink], ["Base", bySystem.base], ["Fine-tune", bySystem.finetune]] as const) {
      rows.push([scope, name, `${int(a.applicable)} / ${int(a.examples)}`, int(a.mentions), pct(a.micro), pct(a.macro), pct(a.valueRecall), pct(a.unitRecall), int(a.perfect)])
      scope = ""
    }
  }
  if (r.numericFidelity === null) rows.push(["All", NOT_COMPUTED, "", "", "", "", "", "", ""])
  else add("All", r.numericFidelity)
  if (byBucket?.content !== undefined) add(BUCKET_NAMES.content, byBucket.content)
  if (byBucket?.qa !== undefined) add(BUCKET_NAMES.qa, byBucket.qa)
  return {
    caption: "Numeric fidelity: numbers (and units) of the human reference reproduced unchanged in each system's output",
    header: ["Scope", "System", "Examples with numbers", "Mentions", "Exact (micro)", "Exact (macro)", "Value recall", "Unit recall", "All exact"],
    rows
  }
}

const SYSTEM_NAMES: Readonly<Record<string, string>> = {
  llink: "LLINK",
  base: "Base",
  finetune: "Fine-tune",
  langbridge: "LangBridge",
  mindmerger: "MindMerger"
}

const VERDICT_MARK = { reproduced: "✔ reproduced", "not reproduced": "✘ not reproduced", inconclusive: "? inconclusive", "not computed": "– not computed" } as const

/** "What this run shows": each claim with its verdict and the numbers behind it. */
export const claimsTable = (r: ResultsDoc): Table => ({
  caption: "The paper's claims, checked against this run's numbers (95% intervals)",
  header: ["Claim", "This run", "Evidence"],
  rows: r.claims.map((c) => [c.claim, VERDICT_MARK[c.verdict], c.evidence])
})

const taskTypesOf = (g: GenerationQuality): Array<string> =>
  [...new Set(Object.values(g).flatMap((q) => Object.keys(q.chrfByTask)))].sort()

/** Generation quality per system: chrF per task type, overall with its interval, exact numbers, length. */
export const generationTable = (r: ResultsDoc): Table => {
  const g = r.generation
  if (g === null) return { caption: "Generation quality", header: ["System", "chrF"], rows: [["All", NOT_COMPUTED]] }
  const tasks = taskTypesOf(g)
  return {
    caption: "Generation quality: mean sentence chrF (character 6-grams, β = 2) against the target answer, per task type and overall" +
      (r.numbers === "copy" ? "; LLINK with the number pathway (stageB.numbers = \"copy\"): its prompts carry the foreign text's numerals on a line after the slots" : "") +
      (r.slotPolicy === undefined ? "" : `; LLINK's slots per example: ${describeSlotPolicy(r.slotPolicy)}`) +
      (r.copyNumbers === "on"
        ? "; every system's numbers copied from the foreign text at decoding (generate.copyNumbers = \"on\", the number pointer: a decoding rule, not learned)"
        : ""),
    header: ["System", ...tasks, "chrF (all)", "95% CI", "Exact numbers", "95% CI", "Mean chars"],
    rows: Object.entries(g).map(([name, q]) => [
      SYSTEM_NAMES[name] ?? name,
      ...tasks.map((t) => f1(q.chrfByTask[t])),
      f1(q.chrf),
      q.chrfCI === null ? "–" : `${f1(q.chrfCI.lo)}–${f1(q.chrfCI.hi)}`,
      q.numberMatchRate === null ? "–" : `${pct(q.numberMatchRate)} of ${q.numbers}`,
      q.numberMatchCI === null ? "–" : `${pct(q.numberMatchCI.lo)}–${pct(q.numberMatchCI.hi)}`,
      f1(q.meanChars)
    ])
  }
}

export const generationFigure = (r: ResultsDoc): Figure | undefined => {
  const g = r.generation
  if (g === null) return undefined
  const names = Object.keys(g)
  const groups = [...taskTypesOf(g), "all"].map((t) => ({
    label: t.replace(/_in_english|_to_english|_about_text/g, ""),
    values: names.map((n) => (t === "all" ? g[n].chrf : g[n].chrfByTask[t] ?? Number.NaN)),
    intervals: names.map((n) => {
      const ci = g[n].chrfCI
      return t === "all" && ci !== null ? ([ci.lo, ci.hi] as const) : null
    })
  }))
  return {
    title: "chrF per task type and system",
    svg: barChartSvg(names.map((n) => SYSTEM_NAMES[n] ?? n), groups, { title: "chrF against the target, per task type (error bar: 95% CI)", yLabel: "chrF", maxY: 100 })
  }
}

/** The pretraining curves of the tiny models (encoder masked-LM, decoder English LM). */
export const pretrainFigures = (p: PretrainDoc | null): Array<Figure> => {
  if (p === null) return []
  const parts = ([["decoder", "Decoder pretraining: English LM loss"], ["encoder", "Encoder pretraining: masked-LM loss"]] as const)
    .flatMap(([k, title]) => {
      const part = p[k]
      return part === null ? [] : [{ title, svg: lineChartSvg([{ name: `${k} (mean over ${part.window} steps)`, points: part.curve.map((c) => [c.step, c.loss] as const) }], { title, xLabel: "step", yLabel: "loss" }) }]
    })
  return parts
}

export const pretrainTable = (p: PretrainDoc | null): Table => {
  const rows: Array<Array<string>> = []
  for (const k of ["encoder", "decoder"] as const) {
    const part = p?.[k] ?? null
    if (part === null) rows.push([k, "not pretrained", "", "", "", ""])
    else rows.push([k, String(part.steps), String(part.examples), String(part.vocabulary), f3(part.firstLoss), f3(part.finalLoss)])
  }
  return { caption: "Pretraining of the tiny models (loss: mean of the first / last 10% of the steps)", header: ["Model", "Steps", "Sequences", "Vocabulary", "First loss", "Final loss"], rows }
}

export const pretrainSamplesTable = (p: PretrainDoc | null): Table => ({
  caption: "Greedy samples of the pretrained decoder (English only; it has never seen the foreign script)",
  header: ["Prompt", "Output"],
  rows: (p?.decoder?.samples ?? []).map((s) => [s.prompt, s.output])
})

export const samplesTable = (generations: ReadonlyArray<GenerationRow>, count: number): Table => {
  // Alternate the buckets so both are shown; within a bucket, in example order.
  const content = generations.filter((g) => g.bucket === "content")
  const qa = generations.filter((g) => g.bucket === "qa")
  const picked: Array<GenerationRow> = []
  for (let i = 0; picked.length < count && (i < content.length || i < qa.length); i++) {
    if (i < content.length && picked.length < count) picked.push(content[i])
    if (i < qa.length && picked.length < count) picked.push(qa[i])
  }
  const peers = PEERS.filter((p) => picked.length > 0 && picked.every((g) => g[p] !== null))
  return {
    caption: `Sample generations (${picked.length} of ${generations.length})`,
    header: ["#", "Task", "Instruction", "Target", "Base", "Fine-tune", ...peers.map((p) => SYSTEM_NAMES[p]), "LLINK"],
    rows: picked.map((g) => [String(g.id), g.task_type, g.instruction, g.target, g.base, g.finetune, ...peers.map((p) => g[p] ?? ""), g.llink])
  }
}

/** The ingest rows of the data table: pairs read, rows quarantined per reason, an accepted line-count mismatch. */
const ingestRows = (s: IngestSummaryDoc): Array<Array<string>> => [
  ...(s.lineCountMismatch === null
    ? []
    : [[
      "WARNING: Moses line counts differ (accepted by corpus.allowLineCountMismatch; lines paired by position)",
      `${s.lineCountMismatch.english.file}: ${int(s.lineCountMismatch.english.lines)} lines, ` +
      `${s.lineCountMismatch.foreign.file}: ${int(s.lineCountMismatch.foreign.lines)} lines`
    ]]),
  [`Pairs read (${s.format}: ${s.files.join(" + ")})`, int(s.pairs)],
  ["Quarantined at ingest", int(s.quarantined)],
  ...Object.entries(s.byReason)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([reason, n]) => [`  quarantined: ${reason}`, int(n)])
]

export const qualityTable = (q: QualityDoc | undefined, ingestSummary?: IngestSummaryDoc): Table => ({
  caption: "Data: ingest and cleaning summary",
  header: ["Quantity", "Value"],
  rows: [
    ...(ingestSummary === undefined ? [["Ingest quarantine (ingest)", NOT_COMPUTED]] : ingestRows(ingestSummary)),
    ...(q === undefined
      ? [["Cleaning (clean)", NOT_COMPUTED]]
      : [
        ["Pairs in", int(q.rowsIn)],
        ["Kept", int(q.kept)],
        ["Rejected", int(q.rejected)],
        ...Object.entries(q.byReason).map(([reason, n]) => [`  rejected: ${reason}`, int(n)]),
        [`Foreign sides truncated to ${q.maxForeignChars} chars`, int(q.truncated)]
      ])
  ]
})

const shortJson = (value: unknown, max = 400): string => {
  const text = JSON.stringify(value) ?? "null"
  return text.length > max ? `${text.slice(0, max)}…` : text
}

export const lineageTable = (manifest: Manifest): Table => ({
  caption: `Lineage (manifest of ${manifest.updatedAt}; config ${manifest.config.path ?? "(defaults)"}, digest ${manifest.config.digest.slice(0, 12)})`,
  header: ["Stage", "Status", "Key", "Version", "Time", "Inputs", "Params", "Outputs (rows)"],
  rows: Object.entries(manifest.stages).map(([name, s]) => [
    name,
    s.status + (s.reason === undefined ? "" : ` (${s.reason})`) + (s.error === undefined ? "" : `: ${s.error}`),
    s.key === null ? "–" : s.key.slice(0, 12),
    s.version ?? "–",
    s.durationMs > 0 ? `${(s.durationMs / 1000).toFixed(1)} s` : "–",
    Object.entries(s.inputs).map(([a, d]) => `${a} ${d.slice(0, 8)}`).join("\n"),
    shortJson(s.params),
    Object.entries(s.outputs).map(([a, o]) => `${a}${o.rows === null ? "" : ` (${int(o.rows)})`}`).join("\n")
  ])
})

// ---------------------------------------------------------------------------------------------------------------
// Plots

const seriesOf = (table: MetricsTable, column: string, name = column): { name: string; points: Array<readonly [number, number]> } | undefined => {
  const ys = table.get(column)
  if (ys === undefined) return undefined
  const xs = table.get("step") ?? ys.map((_, i) => i + 1)
  const points: Array<readonly [number, number]> = []
  ys.forEach((y, i) => {
    if (Number.isFinite(y) && Number.isFinite(xs[i])) points.push([xs[i], y])
  })
  return points.length === 0 ? undefined : { name, points }
}

const present = <T>(xs: ReadonlyArray<T | undefined>): Array<T> => xs.filter((x): x is T => x !== undefined)

export interface Figure {
  readonly title: string
  readonly svg: string
}

const chart = (title: string, yLabel: string, series: ReturnType<typeof present<{ name: string; points: Array<readonly [number, number]> }>>, logY = false): Figure | undefined =>
  series.length === 0 ? undefined : { title, svg: lineChartSvg(series, { title, xLabel: "step", yLabel, logY }) }

/** Columns of a Stage B metrics table that hold L_SFT and L_zero (by name). */
export const sftZeroColumns = (table: MetricsTable): { readonly sft?: string; readonly zero?: string } => {
  const names = [...table.keys()]
  const zero = names.find((n) => /zero/i.test(n) && !/gap|contrast/i.test(n))
  const sft = names.find((n) => /sft/i.test(n) && !/zero|gap|contrast/i.test(n))
  return { ...(sft === undefined ? {} : { sft }), ...(zero === undefined ? {} : { zero }) }
}

const SCHEDULE = /^(lr|lr[A-Z_].*|tau|τ|learningRate|step|epoch|examples|tokens|seconds|time.*)$/i

export const trainingFigures = (stageA: MetricsTable, stageB: MetricsTable): Array<Figure> => {
  const figs: Array<Figure | undefined> = []
  // Stage A: loss components, τ, lr, dev retrieval.
  const aLoss = ["loss", "nce", "ncePH", "nceHP", "dir", "norm"].filter((c) => stageA.has(c))
  const aOther = [...stageA.keys()].filter((c) => !SCHEDULE.test(c) && !aLoss.includes(c) && !/^dev|gradNorm/.test(c))
  figs.push(chart("Stage A: loss components", "loss", present([...aLoss, ...aOther].map((c) => seriesOf(stageA, c)))))
  figs.push(chart("Stage A: temperature τ", "τ", present([seriesOf(stageA, "tau", "τ")])))
  figs.push(chart("Stage A: learning rate", "lr", present([seriesOf(stageA, "lr")])))
  figs.push(chart("Stage A: dev retrieval", "score", present([seriesOf(stageA, "devR1", "dev R@1"), seriesOf(stageA, "devMrr", "dev MRR")])))
  // Stage B: L_SFT vs L_zero and their gap, the other loss terms, the learning rates.
  const { sft, zero } = sftZeroColumns(stageB)
  if (sft !== undefined && zero !== undefined) {
    figs.push(chart("Stage B: L_SFT vs L_zero (slots removed)", "loss", present([seriesOf(stageB, sft, `L_SFT (${sft})`), seriesOf(stageB, zero, `L_zero (${zero})`)])))
    const s = stageB.get(sft) ?? []
    const z = stageB.get(zero) ?? []
    const xs = stageB.get("step") ?? s.map((_, i) => i + 1)
    const gap: Array<readonly [number, number]> = []
    s.forEach((v, i) => {
      if (Number.isFinite(v) && Number.isFinite(z[i]) && Number.isFinite(xs[i])) gap.push([xs[i], z[i] - v])
    })
    if (gap.length > 0) {
      figs.push({
        title: "Stage B: L_zero − L_SFT",
        svg: lineChartSvg([{ name: "L_zero − L_SFT (> 0: the slots help)", points: gap }], {
          title: "Stage B: usage gap L_zero − L_SFT",
          xLabel: "step",
          yLabel: "Δ loss"
        })
      })
    }
  }
  const STATE = /^(gate|scale|gradNorm)$/i
  const bLoss = [...stageB.keys()].filter((c) => !SCHEDULE.test(c) && !STATE.test(c) && c !== sft && c !== zero && !/^dev|^val/i.test(c))
  figs.push(chart("Stage B: loss components", "loss", present(bLoss.map((c) => seriesOf(stageB, c)))))
  figs.push(chart("Stage B: adapter gate and ForeignScale scalar", "value", present([seriesOf(stageB, "gate"), seriesOf(stageB, "scale")])))
  figs.push(chart("Stage B: validation", "loss", present([...stageB.keys()].filter((c) => /^val|^dev/i.test(c)).map((c) => seriesOf(stageB, c)))))
  figs.push(chart("Stage B: learning rates", "lr", present([...stageB.keys()].filter((c) => /^lr/i.test(c)).map((c) => seriesOf(stageB, c)))))
  return present(figs)
}

export const tokenFigure = (generations: ReadonlyArray<GenerationRow>): Figure | undefined =>
  generations.length === 0
    ? undefined
    : {
      title: "Decoder prompt tokens per example",
      svg: histogramSvg(
        [
          { name: "LLINK", values: generations.map((g) => g.llinkPromptTokens) },
          { name: "Base", values: generations.map((g) => g.basePromptTokens) },
          { name: "Fine-tune", values: generations.map((g) => g.finetunePromptTokens) }
        ],
        { title: "Decoder prompt tokens per evaluation example", xLabel: "prompt tokens", yLabel: "examples" }
      )
    }

// ---------------------------------------------------------------------------------------------------------------
// Documents

const offlineNotes = (r: ResultsDoc): Array<string> => [
  ...(r.partial === undefined
    ? []
    : [`PARTIAL RUN: not computed in this run: ${r.partial.missing.join(", ")} (run \`llink run\` without --until for the rest).`]),
  ...(r.offline.synthesizer === true
    ? ["OFFLINE SYNTHESIZER: the Stage B data was made by the deterministic template synthesizer from the reference English, not by a 70B model."]
    : []),
  ...(r.offline.judge === true
    ? ["OFFLINE JUDGE: Table 2 comes from the chrF judge (higher chrF against the human reference wins), not from an LLM judge; it is not comparable to the paper's numbers."]
    : [])
]

export interface RenderedReport {
  readonly results: ResultsDoc
  readonly markdown: string
  readonly html: string
}

export const renderReport = (inputs: ReportInputs): RenderedReport => {
  const r = buildResults(inputs)
  const notes = offlineNotes(r)
  const tables = {
    retrieval: retrievalTable(r),
    retrievalSuite: retrievalSuiteTable(r),
    testSets: testSetsTable(r),
    ranking: rankingTable(r),
    judge: judgeTable(r),
    tokens: tokensTable(r),
    numeric: numericTable(r, inputs.judge?.numericFidelityByBucket),
    samples: samplesTable(inputs.generations ?? [], inputs.samples),
    claims: claimsTable(r),
    generation: generationTable(r),
    pretrain: pretrainTable(r.pretrain),
    pretrainSamples: pretrainSamplesTable(r.pretrain),
    quality: qualityTable(inputs.quality, inputs.ingestSummary)
  }
  const lineage = inputs.manifest === undefined ? undefined : lineageTable(inputs.manifest)
  const training = trainingFigures(inputs.stageAMetrics, inputs.stageBMetrics)
  const tokenFig = tokenFigure(inputs.generations ?? [])
  const generationFig = generationFigure(r)
  const rankingFig = rankingFigure(r)
  const pretrainFigs = pretrainFigures(r.pretrain)
  const fullVectorNote = (r.retrieval.fullVector === null ? "" : ` LLINK (Full) query vector: ${r.retrieval.fullVector}.`) +
    (r.retrieval.peerVector === null ? "" : ` Peer query vectors: ${r.retrieval.peerVector} (see Peer baselines).`)

  const md = [
    `# ${r.title}`,
    "",
    ...(notes.length > 0 ? [...notes.map((n) => `> **${n}**`), ""] : []),
    "## What this run shows",
    "",
    tableMd(tables.claims),
    CLAIMS_NOTE,
    "",
    "## Retrieval",
    "",
    tableMd(tables.retrieval),
    `Paper numbers in italics.${fullVectorNote}`,
    "",
    ...(tables.retrievalSuite === undefined ? [] : [tableMd(tables.retrievalSuite), ...retrievalSuiteNotes(r), ""]),
    ...(tables.testSets === undefined ? [] : [tableMd(tables.testSets), ""]),
    "## Pairwise judge",
    "",
    tableMd(tables.judge),
    "Shares are over the valid pairs; a pair whose two orders disagree counts as a tie. Paper numbers in italics.",
    "",
    JUDGE_NOTE,
    "",
    ...(tables.ranking === undefined ? [] : [tableMd(tables.ranking), RANKING_NOTE, ""]),
    "## Generation quality",
    "",
    tableMd(tables.generation),
    "## Peer baselines",
    "",
    ...PEERS_NOTE.flatMap((l) => [l, ""]),
    "## Tokens",
    "",
    tableMd(tables.tokens),
    "## Numeric fidelity",
    "",
    tableMd(tables.numeric),
    "## Pretraining of the tiny models",
    "",
    tableMd(tables.pretrain),
    ...(tables.pretrainSamples.rows.length > 0 ? [tableMd(tables.pretrainSamples)] : []),
    "## Training",
    "",
    `Stage A (last logged step): ${shortJson(r.training.stageA, 600)}`,
    "",
    `Stage B (last logged step): ${shortJson(r.training.stageB, 600)}`,
    "",
    `Curves: see report.html (${training.map((f) => f.title).join("; ") || "no metrics logged"}).`,
    "",
    "## Sample generations",
    "",
    tableMd(tables.samples),
    "## Data",
    "",
    tableMd(tables.quality),
    "## Lineage",
    "",
    lineage === undefined ? "No manifest.json in the run directory." : tableMd(lineage),
    ""
  ].join("\n")

  const figureHtml = (f: Figure) => `<figure>${f.svg.trim()}</figure>`
  const page = [
    "<!DOCTYPE html>",
    `<html lang="en"><head><meta charset="utf-8"><title>${html(r.title)}</title>`,
    "<style>",
    "body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}",
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}caption{text-align:left;font-weight:bold;padding:4px 0}",
    "th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}th{background:#f3f3f3}",
    "tr.paper td{color:#666;font-style:italic;background:#fafafa}",
    ".offline{border:2px solid #d62728;background:#fff0f0;padding:8px 12px;margin:1em 0;font-weight:bold}",
    "figure{display:inline-block;margin:8px}",
    "</style></head><body>",
    `<h1>${html(r.title)}</h1>`,
    ...notes.map((n) => `<div class="offline">${html(n)}</div>`),
    `<h2 id="claims">What this run shows</h2>`,
    tableHtml(tables.claims),
    `<p>${html(CLAIMS_NOTE)}</p>`,
    `<h2 id="retrieval">Retrieval</h2>`,
    tableHtml(tables.retrieval),
    `<p>Paper numbers in grey italics.${html(fullVectorNote)}</p>`,
    ...(tables.retrievalSuite === undefined ? [] : [tableHtml(tables.retrievalSuite), ...retrievalSuiteNotes(r).map((x) => `<p>${html(x)}</p>`)]),
    ...(tables.testSets === undefined ? [] : [tableHtml(tables.testSets)]),
    `<h2 id="judge">Pairwise judge</h2>`,
    tableHtml(tables.judge),
    "<p>Shares are over the valid pairs; a pair whose two orders disagree counts as a tie.</p>",
    `<p>${html(JUDGE_NOTE)}</p>`,
    ...(tables.ranking === undefined ? [] : [tableHtml(tables.ranking), `<p>${html(RANKING_NOTE)}</p>`]),
    ...(rankingFig === undefined ? [] : [figureHtml(rankingFig)]),
    `<h2 id="generation">Generation quality</h2>`,
    tableHtml(tables.generation),
    ...(generationFig === undefined ? [] : [figureHtml(generationFig)]),
    `<h2 id="peers">Peer baselines</h2>`,
    ...PEERS_NOTE.map((l) => `<p>${html(l)}</p>`),
    `<h2 id="tokens">Tokens</h2>`,
    tableHtml(tables.tokens),
    ...(tokenFig === undefined ? [] : [figureHtml(tokenFig)]),
    `<h2 id="numeric">Numeric fidelity</h2>`,
    tableHtml(tables.numeric),
    `<h2 id="pretrain">Pretraining of the tiny models</h2>`,
    tableHtml(tables.pretrain),
    ...pretrainFigs.map(figureHtml),
    ...(tables.pretrainSamples.rows.length > 0 ? [tableHtml(tables.pretrainSamples)] : []),
    `<h2 id="training">Training curves</h2>`,
    ...(training.length === 0 ? ["<p>No training metrics were logged.</p>"] : training.map(figureHtml)),
    `<h2 id="samples">Sample generations</h2>`,
    tableHtml(tables.samples),
    `<h2 id="data">Data</h2>`,
    tableHtml(tables.quality),
    `<h2 id="lineage">Lineage</h2>`,
    lineage === undefined ? "<p>No manifest.json in the run directory.</p>" : tableHtml(lineage),
    "</body></html>",
    ""
  ].join("\n")
  return { results: r, markdown: md, html: page }
}
