/**
 * `npm run bench -- stageASweep`: how the embedded default's Stage A settings were chosen, without looking at the
 * evaluation slice. Each setting is a `llink run --until retrieval` on one shared cache (so the models, encode and
 * teacher stages run once); its projector is scored by cosine R@1 on the holdout rows 200–399 (the **dev** slice:
 * holdout pairs the evaluation, rows 0–199 = `split.evalN`, does not use), and, for the record only, on the eval
 * slice. The settings are chosen on dev R@1 alone (averaged over seeds where a tie needs it).
 *
 * Settings (`--set` pairs over `llink.config.json`; "paper's" is the authors' code's lr and temperatures at the
 * miniature's batch of 32, the default before this sweep): the learning rate, then at the best one dropout,
 * weight decay, the final temperature, the batch and the temperature schedule, then two more seeds of the two best.
 * `BENCH_SWEEP=name,name` runs a subset; `BENCH_SWEEP_DIR` keeps the work folder.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { loadProjectorDir } from "../src/artifacts/projector.ts"
import { readMatrixHead } from "../src/artifacts/matrixHead.ts"
import * as Projector from "../src/models/projector.ts"
import { projectRows } from "../src/metrics/projectorRetrieval.ts"
import { goldRanks } from "../src/metrics/retrieval.ts"
import { matMulABtJs } from "../src/train/hostMath.ts"
import { llinkRun, variantRunDir } from "./variants.ts"

const PAPER = ["stageA.lr=0.001", "stageA.tauStart=0.17", "stageA.tauEnd=0.08", "stageA.microBatch=32"]
const AT = (lr: number) => [`stageA.lr=${lr}`, "stageA.tauStart=0.17", "stageA.tauEnd=0.08", "stageA.microBatch=32"]
const BEST_LR = AT(0.01)
const SCHEDULE = ["stageA.tauStart=0.1", "stageA.tauEnd=0.05"]
const SETTINGS: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  ["paper's lr 0.001", PAPER],
  ["lr 0.003", AT(0.003)],
  ["lr 0.01", BEST_LR],
  ["lr 0.03", AT(0.03)],
  ["lr 0.1", AT(0.1)],
  ["lr 0.01, dropout 0", [...BEST_LR, "stageA.dropout=0"]],
  ["lr 0.01, weight decay 0", [...BEST_LR, "stageA.weightDecay=0"]],
  ["lr 0.01, tau end 0.05", [...BEST_LR, "stageA.tauEnd=0.05"]],
  ["lr 0.01, batch 64", [...BEST_LR, "stageA.microBatch=64"]],
  ["lr 0.01, tau 0.1 to 0.05", [...BEST_LR, ...SCHEDULE]],
  ["lr 0.01, tau 0.07 to 0.05", [...BEST_LR, "stageA.tauStart=0.07", "stageA.tauEnd=0.05"]],
  ["lr 0.01, tau 0.1 to 0.03", [...BEST_LR, "stageA.tauStart=0.1", "stageA.tauEnd=0.03"]],
  ["lr 0.01, tau 0.1 to 0.05, batch 64", [...BEST_LR, ...SCHEDULE, "stageA.microBatch=64"]],
  ["lr 0.02, tau 0.1 to 0.05", [...AT(0.02), ...SCHEDULE]],
  ...[18, 19].flatMap((seed): Array<readonly [string, ReadonlyArray<string>]> => [
    [`lr 0.01, tau 0.1 to 0.05, seed ${seed}`, [...BEST_LR, ...SCHEDULE, `stageA.seed=${seed}`]],
    [`lr 0.01, tau 0.1 to 0.05, batch 64, seed ${seed}`, [...BEST_LR, ...SCHEDULE, "stageA.microBatch=64", `stageA.seed=${seed}`]]
  ])
]

/** Cosine R@1 of the run's projector on holdout rows [from, to). */
const r1 = async (runDir: string, from: number, to: number): Promise<number> => {
  const art = path.join(runDir, "artifacts")
  const { config, host } = await Effect.runPromise(loadProjectorDir(path.join(art, "projector")))
  const z = await Effect.runPromise(readMatrixHead(path.join(art, "zF.holdout.arrow"), to))
  const h = await Effect.runPromise(readMatrixHead(path.join(art, "hE.holdout.arrow"), to))
  if (z.rows < to || h.rows < to) throw new Error(`${art}: the holdout has ${Math.min(z.rows, h.rows)} rows, fewer than ${to}`)
  const proj = Projector.fromHost(config, host, { trainable: false })
  try {
    const p = await projectRows(proj, z, to)
    const d = h.dim
    const ranks = goldRanks(p.subarray(from * d, to * d), h.data.subarray(from * d, to * d), d, { matmul: matMulABtJs, normalize: true })
    return ranks.filter((r) => r === 1).length / (to - from)
  } finally {
    Projector.dispose(proj)
  }
}

const only = process.env.BENCH_SWEEP?.split(",").map((s) => s.trim())
const work = process.env.BENCH_SWEEP_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), "llink-stageA-sweep-"))
fs.mkdirSync(work, { recursive: true })
const rows: Array<Array<string>> = []
for (const [name, sets] of SETTINGS) {
  if (only !== undefined && !only.includes(name)) continue
  const runDir = variantRunDir(work, name)
  const r = llinkRun(runDir, path.join(work, "cache"), sets, ["--until", "retrieval"])
  if (r.status !== 0) {
    console.log(`${name}: llink run exited ${r.status}\n${r.stderr.slice(-2000)}`)
    continue
  }
  const seconds = r.seconds.toFixed(0)
  rows.push([name, (await r1(runDir, 200, 400)).toFixed(3), (await r1(runDir, 0, 200)).toFixed(3), `${seconds} s`])
  console.log(`${name}: done in ${seconds} s`)
}
const header = ["setting", "dev R@1 (holdout rows 200-399)", "eval R@1 (rows 0-199, not used to choose)", "run time"]
console.log(`\n| ${header.join(" | ")} |\n| ${header.map(() => "---").join(" | ")} |`)
for (const row of rows) console.log(`| ${row.join(" | ")} |`)
console.log(`\n(work folder: ${work})`)
