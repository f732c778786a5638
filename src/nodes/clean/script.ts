/**
 * Text checks for the foreign side, in one pass over the code points (the clean stage runs them on every pair):
 * - the share of "letters" inside the configured script ranges: letters are code points that are letters, marks or
 *   digits (`\p{L}`, `\p{M}`, `\p{N}`) or that fall inside the ranges (so Khmer punctuation counts as Khmer);
 *   spaces and other punctuation do not count; 0 when there is no letter;
 * - signs of damaged Khmer seen in public corpora (OPUS ParaCrawl v7.1 put spaces around U+17D2 COENG; v8 dropped
 *   the bases of dependent vowels):
 *   - `spaceAroundCoeng`: whitespace right before or right after a COENG (U+17D2), e.g. `ស ្ត` or `ស្ ត`;
 *   - `coengAtWordEnd`: a COENG not followed by a consonant (U+1780–U+17A2): at the end of the text or before a
 *     space, ZWSP, punctuation or a vowel (a subscript with no consonant). Overlaps `spaceAroundCoeng` when the
 *     space follows the COENG;
 *   - `orphanDependentVowel`: a dependent vowel (U+17B6–U+17C5) with no base: at the start of the text, or after
 *     a character that is neither a Khmer consonant / independent vowel (U+1780–U+17B3), another Khmer sign
 *     (U+17B6–U+17D1, U+17D3, U+17DD), nor ZWNJ/ZWJ.
 */

import { isJsSpace } from "../../text/unicode.ts"

export type ScriptRanges = ReadonlyArray<readonly [number, number]>

export type KhmerDamageKind = "spaceAroundCoeng" | "coengAtWordEnd" | "orphanDependentVowel"
export const KHMER_DAMAGE_KINDS: ReadonlyArray<KhmerDamageKind> = ["spaceAroundCoeng", "coengAtWordEnd", "orphanDependentVowel"]

const SPACE_AROUND_COENG = 1
const COENG_AT_WORD_END = 2
const ORPHAN_VOWEL = 4

const LETTER_OR_DIGIT = /[\p{L}\p{M}\p{N}]/u
const COENG = 0x17d2

const isConsonant = (c: number): boolean => c >= 0x1780 && c <= 0x17a2
const isDependentVowel = (c: number): boolean => c >= 0x17b6 && c <= 0x17c5
/** What may carry a dependent vowel. */
const isVowelBase = (c: number): boolean =>
  (c >= 0x1780 && c <= 0x17b3) || (c >= 0x17b6 && c <= 0x17d1) || c === 0x17d3 || c === 0x17dd || c === 0x200c ||
  c === 0x200d

export interface ForeignFacts {
  /** Share of letters inside the script ranges (0 when there is no letter). */
  readonly share: number
  /** Length in code points. */
  readonly length: number
  /** The kinds of suspected Khmer damage found (empty when none). */
  readonly damage: ReadonlyArray<KhmerDamageKind>
}

const NO_DAMAGE: ReadonlyArray<KhmerDamageKind> = []

/** Script share, length and Khmer damage of `s`, in one pass. */
export const analyzeForeign = (s: string, ranges: ScriptRanges): ForeignFacts => {
  let inside = 0
  let counted = 0
  let length = 0
  let flags = 0
  let prev = -1
  const n = s.length
  for (let i = 0; i < n; i++) {
    let cp = s.charCodeAt(i)
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (d - 0xdc00) + 0x10000
        i++
      }
    }
    length++
    let hit = false
    for (let r = 0; r < ranges.length; r++) {
      if (cp >= ranges[r][0] && cp <= ranges[r][1]) {
        hit = true
        break
      }
    }
    if (hit) {
      inside++
      counted++
    } else if (cp < 0x80) {
      if ((cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a)) counted++
    } else if (LETTER_OR_DIGIT.test(String.fromCodePoint(cp))) {
      counted++
    }
    if (cp === COENG) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : -1
      if ((prev >= 0 && isJsSpace(prev)) || (next >= 0 && isJsSpace(next))) flags |= SPACE_AROUND_COENG
      if (!isConsonant(next)) flags |= COENG_AT_WORD_END
    } else if (isDependentVowel(cp) && !isVowelBase(prev)) {
      flags |= ORPHAN_VOWEL
    }
    prev = cp
  }
  const damage: ReadonlyArray<KhmerDamageKind> = flags === 0
    ? NO_DAMAGE
    : KHMER_DAMAGE_KINDS.filter((_, k) => (flags & (1 << k)) !== 0)
  return { share: counted === 0 ? 0 : inside / counted, length, damage }
}

/**
 * `analyzeForeign` of the text the UTF-8 bytes `buf[s, e)` decode to, without decoding them into a string (the
 * bytes must be valid UTF-8). Same code points in the same order, so the same facts.
 */
export const analyzeForeignUtf8 = (buf: Uint8Array, s: number, e: number, ranges: ScriptRanges): ForeignFacts => {
  let inside = 0
  let counted = 0
  let length = 0
  let flags = 0
  let prev = -1
  let i = s
  // `next`: the character after the current one (-1 at the end), decoded one step ahead; as `analyzeForeign` reads
  // the code unit there, a code point above U+FFFF stands in for its high surrogate: both are neither a space nor
  // a consonant
  let next = -1
  let nextAt = s // where the character after `next` starts
  const advance = (): void => {
    if (nextAt >= e) {
      next = -1
      return
    }
    const x = buf[nextAt]
    if (x < 0x80) {
      next = x
      nextAt++
    } else if (x < 0xe0) {
      next = ((x & 0x1f) << 6) | (buf[nextAt + 1] & 0x3f)
      nextAt += 2
    } else if (x < 0xf0) {
      next = ((x & 0x0f) << 12) | ((buf[nextAt + 1] & 0x3f) << 6) | (buf[nextAt + 2] & 0x3f)
      nextAt += 3
    } else {
      next = ((x & 0x07) << 18) | ((buf[nextAt + 1] & 0x3f) << 12) | ((buf[nextAt + 2] & 0x3f) << 6) | (buf[nextAt + 3] & 0x3f)
      nextAt += 4
    }
  }
  advance()
  while (i < e) {
    const cp = next
    i = nextAt
    advance()
    length++
    let hit = false
    for (let r = 0; r < ranges.length; r++) {
      if (cp >= ranges[r][0] && cp <= ranges[r][1]) {
        hit = true
        break
      }
    }
    if (hit) {
      inside++
      counted++
    } else if (cp < 0x80) {
      if ((cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a)) counted++
    } else if (LETTER_OR_DIGIT.test(String.fromCodePoint(cp))) {
      counted++
    }
    if (cp === COENG) {
      if ((prev >= 0 && isJsSpace(prev)) || (next >= 0 && next <= 0xffff && isJsSpace(next))) flags |= SPACE_AROUND_COENG
      if (!isConsonant(next)) flags |= COENG_AT_WORD_END
    } else if (isDependentVowel(cp) && !isVowelBase(prev)) {
      flags |= ORPHAN_VOWEL
    }
    prev = cp
  }
  const damage: ReadonlyArray<KhmerDamageKind> = flags === 0
    ? NO_DAMAGE
    : KHMER_DAMAGE_KINDS.filter((_, k) => (flags & (1 << k)) !== 0)
  return { share: counted === 0 ? 0 : inside / counted, length, damage }
}

/** Share of the letters of `s` inside `ranges` (see `analyzeForeign`). */
export const scriptShare = (s: string, ranges: ScriptRanges): number => analyzeForeign(s, ranges).share

const KHMER_RANGES: ScriptRanges = [[0x1780, 0x17ff]]

/** The kinds of suspected Khmer damage found in `s` (empty when none). */
export const khmerDamage = (s: string): ReadonlyArray<KhmerDamageKind> => analyzeForeign(s, KHMER_RANGES).damage
