/**
 * chrF against (1) a separate plain-loop reference computation written here, (2) values worked out by hand, and
 * (3) the values published in sacreBLEU's own test suite and the Hugging Face metric card.
 */
import { describe, expect, it } from "vitest"
import { charNgrams, corpusChrf, preprocess, scoreFromStats, sentenceChrf, sentenceStats } from "../../src/metrics/chrf.ts"

/** Plain-loop chrF (effective-order averaging, whitespace removed), independent of the module. */
const referenceChrf = (hyps: Array<string>, refs: Array<string>, beta = 2, order = 6): number => {
  const hypTotal: Array<number> = []
  const refTotal: Array<number> = []
  const matchTotal: Array<number> = []
  for (let n = 0; n < order; n++) {
    hypTotal.push(0)
    refTotal.push(0)
    matchTotal.push(0)
  }
  for (let s = 0; s < hyps.length; s++) {
    const hypChars: Array<string> = []
    for (const ch of hyps[s]) if (!/\s/.test(ch)) hypChars.push(ch)
    const refChars: Array<string> = []
    for (const ch of refs[s]) if (!/\s/.test(ch)) refChars.push(ch)
    for (let n = 1; n <= order; n++) {
      const hypCounts: Record<string, number> = {}
      const refCounts: Record<string, number> = {}
      for (let i = 0; i + n <= hypChars.length; i++) {
        let g = ""
        for (let k = i; k < i + n; k++) g += hypChars[k]
        hypCounts[g] = (hypCounts[g] ?? 0) + 1
        hypTotal[n - 1] += 1
      }
      for (let i = 0; i + n <= refChars.length; i++) {
        let g = ""
        for (let k = i; k < i + n; k++) g += refChars[k]
        refCounts[g] = (refCounts[g] ?? 0) + 1
        refTotal[n - 1] += 1
      }
      for (const g of Object.keys(refCounts)) {
        const h = hypCounts[g] ?? 0
        matchTotal[n - 1] += h < refCounts[g] ? h : refCounts[g]
      }
    }
  }
  let p = 0
  let r = 0
  let eff = 0
  for (let n = 0; n < order; n++) {
    if (hypTotal[n] > 0 && refTotal[n] > 0) {
      p += matchTotal[n] / hypTotal[n]
      r += matchTotal[n] / refTotal[n]
      eff += 1
    }
  }
  if (eff === 0) return 0
  p /= eff
  r /= eff
  if (p + r === 0) return 0
  return (100 * (1 + beta * beta) * p * r) / (beta * beta * p + r)
}

describe("chrF", () => {
  it("matches hand-computed values on tiny strings", () => {
    // "aa" vs "ab": order 1 → P=R=1/2; order 2 → P=R=0; higher orders absent. Mean P=R=1/4 → F=25.
    expect(sentenceChrf("aa", "ab")).toBeCloseTo(25, 10)
    // "abc" vs "abd": P=R = (2/3 + 1/2 + 0)/3 = 7/18 → 38.888…
    expect(sentenceChrf("abc", "abd")).toBeCloseTo(700 / 18, 10)
    // "ab" vs "abc": P = (1 + 1)/2 = 1, R = (2/3 + 1/2)/2 = 7/12 → F2 = 5·(7/12)/(4 + 7/12) = 7/11.
    expect(sentenceChrf("ab", "abc")).toBeCloseTo(700 / 11, 10)
    // Recall-weighted: the reverse direction is lower (P = 7/12, R = 1 → 5·(7/12)/(4·7/12 + 1) = 35/40).
    expect(sentenceChrf("abc", "ab")).toBeCloseTo(87.5, 10)
    expect(sentenceChrf("same text", "same text")).toBe(100)
    expect(sentenceChrf("", "reference")).toBe(0)
    expect(sentenceChrf("xyz", "abc")).toBe(0)
  })

  it("ignores all whitespace by default and counts code points", () => {
    expect(preprocess(" a\tb \n c\u00a0d\u3000e ")).toBe("abcde")
    expect(sentenceChrf("a b c", "abc")).toBe(100)
    // Zero-width space is not whitespace (as in Python): it stays a character.
    expect(preprocess("a\u200bb")).toBe("a\u200bb")
    expect(charNgrams("ក្ខ", 1).size).toBe(3)
    expect([...charNgrams("ក្ខ", 2).keys()]).toEqual(["ក្", "្ខ"])
  })

  const cases: Array<[string, string]> = [
    ["The cat sat on the mat.", "The cat is on the mat."],
    ["A solar plant of 5 MW opened.", "A 5 kW solar plant opened in Phnom Penh."],
    ["ភ្នំពេញ ជា រាជធានី", "ភ្នំពេញគឺជារាជធានី"],
    ["", "x"],
    ["short", "a much longer reference sentence"]
  ]
  it("agrees with the plain-loop reference per sentence and per corpus", () => {
    for (const [h, r] of cases) {
      expect(sentenceChrf(h, r)).toBeCloseTo(referenceChrf([h], [r]), 10)
      expect(sentenceChrf(h, r, { beta: 3 })).toBeCloseTo(referenceChrf([h], [r], 3), 10)
    }
    const hyps = cases.map((c) => c[0])
    const refs = cases.map((c) => c[1])
    expect(corpusChrf(hyps, refs)).toBeCloseTo(referenceChrf(hyps, refs), 10)
    // The corpus score sums statistics; it is not the mean of sentence scores.
    const mean = cases.reduce((a, [h, r]) => a + sentenceChrf(h, r), 0) / cases.length
    expect(Math.abs(corpusChrf(hyps, refs) - mean)).toBeGreaterThan(0.01)
  })

  it("reproduces values published with sacreBLEU and the HF chrF metric card", () => {
    // Hugging Face `chrf` metric card (sacreBLEU defaults).
    expect(
      corpusChrf(
        ["The relationship between Obama and Netanyahu is not exactly friendly."],
        ["The ties between Obama and Netanyahu are not particularly friendly."]
      )
    ).toBeCloseTo(61.576379378113785, 8)
    expect(
      corpusChrf(
        [
          "The relationship between cats and dogs is not exactly friendly.",
          "a good bookshop is just a genteel black hole that knows how to read."
        ],
        [
          "The relationship between dogs and cats is not exactly friendly.",
          "A good bookshop is just a genteel Black Hole that knows how to read."
        ]
      )
    ).toBeCloseTo(84.64214891738334, 8)
    // sacreBLEU test_chrf.py, effective-order mode (beta 3).
    const eff: Array<[Array<string>, Array<string>, number]> = [
      [["a"], ["a"], 100],
      [[""], ["reference"], 0],
      [["a b c"], ["abc"], 100],
      [["a", "b"], ["a", "c"], 50],
      [["aa"], ["ab"], 25]
    ]
    for (const [h, r, v] of eff) expect(corpusChrf(h, r, { beta: 3 })).toBeCloseTo(v, 4)
    // eps-smoothing mode (beta 3).
    expect(corpusChrf(["aa"], ["ab"], { beta: 3, epsSmoothing: true })).toBeCloseTo(8.3333, 4)
    expect(corpusChrf(["a"], ["a"], { beta: 3, epsSmoothing: true })).toBeCloseTo(16.6667, 4)
    expect(
      corpusChrf(
        [" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."],
        ["risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."],
        { beta: 3, epsSmoothing: true }
      )
    ).toBeCloseTo(63.36173, 4)
    // Whitespace kept (beta 3).
    expect(
      corpusChrf(
        ["Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."],
        ["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."],
        { beta: 3, whitespace: true }
      )
    ).toBeCloseTo(67.3481606, 4)
    // Sentence level, eps smoothing, default beta 2.
    expect(
      sentenceChrf(
        "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
        ["Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře."],
        { epsSmoothing: true }
      )
    ).toBeCloseTo(39.14078509, 4)
  })

  it("takes the best of several references and checks its inputs", () => {
    expect(sentenceChrf("abc", ["xyz", "abc"])).toBe(100)
    expect(sentenceStats("ab", "abc")).toEqual([2, 3, 2, 1, 2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    expect(scoreFromStats([2, 3, 2, 1, 2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).toBeCloseTo(700 / 11, 10)
    expect(() => corpusChrf(["a"], [])).toThrow(RangeError)
    expect(() => scoreFromStats([1, 2, 3])).toThrow(RangeError)
  })
})
