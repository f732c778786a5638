/**
 * `node bench/ingest.ts [pairs]`: throughput and memory of the ingest and clean stages on a generated
 * ParaCrawl-style TSV (default 1,000,000 pairs, English ≈ 75 characters, Khmer ≈ 90 code points, 1% bad lines),
 * written to os.tmpdir() by a child process (so its memory does not count) and removed afterwards. Runs the
 * stages' `run` functions directly (no runner, no cache).
 *
 * Each measurement runs in a process of its own, so each peak RSS (process.resourceUsage().maxRSS) is that
 * step's alone. Prints, in order:
 * - the ingest stage (reader + Parquet writing of `pairs` and `ingest.quarantine`): pairs/s, wall and CPU time
 *   (all threads), peak RSS — the goal is ≥ 200k pairs/s with peak RSS < 300 MB;
 * - the corpus reader alone (decompress/split/parse/quarantine, no Parquet writing): lines/s;
 * - the clean stage on ingest's `pairs`: rows/s and peak RSS — the goal is ≥ 150k rows/s, < 300 MB.
 * Measurements, not verdicts; on a shared machine compare CPU seconds rather than wall seconds.
 * `KEEP=1` keeps the temporary folder (corpus and outputs) and prints its path.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Schema, Stream } from "effect"
import { readCorpus, readerOptions, resolveCorpus } from "../src/corpus/corpus.ts"
import { clean } from "../src/nodes/clean/stage.ts"
import { ingest } from "../src/nodes/ingest/stage.ts"
import type { Stage, StageContext } from "../src/pipeline/stage.ts"
import { CleanConfig } from "../src/nodes/clean/params.ts"
import { CorpusConfig } from "../src/corpus/spec.ts"

const PAIRS = process.argv[2] === undefined || process.argv[2].startsWith("--") ? 1_000_000 : Number(process.argv[2])

const EN_WORDS = (
  "the a of to and in is that for on with as was at by from this be are have it an which not were has their will " +
  "market school water people family government province village children river morning country health price time " +
  "year day city road rice house work students teacher doctor hospital report development project community money " +
  "Cambodia Phnom Penh Siem Reap Kampot new important local national many more after before during between about"
).split(" ")
const KM_WORDS = (
  "ការ និង នៅ ដែល បាន ជា មាន នេះ ក្នុង របស់ ពី ទៅ មួយ ត្រូវ ថា ដើម្បី ទេ គឺ ផ្សារ សាលារៀន ទឹក ប្រជាជន គ្រួសារ " +
  "រដ្ឋាភិបាល ខេត្ត ភូមិ កុមារ ទន្លេ ព្រឹក ប្រទេស សុខភាព តម្លៃ ពេល ឆ្នាំ ថ្ងៃ ទីក្រុង ផ្លូវ បាយ ផ្ទះ ការងារ សិស្ស " +
  "គ្រូបង្រៀន គ្រូពេទ្យ មន្ទីរពេទ្យ របាយការណ៍ ការអភិវឌ្ឍ គម្រោង សហគមន៍ ប្រាក់ កម្ពុជា ភ្នំពេញ សៀមរាប កំពត ថ្មី សំខាន់ " +
  "ក្នុងស្រុក ជាតិ ច្រើន បន្ទាប់ពី មុន អំឡុងពេល រវាង អំពី"
).split(" ")

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const sentence = (rand: () => number, words: ReadonlyArray<string>, n: number, sep: string, end: string): string => {
  const out: Array<string> = []
  for (let i = 0; i < n; i++) out.push(words[Math.floor(rand() * words.length)])
  return out.join(sep) + end
}

/** Writes the corpus in 4 MiB blocks; returns its size in bytes. */
const generateCorpus = (file: string, pairs: number): number => {
  const rand = mulberry32(42)
  const fd = fs.openSync(file, "w")
  let block: Array<string> = []
  let blockChars = 0
  let bytes = 0
  const flush = () => {
    const buf = Buffer.from(block.join(""), "utf8")
    fs.writeSync(fd, buf)
    bytes += buf.length
    block = []
    blockChars = 0
  }
  for (let i = 0; i < pairs; i++) {
    const n = 6 + Math.floor(rand() * 18) // ≈ 14 words ≈ 75 characters
    let line: string
    if (i % 100 === 99) line = sentence(rand, EN_WORDS, n, " ", ".") + "\n" // 1%: no tab → quarantined
    else {
      // Khmer: words joined without spaces, a space between phrases, ។ at the end
      const km = sentence(rand, KM_WORDS, Math.max(3, Math.round(n * 1.2)), rand() < 0.3 ? " " : "", "។")
      line = `${sentence(rand, EN_WORDS, n, " ", ".")}\t${km}\n`
    }
    block.push(line)
    blockChars += line.length
    if (blockChars > 4 << 20) flush()
  }
  flush()
  fs.closeSync(fd)
  return bytes
}

const context = <P>(stage: Stage<P>, params: P, inputs: Record<string, string>, dir: string): StageContext<P> => ({
  params,
  inputs,
  outputs: Object.fromEntries(stage.outputs.map((o) => [o.name, path.join(dir, `${stage.name}.${o.file}`)])),
  scratchDir: dir,
  runDir: dir,
  progress: () => ({ advance: () => {}, setTotal: () => {}, done: () => {} }),
  log: (m) => console.log(`  [${stage.name}] ${m}`)
})

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`
const cpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
const timed = async <A>(f: () => Promise<A>): Promise<{ seconds: number; cpu: number; value: A }> => {
  const t0 = process.hrtime.bigint()
  const c0 = cpuSeconds()
  const value = await f()
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuSeconds() - c0, value }
}
const rate = (n: number, s: number) => Math.round(n / s).toLocaleString("en-US")

/** One measurement, in this process (`--step <name> <dir> <corpus>`). */
const step = async (name: string, dir: string, corpus: string) => {
  const bytes = fs.statSync(corpus).size
  const params = Schema.decodeUnknownSync(CorpusConfig)({ path: corpus })
  const ictx = context(ingest, params, {}, dir)
  if (name === "ingest") {
    console.log(`RSS after loading the modules: ${mb(process.resourceUsage().maxRSS)}`)
    const ing = await timed(() => Effect.runPromise(ingest.run(ictx)))
    const pairs = ing.value.rows["pairs"]
    console.log(
      `ingest: ${pairs.toLocaleString("en-US")} pairs + ${ing.value.rows["ingest.quarantine"].toLocaleString("en-US")} quarantined ` +
        `in ${ing.seconds.toFixed(1)} s wall / ${ing.cpu.toFixed(1)} s CPU → ${rate(pairs, ing.seconds)} pairs/s ` +
        `(${rate(pairs, ing.cpu)} per CPU-second), ${(bytes / 1e6 / ing.seconds).toFixed(0)} MB/s; ` +
        `peak RSS ${mb(process.resourceUsage().maxRSS)}; pairs.parquet ${(fs.statSync(ictx.outputs["pairs"]).size / 1e6).toFixed(0)} MB`
    )
  } else if (name === "reader") {
    const reader = await timed(async () => {
      const plan = await Effect.runPromise(resolveCorpus(params))
      let n = 0
      await Effect.runPromise(
        readCorpus(plan, readerOptions(params)).pipe(Stream.runForEach((b) => Effect.sync(() => { n += b.pairs.length + b.bad.length })))
      )
      return n
    })
    console.log(
      `corpus reader alone (no Parquet writing): ${reader.value.toLocaleString("en-US")} lines in ${reader.seconds.toFixed(1)} s wall / ` +
        `${reader.cpu.toFixed(1)} s CPU → ${rate(reader.value, reader.seconds)} lines/s`
    )
  } else {
    console.log(`RSS after loading the modules: ${mb(process.resourceUsage().maxRSS)}`)
    const cctx = context(clean, Schema.decodeUnknownSync(CleanConfig)({}), { pairs: ictx.outputs["pairs"] }, dir)
    const cl = await timed(() => Effect.runPromise(clean.run(cctx)))
    const rows = cl.value.rows["clean"] + cl.value.rows["clean.rejects"]
    console.log(
      `clean: ${rows.toLocaleString("en-US")} rows in ${cl.seconds.toFixed(1)} s wall / ${cl.cpu.toFixed(1)} s CPU → ` +
        `${rate(rows, cl.seconds)} rows/s (${rate(rows, cl.cpu)} per CPU-second); peak RSS ${mb(process.resourceUsage().maxRSS)}`
    )
  }
}

const main = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-bench-ingest-"))
  try {
    const corpus = path.join(dir, "en-km.txt")
    const g0 = Date.now()
    const self = fileURLToPath(import.meta.url)
    const gen = spawnSync(process.execPath, [self, "--generate", corpus, String(PAIRS)], { stdio: "inherit" })
    if (gen.status !== 0) throw new Error(`corpus generation failed (exit ${gen.status ?? gen.signal})`)
    const bytes = fs.statSync(corpus).size
    console.log(`corpus: ${PAIRS.toLocaleString("en-US")} lines, ${(bytes / 1e6).toFixed(0)} MB (generated in ${((Date.now() - g0) / 1000).toFixed(1)} s)`)
    for (const name of ["ingest", "reader", "clean"]) {
      const r = spawnSync(process.execPath, [self, "--step", name, dir, corpus], { stdio: "inherit" })
      if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status ?? r.signal})`)
    }
  } finally {
    if (process.env["KEEP"] === "1") console.log(`kept ${dir}`)
    else fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === "--generate") {
  generateCorpus(process.argv[3], Number(process.argv[4]))
} else if (process.argv[2] === "--step") {
  await step(process.argv[3], process.argv[4], process.argv[5])
} else {
  await main()
}
