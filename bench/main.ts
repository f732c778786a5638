/**
 * `npm run bench`: runs every benchmark script in its own process (so peak RSS is per benchmark) and prints each
 * one's output. Benchmarks print ratios and fractions of measured peaks, never pass/fail verdicts.
 * `npm run bench -- ingest backend` runs a subset.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const all = ["backend", "kernels", "artifacts", "ingest", "parquetRead", "noop-rerun", "stageA", "fallback", "cluster", "ablations", "beyond", "numerals", "stageASweep", "real"]
const wanted = process.argv.slice(2)
const chosen = wanted.length > 0 ? wanted : all

for (const name of chosen) {
  const file = join(here, `${name}.ts`)
  if (!existsSync(file)) {
    console.log(`\n== ${name}: (no bench/${name}.ts yet)`)
    continue
  }
  console.log(`\n== ${name} (bench/${name}.ts)`)
  const started = Date.now()
  const r = spawnSync(process.execPath, [file], { stdio: "inherit" })
  console.log(`== ${name}: exit ${r.status ?? r.signal}, ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
