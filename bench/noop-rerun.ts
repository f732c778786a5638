/**
 * Time of a no-op rerun of the default pipeline (every stage cached): what a user waits for after `npx llink run`
 * when nothing changed. Uses the default config and run dir, so a warm cache from an earlier `npx llink run` is reused;
 * on a cold cache the first (full) run takes a few minutes and is reported separately. Target: < 2 s.
 */
import { spawnSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const run = (): number => {
  const t0 = performance.now()
  const r = spawnSync(process.execPath, [join(root, "bin/llink.mjs"), "run"], { cwd: root, encoding: "utf8" })
  if (r.status !== 0) throw new Error(`llink run failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
  return (performance.now() - t0) / 1000
}

const first = run()
console.log(`first run (fills the cache if cold): ${first.toFixed(1)} s`)
const times = [run(), run(), run()].sort((a, b) => a - b)
console.log(`no-op rerun: median ${times[1].toFixed(2)} s (min ${times[0].toFixed(2)}, max ${times[2].toFixed(2)}); target < 2 s → ${(times[1] / 2).toFixed(2)}× of target`)
