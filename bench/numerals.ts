/**
 * `npm run bench -- numerals`: how far a copy path for numbers can go, measured on the text alone (no model). For each
 * set of Khmer–English pairs: how many English numbers there are (`extractNumbers`, as the exact-number match counts
 * them), and what share of them a copy of the Khmer side's numerals (`findNumerals`, the number pathway's and the
 * number pointer's source) would write correctly: the copy ceiling, read with the exact-number match's own rule
 * (`numericFidelity`'s value recall, micro-averaged over numbers).
 *
 * Sets: the embedded default's evaluation pool (the last 400 lines of `km-en.mini.tsv`, its holdout) and, when
 * `../shared/data/km-en/` is present, the real pairs (`mixed_real_pairs.en-km.tsv`, FLORES-200 devtest, NTREX-128,
 * Tatoeba). The English numbers a copy cannot reach are counted by kind: the Khmer side has no numeral for them
 * (written in words, or dropped by the translator), or it has numerals that differ (another format or value).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { extractNumbers, numericFidelity } from "../src/metrics/numeric.ts"
import { findNumerals } from "../src/text/numerals.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dataDir = path.resolve(repoRoot, "../shared/data/km-en")

type Pair = readonly [english: string, khmer: string]

const lines = (file: string) => fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "")
const tsv = (file: string): Array<Pair> =>
  lines(file).map((l) => l.split("\t")).filter((c) => c.length >= 2).map((c) => [c[0], c[1]] as const)
const parallel = (en: string, km: string): Array<Pair> => {
  const a = lines(en)
  const b = lines(km)
  return a.slice(0, Math.min(a.length, b.length)).map((e, i) => [e, b[i]] as const)
}

const sets: Array<{ readonly name: string; readonly pairs: () => Array<Pair> }> = [
  { name: "miniature holdout (km-en.mini.tsv, last 400)", pairs: () => tsv(path.join(repoRoot, "datasets/km-en-sample/km-en.mini.tsv")).slice(-400) }
]
const real = (name: string, files: ReadonlyArray<string>, read: () => Array<Pair>) => {
  if (files.every((f) => fs.existsSync(path.join(dataDir, f)))) sets.push({ name, pairs: read })
  else console.log(`skipped ${name}: ${files.map((f) => path.join(dataDir, f)).join(", ")} absent`)
}
real("mixed_real_pairs.en-km.tsv", ["mixed_real_pairs.en-km.tsv"], () => tsv(path.join(dataDir, "mixed_real_pairs.en-km.tsv")))
real("FLORES-200 devtest", ["flores200_devtest.eng_Latn", "flores200_devtest.khm_Khmr"], () =>
  parallel(path.join(dataDir, "flores200_devtest.eng_Latn"), path.join(dataDir, "flores200_devtest.khm_Khmr")))
real("NTREX-128", ["ntrex128.eng.txt", "ntrex128.khm.txt"], () => parallel(path.join(dataDir, "ntrex128.eng.txt"), path.join(dataDir, "ntrex128.khm.txt")))
real("Tatoeba", ["tatoeba-test-v2021-08-07.eng-khm.eng", "tatoeba-test-v2021-08-07.eng-khm.khm"], () =>
  parallel(path.join(dataDir, "tatoeba-test-v2021-08-07.eng-khm.eng"), path.join(dataDir, "tatoeba-test-v2021-08-07.eng-khm.khm")))

const pct = (a: number, b: number) => (b === 0 ? "–" : `${((100 * a) / b).toFixed(1)}%`)
const header = ["set", "pairs", "with English numbers", "English numbers", "copy ceiling", "Khmer has no numeral", "Khmer numerals differ", "Khmer numerals per pair"]
const rows: Array<Array<string>> = []
for (const set of sets) {
  const pairs = set.pairs()
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
  rows.push([
    set.name,
    String(pairs.length),
    String(withNumbers),
    String(numbers),
    pct(matched, numbers),
    pct(noNumeral, numbers),
    pct(differ, numbers),
    (numerals / Math.max(1, pairs.length)).toFixed(2)
  ])
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i])).join("  ")
console.log("The copy ceiling: the share of English numbers that the Khmer side's numerals, copied, would match")
console.log(line(header))
console.log(line(widths.map((w) => "-".repeat(w))))
for (const r of rows) console.log(line(r))
