/**
 * `npm run bench -- beyond`: the remedies beyond the paper against plain LLINK on the embedded default, one run each
 * in one shared cache (`bench/variants.ts` prints the tables: exact-number match, chrF and LLINK's prompt tokens with
 * their intervals, and each variant's paired change against the default):
 * - the number pathway (`stageB.numbers=copy`), and the number pathway at K = 4;
 * - the number pointer (`generate.copyNumbers=on`: every system's numbers copied from the foreign text at decoding),
 *   alone and with the number pathway;
 * - the number drill (`models.pretrain.numberDrill`: a decoder that knows every number token), alone (its control)
 *   and with the number pathway, also with the decoder pretrained 1,000 steps instead of 300 (and, as their control,
 *   the 1,000-step decoder without the drill, alone and with the number pathway);
 * - dynamic K (`stageB.slotPolicy` byLength, min 2, max 8, 2 or 3 encoder tokens per slot; the decoder's 8 slot tokens,
 *   so the models stage is shared with the default), alone and with the number pathway;
 * - fixed K ∈ {1, 2, 4, 16} beside the default's 8, for the tokens–quality trade-off, drawn as an SVG (LLINK's chrF
 *   and exact-number match against its mean prompt tokens, and the dynamic policies' points) written next to the runs.
 * `BENCH_BEYOND=name,name` runs a subset; `BENCH_BEYOND_DIR` keeps the cache between calls (default: a fresh temporary
 * folder).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { lineChartSvg } from "../src/plots/svg.ts"
import { runVariants, type Variant } from "./variants.ts"

const FIXED_K = [1, 2, 4, 8, 16] as const

const byLength = (r: number) => `stageB.slotPolicy={"byLength":{"min":2,"max":8,"tokensPerSlot":${r}}}`
// names carry no commas: BENCH_BEYOND is a comma-separated list of them
const DYNAMIC = ["dynamic K (r = 2)", "dynamic K (r = 3)", "numbers: copy + dynamic K (r = 3)"] as const

const VARIANTS: ReadonlyArray<Variant> = [
  ["default", []],
  ["numbers: copy", ["stageB.numbers=copy"]],
  [DYNAMIC[0], [byLength(2)]],
  [DYNAMIC[1], [byLength(3)]],
  [DYNAMIC[2], ["stageB.numbers=copy", byLength(3)]],
  ["numbers: copy at K = 4", ["stageB.numbers=copy", `stageB.slotPolicy={"fixed":4}`]],
  ["numbers: pointer", ["generate.copyNumbers=on"]],
  ["numbers: copy + pointer", ["stageB.numbers=copy", "generate.copyNumbers=on"]],
  ["number drill", ["models.pretrain.numberDrill=true"]],
  ["numbers: copy + number drill", ["stageB.numbers=copy", "models.pretrain.numberDrill=true"]],
  ["numbers: copy + number drill + 1000 decoder steps", ["stageB.numbers=copy", "models.pretrain.numberDrill=true", "models.pretrain.decoderSteps=1000"]],
  // the control of the line above: the longer pretraining without the drill
  ["1000 decoder steps", ["models.pretrain.decoderSteps=1000"]],
  ["numbers: copy + 1000 decoder steps", ["stageB.numbers=copy", "models.pretrain.decoderSteps=1000"]],
  // K below the decoder's 8 slot tokens is a Stage B setting ({ fixed: K }), so the models stage is the default's;
  // K = 16 needs 16 slot tokens, so models.slots (and the models stage) changes
  ...FIXED_K.filter((k) => k !== 8).map((k): Variant => [`K = ${k}`, [k < 8 ? `stageB.slotPolicy={"fixed":${k}}` : `models.slots=${k}`]])
]

const dir = process.env.BENCH_BEYOND_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), "llink-beyond-"))
const results = runVariants(VARIANTS, { label: "beyond", dir, only: process.env.BENCH_BEYOND?.split(",").map((s) => s.trim()) })

/** (mean LLINK prompt tokens, value) of the fixed-K runs that finished, in K order. */
const curve = (value: (r: NonNullable<ReturnType<typeof results.get>>) => number | null | undefined): Array<readonly [number, number]> =>
  FIXED_K.flatMap((k) => {
    const r = results.get(k === 8 ? "default" : `K = ${k}`)
    const x = r?.tokens?.llink.mean
    const y = r === undefined ? undefined : value(r)
    return x === undefined || y === undefined || y === null ? [] : [[x, y] as const]
  })
const chrf = curve((r) => r.generation?.["llink"]?.chrf)
if (chrf.length >= 2) {
  const numbers = curve((r) => {
    const rate = r.generation?.["llink"]?.numberMatchRate
    return rate === null || rate === undefined ? null : 100 * rate
  })
  /** (mean LLINK prompt tokens, LLINK chrF) of the named runs that finished, by prompt tokens. */
  const chrfOf = (names: ReadonlyArray<string>) =>
    names.flatMap((name) => {
      const r = results.get(name)
      const x = r?.tokens?.llink.mean
      const y = r?.generation?.["llink"]?.chrf
      return x === undefined || y === undefined ? [] : [[x, y] as const]
    }).sort((a, b) => a[0] - b[0])
  const withNumbers = chrfOf(["numbers: copy at K = 4", "numbers: copy"])
  const dynamic = chrfOf(DYNAMIC.slice(0, 2))
  const svg = lineChartSvg(
    [
      { name: "LLINK chrF, fixed K = 1, 2, 4, 8, 16", points: chrf },
      { name: "LLINK exact-number match (%), fixed K", points: numbers },
      { name: "LLINK chrF with the number pathway (K = 4, 8)", points: withNumbers },
      { name: "LLINK chrF, dynamic K (r = 3, 2 encoder tokens per slot)", points: dynamic }
    ],
    { title: "Tokens against quality: LLINK on the embedded default", xLabel: "mean LLINK prompt tokens", yLabel: "chrF / % of numbers" }
  )
  const file = path.join(dir, "tokens-quality.svg")
  fs.writeFileSync(file, svg)
  console.log(`tokens–quality plot: ${file}`)
}
