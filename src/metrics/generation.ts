/**
 * Generation quality of every evaluated system, from the `generations` table (results.json `generation`):
 *
 * - chrF (sacreBLEU's chrF: character n-grams 1–6, β = 2, `sentenceChrf`) of each output against the example's
 *   target answer (for `translate_to_english` that is the pair's English), as the mean sentence score per task
 *   type and over all examples, with a seeded 95% bootstrap interval over examples;
 * - the exact-number match rate: of the numbers in the target (`extractNumbers`, Khmer digits read as Latin), the
 *   share whose value appears in the output (`numericFidelity`'s value recall, micro-averaged);
 * - the mean output length in characters.
 */
import { bootstrapIntervals } from "./bootstrap.ts"
import { sentenceChrf } from "./chrf.ts"
import { numericFidelity } from "./numeric.ts"
import type { GenerationSystemQuality } from "../schemas/generation.ts"

export interface GenerationExample {
  readonly task_type: string
  readonly target: string
  readonly output: string
}

const meanOf = (xs: ArrayLike<number>, idx?: Int32Array): number => {
  const n = idx === undefined ? xs.length : idx.length
  if (n === 0) return 0
  let s = 0
  for (let i = 0; i < n; i++) s += xs[idx === undefined ? i : idx[i]]
  return s / n
}

/** The quality of one system's outputs (see the module comment). `label` names its bootstrap stream. */
export const systemQuality = (
  examples: ReadonlyArray<GenerationExample>,
  options: { readonly resamples?: number; readonly seed?: number; readonly label?: string } = {}
): GenerationSystemQuality => {
  const scores = Float64Array.from(examples, (e) => sentenceChrf(e.output, e.target))
  const byTask: Record<string, Array<number>> = {}
  examples.forEach((e, i) => (byTask[e.task_type] ??= []).push(scores[i]))
  const mentions = new Float64Array(examples.length)
  const found = new Float64Array(examples.length)
  examples.forEach((e, i) => {
    const f = numericFidelity(e.target, e.output)
    mentions[i] = f.mentions
    found[i] = f.valuesMatched
  })
  const numbers = mentions.reduce((a, b) => a + b, 0)
  const matched = found.reduce((a, b) => a + b, 0)
  const rate = (idx: Int32Array): number | null => {
    let m = 0
    let f = 0
    for (let k = 0; k < idx.length; k++) {
      m += mentions[idx[k]]
      f += found[idx[k]]
    }
    return m === 0 ? null : f / m
  }
  const ci = bootstrapIntervals(examples.length, { chrf: (idx) => (idx.length === 0 ? null : meanOf(scores, idx)), numbers: rate }, {
    resamples: options.resamples ?? 1000,
    seed: options.seed ?? 0,
    label: `generation:${options.label ?? ""}`
  })
  return {
    n: examples.length,
    chrf: meanOf(scores),
    chrfCI: examples.length === 0 ? null : ci.chrf,
    chrfByTask: Object.fromEntries(Object.entries(byTask).sort(([a], [b]) => a.localeCompare(b)).map(([t, xs]) => [t, meanOf(xs)])),
    numbers,
    numbersMatched: matched,
    numberMatchRate: numbers === 0 ? null : matched / numbers,
    numberMatchCI: numbers === 0 ? null : ci.numbers,
    meanChars: meanOf(examples.map((e) => [...e.output].length))
  }
}
