/**
 * chrF, as sacreBLEU 2.x computes it with its defaults (`CHRF()`: char_order 6, word_order 0, beta 2, whitespace
 * removed, case kept, effective-order averaging instead of eps smoothing).
 *
 * Per sentence and per order n = 1..6, the statistics are [hyp n-grams, ref n-grams, matched n-grams] where matches
 * are the clipped (multiset) intersection. The score averages precision and recall over the orders where both sides
 * have n-grams ("effective order"), then F_beta = (1+β²)·P·R / (β²·P + R), × 100. A corpus score sums the statistics
 * of all sentences first (it is not the mean of sentence scores).
 *
 * Gotchas: characters are Unicode code points (as Python indexes strings), so Khmer and other scripts are counted
 * per code point, not per UTF-16 unit or grapheme; whitespace removal follows Python's `str.split()` whitespace set.
 */

export interface ChrfOptions {
  /** Maximum character n-gram order (default 6). */
  readonly charOrder?: number
  /** Recall weight (default 2). */
  readonly beta?: number
  /** Keep whitespace inside n-grams (default false: all whitespace removed first). */
  readonly whitespace?: boolean
  /** Lowercase both sides first (default false). */
  readonly lowercase?: boolean
  /** chrF++.py-style eps smoothing instead of effective-order averaging (default false, as sacreBLEU). */
  readonly epsSmoothing?: boolean
}

const defaults = { charOrder: 6, beta: 2, whitespace: false, lowercase: false, epsSmoothing: false }
type Resolved = typeof defaults
const resolve = (o: ChrfOptions | undefined): Resolved => ({ ...defaults, ...o })

/** Python's `str.isspace()` characters (what `str.split()` splits on). */
const PY_WHITESPACE = /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu

/** The text as sacreBLEU sees it: optionally lowercased, whitespace removed unless kept. */
export const preprocess = (text: string, options?: ChrfOptions): string => {
  const o = resolve(options)
  const cased = o.lowercase ? text.toLowerCase() : text
  return o.whitespace ? cased : cased.replace(PY_WHITESPACE, "")
}

/** Counts of the character n-grams of order `n` (code points) of an already preprocessed string. */
export const charNgrams = (text: string, n: number): Map<string, number> => {
  const chars = Array.from(text)
  const counts = new Map<string, number>()
  for (let i = 0; i + n <= chars.length; i++) {
    const gram = chars.slice(i, i + n).join("")
    counts.set(gram, (counts.get(gram) ?? 0) + 1)
  }
  return counts
}

/** Flattened statistics: for each order, [hyp count, ref count, matches]. Length 3 × charOrder. */
export type ChrfStats = ReadonlyArray<number>

/** Sentence statistics against a single reference. */
export const sentenceStats = (hypothesis: string, reference: string, options?: ChrfOptions): Array<number> => {
  const o = resolve(options)
  const hyp = preprocess(hypothesis, o)
  const ref = preprocess(reference, o)
  const stats: Array<number> = []
  for (let n = 1; n <= o.charOrder; n++) {
    const h = charNgrams(hyp, n)
    const r = charNgrams(ref, n)
    let hypCount = 0
    let refCount = 0
    let match = 0
    for (const c of h.values()) hypCount += c
    for (const [gram, c] of r) {
      refCount += c
      match += Math.min(c, h.get(gram) ?? 0)
    }
    stats.push(hypCount, refCount, match)
  }
  return stats
}

/** The chrF score (0–100) of a statistics vector. */
export const scoreFromStats = (stats: ChrfStats, options?: ChrfOptions): number => {
  const o = resolve(options)
  if (stats.length !== 3 * o.charOrder) {
    throw new RangeError(`chrF: expected ${3 * o.charOrder} statistics, got ${stats.length}`)
  }
  const eps = 1e-16
  const factor = o.beta ** 2
  let epsScore = 0
  let avgPrec = 0
  let avgRec = 0
  let effectiveOrder = 0
  for (let i = 0; i < o.charOrder; i++) {
    const nHyp = stats[3 * i]
    const nRef = stats[3 * i + 1]
    const nMatch = stats[3 * i + 2]
    const prec = nHyp > 0 ? nMatch / nHyp : eps
    const rec = nRef > 0 ? nMatch / nRef : eps
    const denom = factor * prec + rec
    epsScore += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec
      avgRec += rec
      effectiveOrder++
    }
  }
  if (o.epsSmoothing) return (100 * epsScore) / o.charOrder
  if (effectiveOrder === 0) return 0
  avgPrec /= effectiveOrder
  avgRec /= effectiveOrder
  if (avgPrec + avgRec === 0) return 0
  return (100 * (1 + factor) * avgPrec * avgRec) / (factor * avgPrec + avgRec)
}

/** Statistics against one or several references: with several, those of the best-scoring reference (sacreBLEU). */
const bestStats = (hypothesis: string, references: string | ReadonlyArray<string>, o: Resolved): Array<number> => {
  const refs = typeof references === "string" ? [references] : references
  if (refs.length === 0) throw new RangeError("chrF: no reference given")
  let best: Array<number> = []
  let bestScore = -1
  for (const ref of refs) {
    const stats = sentenceStats(hypothesis, ref, o)
    const score = scoreFromStats(stats, o)
    if (score > bestScore) {
      bestScore = score
      best = stats
    }
  }
  return best
}

/** Sentence-level chrF (0–100). */
export const sentenceChrf = (
  hypothesis: string,
  references: string | ReadonlyArray<string>,
  options?: ChrfOptions
): number => {
  const o = resolve(options)
  return scoreFromStats(bestStats(hypothesis, references, o), o)
}

/** Corpus-level chrF (0–100): statistics summed over sentences, then scored once. */
export const corpusChrf = (
  hypotheses: ReadonlyArray<string>,
  references: ReadonlyArray<string | ReadonlyArray<string>>,
  options?: ChrfOptions
): number => {
  const o = resolve(options)
  if (hypotheses.length !== references.length) {
    throw new RangeError(`chrF: ${hypotheses.length} hypotheses but ${references.length} references`)
  }
  const total: Array<number> = new Array<number>(3 * o.charOrder).fill(0)
  hypotheses.forEach((hyp, i) => {
    const stats = bestStats(hyp, references[i], o)
    for (let k = 0; k < total.length; k++) total[k] += stats[k]
  })
  return scoreFromStats(total, o)
}
