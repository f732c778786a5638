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

import { isJsSpace, utf8At, utf8Width } from "../../text/unicode.ts"

export type ScriptRanges = ReadonlyArray<readonly [number, number]>

export type KhmerDamageKind = "spaceAroundCoeng" | "coengAtWordEnd" | "orphanDependentVowel"
export const KHMER_DAMAGE_KINDS: ReadonlyArray<KhmerDamageKind> = ["spaceAroundCoeng", "coengAtWordEnd", "orphanDependentVowel"]

/** Bits of a damage mask (bit k = KHMER_DAMAGE_KINDS[k]); also used by `scan.ts`. */
export const SPACE_AROUND_COENG = 1
export const COENG_AT_WORD_END = 2
export const ORPHAN_VOWEL = 4

const LETTER_OR_DIGIT = /[\p{L}\p{M}\p{N}]/u
export const COENG = 0x17d2

export const isConsonant = (c: number): boolean => c >= 0x1780 && c <= 0x17a2
export const isDependentVowel = (c: number): boolean => c >= 0x17b6 && c <= 0x17c5
/** What may carry a dependent vowel. */
export const isVowelBase = (c: number): boolean =>
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

export const NO_DAMAGE: ReadonlyArray<KhmerDamageKind> = []

const NOT_A_LETTER = 0
const LETTER = 1
const INSIDE = 2

/** Whether `cp` is inside the script ranges, another letter (or mark, or digit), or neither. */
const letterKind = (cp: number, ranges: ScriptRanges): number => {
  for (let r = 0; r < ranges.length; r++) if (cp >= ranges[r][0] && cp <= ranges[r][1]) return INSIDE
  if (cp < 0x80) return (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a) ? LETTER : NOT_A_LETTER
  return LETTER_OR_DIGIT.test(String.fromCodePoint(cp)) ? LETTER : NOT_A_LETTER
}

/** The damage bits `cp` shows between `prev` and `next` (-1: none). */
const damageFlags = (cp: number, prev: number, next: number): number => {
  if (cp === COENG) {
    return ((prev >= 0 && isJsSpace(prev)) || (next >= 0 && isJsSpace(next)) ? SPACE_AROUND_COENG : 0) |
      (isConsonant(next) ? 0 : COENG_AT_WORD_END)
  }
  return isDependentVowel(cp) && !isVowelBase(prev) ? ORPHAN_VOWEL : 0
}

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
    const k = letterKind(cp, ranges)
    if (k === INSIDE) inside++
    if (k !== NOT_A_LETTER) counted++
    flags |= damageFlags(cp, prev, i + 1 < n ? s.charCodeAt(i + 1) : -1)
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
  for (let i = s; i < e;) {
    const cp = utf8At(buf, i)
    i += utf8Width(buf[i])
    length++
    const k = letterKind(cp, ranges)
    if (k === INSIDE) inside++
    if (k !== NOT_A_LETTER) counted++
    // the character after (where `analyzeForeign` reads a code unit: for a character above U+FFFF its high
    // surrogate, but neither is a space or a consonant, so `damageFlags` answers the same)
    flags |= damageFlags(cp, prev, i < e ? utf8At(buf, i) : -1)
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
