/**
 * `npm run bench -- numerals`: how far a copy path for numbers can go, measured on the text alone (no model). For each
 * set of Khmer–English pairs: how many English numbers there are (`extractNumbers`, as the exact-number match counts
 * them), and what share of them a copy of the Khmer side's numerals (`findNumerals`, the number pathway's and the
 * number pointer's source) would write correctly: the copy ceiling, read with the exact-number match's own rule
 * (`numericFidelity`'s value recall, micro-averaged over numbers).
 *
 * Sets, each read, normalised and cut as `eval.testSets` reads a test set (`readTestSet`): the embedded default's
 * evaluation pool (the last 400 pairs of `km-en.mini.tsv`, its holdout) and, when `../shared/data/km-en/` is
 * present, the real pairs (`mixed_real_pairs.en-km.tsv`, FLORES-200 devtest, NTREX-128,
 * Tatoeba). The ceiling is given on the foreign side as the pipeline sees it (cut at `clean.maxForeignChars`,
 * 256 characters, so a numeral past the cut is lost) and uncut. The English numbers a copy cannot reach (cut) are
 * counted by kind: the Khmer side has no numeral for them (written in words, dropped by the translator, or past the cut), or it
 * has numerals that differ (another format or value).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Schema } from "effect"
import { MINI_HOLDOUT } from "../datasets/km-en-sample/generate.ts"
import { extractNumbers, numericFidelity } from "../src/metrics/numeric.ts"
import { CleanConfig } from "../src/nodes/clean/params.ts"
import { TestSetSpec } from "../src/nodes/testSets/params.ts"
import { readTestSet } from "../src/nodes/testSets/work.ts"
import { findNumerals } from "../src/text/numerals.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dataDir = path.resolve(repoRoot, "../shared/data/km-en")

// every set goes through the pipeline's own reader and normalisation (as eval.testSets reads a test set), with the
// default 256-character cut of the foreign side (what the pipeline sees) and without it (the text as written)
const CUT = Schema.decodeUnknownSync(CleanConfig)({})
const UNCUT = { ...CUT, maxForeignChars: 1_000_000 }
type Pair = readonly [english: string, khmer: string]
const readPairs = (name: string, corpus: Readonly<Record<string, string>>, clean: typeof CUT): Promise<ReadonlyArray<Pair>> =>
  Effect.runPromise(readTestSet(Schema.decodeUnknownSync(TestSetSpec)({ name, corpus }), clean)).then((set) =>
    set.english.map((e, i) => [e, set.foreign[i]] as const)
  )

const sets: Array<{ readonly name: string; readonly pairs: (clean: typeof CUT) => Promise<ReadonlyArray<Pair>> }> = [
  {
    name: `miniature holdout (km-en.mini.tsv, last ${MINI_HOLDOUT})`,
    pairs: async (clean) => (await readPairs("mini", { path: path.join(repoRoot, "datasets/km-en-sample/km-en.mini.tsv"), format: "tsv" }, clean)).slice(-MINI_HOLDOUT)
  }
]
const real = (name: string, english: string, khmer?: string) => {
  const files = khmer === undefined ? [english] : [english, khmer]
  if (!files.every((f) => fs.existsSync(path.join(dataDir, f)))) {
    console.log(`skipped ${name}: ${files.map((f) => path.join(dataDir, f)).join(", ")} absent`)
    return
  }
  const corpus: Readonly<Record<string, string>> = khmer === undefined
    ? { path: path.join(dataDir, english), format: "tsv" }
    : { path: path.join(dataDir, english), pairPath: path.join(dataDir, khmer), format: "moses" }
  sets.push({ name, pairs: (clean) => readPairs(name.replace(/[^A-Za-z0-9_.-]+/g, "-"), corpus, clean) })
}
real("mixed_real_pairs.en-km.tsv", "mixed_real_pairs.en-km.tsv")
real("FLORES-200 devtest", "flores200_devtest.eng_Latn", "flores200_devtest.khm_Khmr")
real("NTREX-128", "ntrex128.eng.txt", "ntrex128.khm.txt")
real("Tatoeba", "tatoeba-test-v2021-08-07.eng-khm.eng", "tatoeba-test-v2021-08-07.eng-khm.khm")

const pct = (a: number, b: number) => (b === 0 ? "–" : `${((100 * a) / b).toFixed(1)}%`)
const header = [
  "set", "pairs", "with English numbers", "English numbers", "copy ceiling (cut at 256)", "uncut",
  "Khmer has no numeral", "Khmer numerals differ", "Khmer numerals per pair"
]

/** The copy ceiling's counts over `pairs` (see the module doc). */
const ceiling = (pairs: ReadonlyArray<Pair>) => {
  let withNumbers = 0
  let numbers = 0
  let matched = 0
  let noNumeral = 0
  let differ = 0
  let numerals = 0
  for (const [en, km] of pairs) {
    const found = findNumerals(km)
    numerals += found.length
    const mentions = extractNumbers(en).length
    if (mentions === 0) continue
    withNumbers++
    numbers += mentions
    const f = numericFidelity(en, found.join(" "))
    matched += f.valuesMatched
    if (found.length === 0) noNumeral += mentions - f.valuesMatched
    else differ += mentions - f.valuesMatched
  }
  return { pairs: pairs.length, withNumbers, numbers, matched, noNumeral, differ, numerals }
}

const rows: Array<Array<string>> = []
for (const set of sets) {
  const cut = ceiling(await set.pairs(CUT))
  const uncut = ceiling(await set.pairs(UNCUT))
  rows.push([
    set.name,
    String(cut.pairs),
    String(cut.withNumbers),
    String(cut.numbers),
    pct(cut.matched, cut.numbers),
    pct(uncut.matched, uncut.numbers),
    pct(cut.noNumeral, cut.numbers),
    pct(cut.differ, cut.numbers),
    (cut.numerals / Math.max(1, cut.pairs)).toFixed(2)
  ])
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i])).join("  ")
console.log("The copy ceiling: the share of English numbers that the Khmer side's numerals, copied, would match")
console.log(line(header))
console.log(line(widths.map((w) => "-".repeat(w))))
for (const r of rows) console.log(line(r))
