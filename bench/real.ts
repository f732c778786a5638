/**
 * `npm run bench -- real`: the real-text tier of the miniature (issue "The method, visible"), on
 * `../shared/data/km-en/` (skipped, with a message, when that folder is absent):
 * - the corpus is `mixed_real_pairs.en-km.tsv` (NTREX, TICO-19, WMT20; 8,684 pairs), split as usual;
 * - the tiny models are pretrained on its training split's monolingual sides (the `models` stage: masked-LM on both
 *   sides for the encoder, English only for the decoder), and Stage A trains on its pairs;
 * - retrieval is measured on the named test sets FLORES-200 devtest (1,012 pairs; none of its English is in the
 *   training file) and Tatoeba (726), through `eval.testSets` (the `testSets` stage: both ways, cosine, margin and
 *   CSLS, 95% bootstrap intervals, contamination against the training split).
 *
 * It is two ordinary runs per arm on one cache, `llink run --until retrieval` and `--until testSets`:
 * - `pretrained`: the tiny models pretrained as above;
 * - `random`: the same chain on unpretrained tiny models (the control: what pretraining brings).
 * `BENCH_REAL_DIR` keeps the work folder (cache, runs) between calls; `BENCH_REAL_ARMS=pretrained` runs a subset.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dataDir = path.resolve(repoRoot, "../shared/data/km-en")
const mixed = path.join(dataDir, "mixed_real_pairs.en-km.tsv")
const floresEn = path.join(dataDir, "flores200_devtest.eng_Latn")
const floresKm = path.join(dataDir, "flores200_devtest.khm_Khmr")

if (![mixed, floresEn, floresKm].every((f) => fs.existsSync(f))) {
  console.log(`skipped: the real-text tier needs ${dataDir} (mixed_real_pairs.en-km.tsv and FLORES-200 devtest), which is absent`)
  process.exit(0)
}

const work = process.env.BENCH_REAL_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-real-"))
fs.mkdirSync(work, { recursive: true })
const tatoebaEn = path.join(dataDir, "tatoeba-test-v2021-08-07.eng-khm.eng")
const tatoebaKm = path.join(dataDir, "tatoeba-test-v2021-08-07.eng-khm.khm")

const config = {
  cacheDir: path.join(work, "cache"),
  corpus: { path: mixed, format: "tsv", englishLang: "en", foreignLang: "km" },
  // clean keeps 8,674 of the 8,684 pairs
  split: { train: 8400, holdout: 200, evalN: 200 },
  models: {
    encoder: "tiny",
    decoder: "tiny",
    tinySize: "mini",
    tinyTokenizerPairs: 4000,
    pretrain: { decoderSteps: 600, encoderSteps: 600 }
  },
  encode: { batchSize: 32 },
  teacher: { batchSize: 16 },
  stageA: { steps: 5000, microBatch: 32, accumulation: 1, queueSize: 1024, hardNegatives: 64, warmupSteps: 300, checkpointEvery: 1000, evalEvery: 1000 },
  retrieval: { pools: [100] },
  eval: {
    testSets: [
      { name: "flores200-devtest", corpus: { path: floresEn, pairPath: floresKm, format: "moses", englishLang: "eng_Latn", foreignLang: "khm_Khmr" } },
      ...(fs.existsSync(tatoebaEn) && fs.existsSync(tatoebaKm)
        ? [{ name: "tatoeba", corpus: { path: tatoebaEn, pairPath: tatoebaKm, format: "moses", englishLang: "eng", foreignLang: "khm" } }]
        : [])
    ]
  }
}
const configFile = path.join(work, "real.config.json")
fs.writeFileSync(configFile, JSON.stringify(config, null, 2) + "\n")

const ARMS: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  ["pretrained", []],
  ["random", ["--set", "models.pretrain.decoderSteps=0", "--set", "models.pretrain.encoderSteps=0"]]
]
const only = process.env.BENCH_REAL_ARMS?.split(",").map((s) => s.trim())

interface Metrics {
  readonly n: number
  readonly r1: number
  readonly r10: number
  readonly mrr: number
  readonly chanceR1: number
  readonly r1CI: { readonly lo: number; readonly hi: number } | null
}
interface TestSet {
  readonly name: string
  readonly n: number
  readonly contaminatedEnglish: number
  readonly contaminatedForeign: number
  readonly stageA: Metrics
  readonly suite: { readonly grid: ReadonlyArray<{ readonly direction: string; readonly scoring: string; readonly metrics: Metrics }> }
}
interface Results {
  readonly retrieval: { readonly stageA: Metrics | null; readonly testSets: Readonly<Record<string, TestSet>> | null }
  readonly pretrain: { readonly decoder: { firstLoss: number | null; finalLoss: number | null } | null; readonly encoder: { firstLoss: number | null; finalLoss: number | null } | null } | null
}

const pct = (x: number) => (100 * x).toFixed(1)
const ci = (m: Metrics) => `${pct(m.r1)} [${m.r1CI === null ? "?" : `${pct(m.r1CI.lo)}, ${pct(m.r1CI.hi)}`}]`
const rows: Array<Array<string>> = []
console.log(`work folder: ${work}`)
for (const [name, extra] of ARMS) {
  if (only !== undefined && !only.includes(name)) continue
  // two runs on one cache: `--until retrieval` (the holdout's Table 1), then `--until testSets` (the named sets)
  const runs: Array<Results> = []
  const started = Date.now()
  let failed = false
  for (const until of ["retrieval", "testSets"]) {
    const runDir = path.join(work, "runs", `${name}-${until}`)
    console.log(`\n-- ${name}: llink run --until ${until} ${extra.join(" ")}`)
    const r = spawnSync(process.execPath, [path.join(repoRoot, "bin/llink.mjs"), "run", "--config", configFile, "--run-dir", runDir, "--until", until, ...extra], {
      cwd: repoRoot,
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, OPENAI_BASE_URL: "" }
    })
    if (r.status !== 0) {
      console.log(`-- ${name}: llink run --until ${until} exited ${r.status ?? r.signal}`)
      failed = true
      break
    }
    runs.push(JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8")) as Results)
  }
  const seconds = (Date.now() - started) / 1000
  if (failed) continue
  const results: Results = { retrieval: { stageA: runs[0].retrieval.stageA, testSets: runs[1].retrieval.testSets }, pretrain: runs[0].pretrain }
  const dec = results.pretrain?.decoder
  const enc = results.pretrain?.encoder
  console.log(`-- ${name}: ${seconds.toFixed(0)} s; decoder LM ${dec?.firstLoss?.toFixed(2) ?? "–"} → ${dec?.finalLoss?.toFixed(2) ?? "–"}, encoder MLM ${enc?.firstLoss?.toFixed(2) ?? "–"} → ${enc?.finalLoss?.toFixed(2) ?? "–"}`)
  const holdout = results.retrieval.stageA
  if (holdout !== null) rows.push([name, "holdout (mixed)", String(holdout.n), "–", ci(holdout), `${(holdout.r1 / holdout.chanceR1).toFixed(1)}×`, pct(holdout.r10), "", "", ""])
  for (const t of Object.values(results.retrieval.testSets ?? {})) {
    const cell = (direction: string, scoring: string) => {
      const m = t.suite.grid.find((g) => g.direction === direction && g.scoring === scoring)?.metrics
      return m === undefined ? "–" : pct(m.r1)
    }
    rows.push([
      name,
      t.name,
      String(t.n),
      `${t.contaminatedEnglish} / ${t.contaminatedForeign}`,
      ci(t.stageA),
      `${(t.stageA.r1 / t.stageA.chanceR1).toFixed(1)}×`,
      pct(t.stageA.r10),
      cell("foreign→english", "margin"),
      cell("english→foreign", "cosine"),
      cell("english→foreign", "margin")
    ])
  }
  rows.push([name, `(${seconds.toFixed(0)} s)`, "", "", "", "", "", "", "", ""])
}

const header = ["arm", "set", "n", "in train en/km", "R@1 % km→en cosine [95% CI]", "R@1 / chance", "R@10 %", "R@1 % km→en margin", "R@1 % en→km cosine", "R@1 % en→km margin"]
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
console.log("\nStage A retrieval: the holdout, then each named test set")
for (const r of [header, widths.map((w) => "-".repeat(w)), ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  "))
if (process.env.BENCH_REAL_DIR === undefined) fs.rmSync(work, { recursive: true, force: true })
