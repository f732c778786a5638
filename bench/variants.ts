/**
 * Runs variants of the embedded default, one `llink run` each in one shared cache (so only what a variant changes is
 * recomputed), and prints two tables: the headline figures of each run (Stage A and LLINK (full) R@1, LLINK's
 * translate chrF and overall chrF with its interval, its exact-number match with its interval, its mean prompt
 * tokens, its judge preference against base and fine-tune, raw and length-controlled), and `llink compare default
 * <variant> --json` read back: each variant's change against the default with its paired 95% bootstrap interval,
 * marked real or noise. Used by `bench/ablations.ts` and `bench/beyond.ts`; returns each run's results.json.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

export type Variant = readonly [name: string, sets: ReadonlyArray<string>]

/** A variant's run folder under `dir`: its name with every run of other characters than letters and digits as "-". */
export const variantRunDir = (dir: string, name: string): string => path.join(dir, name.replace(/[^a-z0-9]+/gi, "-"))

/** One offline `llink run` of the embedded default into `runDir` on the cache `cacheDir`, with `--set` pairs `sets` and
 *  further flags `extra` (e.g. `--until retrieval`); its wall time in seconds. */
export const llinkRun = (runDir: string, cacheDir: string, sets: ReadonlyArray<string>, extra: ReadonlyArray<string> = []) => {
  const started = Date.now()
  const r = spawnSync(process.execPath, [
    path.join(repoRoot, "bin/llink.mjs"), "run", ...extra, "--run-dir", runDir, "--set", `cacheDir=${cacheDir}`, ...sets.flatMap((s) => ["--set", s])
  ], { cwd: repoRoot, encoding: "utf8", env: { ...process.env, OPENAI_BASE_URL: "" } })
  return { status: r.status, stderr: r.stderr, seconds: (Date.now() - started) / 1000 }
}

export interface VariantResults {
  readonly retrieval: { readonly stageA: { r1: number } | null; readonly full: { r1: number } | null }
  readonly generation: Record<string, {
    chrf: number
    chrfCI: { lo: number; hi: number } | null
    chrfByTask: Record<string, number>
    numberMatchRate: number | null
    numberMatchCI: { lo: number; hi: number } | null
  }> | null
  readonly judge: { readonly overall: Record<string, { preference: number | null; lengthControlled: { winRate: number } | null }> } | null
  readonly tokens: { readonly llink: { mean: number } } | null
  /** LLINK's slots per evaluation example: the generate stage's mean under a length policy, else Stage B's K
   *  (both read from the run's manifest.json; not part of results.json). */
  meanSlots?: number | undefined
}

/** LLINK's slots per evaluation example, from a run's manifest (see `VariantResults.meanSlots`). */
const meanSlotsOf = (runDir: string): number | undefined => {
  const file = path.join(runDir, "manifest.json")
  if (!fs.existsSync(file)) return undefined
  const m = JSON.parse(fs.readFileSync(file, "utf8")) as { stages: Record<string, { metrics?: Record<string, unknown> }> }
  const dynamic = m.stages["generate"]?.metrics?.["meanSlots"]
  const fixed = m.stages["stageB"]?.metrics?.["slots"]
  return typeof dynamic === "number" ? dynamic : typeof fixed === "number" ? fixed : undefined
}

interface CompareJson {
  readonly intervals: ReadonlyArray<{ name: string; paired: boolean; delta: number | null; ci: { lo: number; hi: number } | null; change: string }>
}

const f3 = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(3))
const f1 = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(1))
const pct = (x: number | null | undefined) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`)

const HEADLINE: ReadonlyArray<readonly [string, string, (x: number) => string]> = [
  ["retrieval.stageA.r1", "Stage A R@1", (x) => x.toFixed(3)],
  ["retrieval.full.r1", "full R@1", (x) => x.toFixed(3)],
  ["generation.llink.chrf", "LLINK chrF", (x) => x.toFixed(1)],
  ["generation.llink.numberMatchRate", "LLINK exact numbers", (x) => `${(100 * x).toFixed(1)} pt`],
  ["judge.overall.vsBase.preference", "vs base", (x) => `${(100 * x).toFixed(1)} pt`],
  ["judge.overall.vsFinetune.preference", "vs fine-tune", (x) => `${(100 * x).toFixed(1)} pt`]
]

/**
 * Runs `variants` (the first named "default" is the reference) under `dir/cache`; `only` runs a subset by name.
 * Prints the tables; returns the results of the runs that finished, by name.
 */
export const runVariants = (variants: ReadonlyArray<Variant>, options: { readonly dir?: string | undefined; readonly only?: ReadonlyArray<string> | undefined; readonly label: string }): Map<string, VariantResults> => {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `llink-${options.label}-`))
  const cache = path.join(dir, "cache")
  const rows: Array<Array<string>> = []
  const runDirs: Array<readonly [string, string]> = []
  const results = new Map<string, VariantResults>()
  for (const [name, sets] of variants) {
    if (options.only !== undefined && !options.only.includes(name)) continue
    const runDir = variantRunDir(dir, name)
    const r = llinkRun(runDir, cache, sets)
    const seconds = r.seconds
    if (r.status !== 0) {
      console.log(`${name}: llink run exited ${r.status}\n${r.stderr.slice(-2000)}`)
      rows.push([name, "failed", "", "", "", "", "", "", "", ""])
      continue
    }
    runDirs.push([name, runDir])
    const res = JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8")) as VariantResults
    res.meanSlots = meanSlotsOf(runDir)
    results.set(name, res)
    const ll = res.generation?.["llink"]
    const vs = (k: string) => res.judge?.overall[k]
    rows.push([
      name,
      f3(res.retrieval.stageA?.r1),
      f3(res.retrieval.full?.r1),
      f1(ll?.chrfByTask["translate_to_english"]),
      ll === undefined ? "–" : `${f1(ll.chrf)} [${f1(ll.chrfCI?.lo)}, ${f1(ll.chrfCI?.hi)}]`,
      ll === undefined ? "–" : `${pct(ll.numberMatchRate)} [${pct(ll.numberMatchCI?.lo)}, ${pct(ll.numberMatchCI?.hi)}]`,
      `${f1(res.tokens?.llink.mean)} (${res.meanSlots === undefined ? "–" : res.meanSlots.toFixed(2)} slots)`,
      `${pct(vs("vsBase")?.preference)} / ${pct(vs("vsBase")?.lengthControlled?.winRate)}`,
      `${pct(vs("vsFinetune")?.preference)} / ${pct(vs("vsFinetune")?.lengthControlled?.winRate)}`,
      `${seconds.toFixed(0)} s`
    ])
    console.log(`${name}: done in ${seconds.toFixed(0)} s`)
  }
  const header = ["variant", "Stage A R@1", "full R@1", "LLINK translate chrF", "LLINK chrF [95% CI]", "LLINK exact numbers [95% CI]", "LLINK prompt tokens (slots per example)", "vs base (raw / LC)", "vs fine-tune (raw / LC)", "run time"]
  console.log(`\n| ${header.join(" | ")} |\n|${header.map(() => " --- ").join("|")}|`)
  for (const row of rows) console.log(`| ${row.join(" | ")} |`)

  const base = runDirs.find(([name]) => name === "default")
  if (base !== undefined && runDirs.length > 1) {
    const signed = (fmt: (x: number) => string, x: number) => `${x >= 0 ? "+" : "−"}${fmt(Math.abs(x))}`
    const cell = (iv: CompareJson["intervals"][number] | undefined, fmt: (x: number) => string) =>
      iv === undefined || iv.delta === null
        ? "–"
        : `${signed(fmt, iv.delta)} ${iv.ci === null ? "" : `[${signed(fmt, iv.ci.lo)}, ${signed(fmt, iv.ci.hi)}]`} **${iv.change}**${iv.paired ? "" : " (unpaired)"}`
    console.log(`\nChange against the default (llink compare: paired 95% bootstrap interval; real = excludes 0)\n`)
    console.log(`| variant | ${HEADLINE.map(([, label]) => label).join(" | ")} |\n|${["", ...HEADLINE].map(() => " --- ").join("|")}|`)
    for (const [name, runDir] of runDirs) {
      if (name === "default") continue
      const r = spawnSync(process.execPath, [path.join(repoRoot, "bin/llink.mjs"), "compare", base[1], runDir, "--all", "--json"], { cwd: repoRoot, encoding: "utf8" })
      if (r.status !== 0) {
        console.log(`| ${name} | llink compare exited ${r.status} |`)
        continue
      }
      const c = JSON.parse(r.stdout) as CompareJson
      console.log(`| ${name} | ${HEADLINE.map(([metric, , fmt]) => cell(c.intervals.find((i) => i.name === metric), fmt)).join(" | ")} |`)
    }
  }
  console.log(`\n(run dirs and cache: ${dir})`)
  return results
}
