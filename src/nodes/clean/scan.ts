/**
 * The clean stage's byte path in one pass per side: for a pair given as UTF-8 bytes, whether it needs no
 * normalisation (`textFlagsUtf8` 0 on both sides), and if so the foreign side's facts (`analyzeForeignUtf8`), the
 * English side's length in code points and the pair's duplicate key (`hashPairUtf8`) — the same answers as those
 * functions, from one decode of each character instead of four.
 *
 * Why: the four separate passes were ~70% of clean's main-thread time on a 1M-pair corpus. Here each side is read
 * once; a character is classified by table lookups (built once per set of script ranges) rather than by comparisons
 * and, for letters outside ASCII, a regular expression; and a pair stops at the first character that the string path
 * must handle (anything that normalisation could change, including every character above U+FFFF), since only pairs
 * with no such character take the byte path.
 */
import {
  COENG,
  COENG_AT_WORD_END,
  type ForeignFacts,
  isConsonant,
  isDependentVowel,
  isVowelBase,
  KHMER_DAMAGE_KINDS,
  type KhmerDamageKind,
  NO_DAMAGE,
  ORPHAN_VOWEL,
  type ScriptRanges,
  SPACE_AROUND_COENG
} from "./script.ts"
import { isJsSpace } from "../../text/unicode.ts"

/** `CLASS` bits of a BMP code unit. */
const STOP = 1 // normalisation could change it (`textFlags` sets a bit on it whatever its neighbours)
const SPACE = 2 // U+0020 (a flag only after another space, or at either end)

/** Per BMP code unit: `STOP` for what `unitFlags` flags on its own (zero-width, NFC-suspect, whitespace but U+0020). */
const CLASS = (() => {
  const t = new Uint8Array(0x10000)
  for (let c = 0; c < 0x10000; c++) {
    const zeroWidth = c === 0x200b || c === 0xfeff || c === 0x2060
    const maybeNotNfc = c >= 0x300 && !((c >= 0x1780 && c <= 0x17ff) || (c >= 0x19e0 && c <= 0x19ff) || (c >= 0x200b && c <= 0x200d))
    if (zeroWidth || maybeNotNfc || (isJsSpace(c) && c !== 0x20)) t[c] = STOP
    else if (c === 0x20) t[c] = SPACE
  }
  return t
})()

const NOT_A_LETTER = 0
const LETTER = 1
const INSIDE = 2
const LETTER_OR_DIGIT = /[\p{L}\p{M}\p{N}]/u

/** `letterKind` (script.ts) of every BMP code point, per set of ranges. */
const kindTables = new Map<string, Uint8Array>()
const kindTable = (ranges: ScriptRanges): Uint8Array => {
  const key = JSON.stringify(ranges)
  let t = kindTables.get(key)
  if (t === undefined) {
    t = new Uint8Array(0x10000)
    for (let c = 0; c < 0x10000; c++) {
      let k = NOT_A_LETTER
      for (let r = 0; r < ranges.length; r++) if (c >= ranges[r][0] && c <= ranges[r][1]) k = INSIDE
      if (k === NOT_A_LETTER) {
        if (c < 0x80) k = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ? LETTER : NOT_A_LETTER
        else if (!(c >= 0xd800 && c <= 0xdfff)) k = LETTER_OR_DIGIT.test(String.fromCharCode(c)) ? LETTER : NOT_A_LETTER
      }
      t[c] = k
    }
    kindTables.set(key, t)
  }
  return t
}

const DAMAGE: ReadonlyArray<ReadonlyArray<KhmerDamageKind>> = Array.from(
  { length: 8 },
  (_, flags) => (flags === 0 ? NO_DAMAGE : KHMER_DAMAGE_KINDS.filter((_, k) => (flags & (1 << k)) !== 0))
)

/** What `scanPairUtf8` found; valid after it returned true, until the next call. */
export interface PairScan {
  /** The English side's length in code points. */
  englishLength: number
  /** The foreign side's facts, as `analyzeForeignUtf8` gives them. */
  foreign: ForeignFacts
  /** `hashPairUtf8` of the pair. */
  readonly key: Uint32Array
}

/**
 * A scanner for one set of script ranges. `scan(eb, es, ee, fb, fs, fe)` is false when either side needs
 * normalisation (`textFlagsUtf8` ≠ 0: take the string path), else true with `result` filled. Both ranges must be
 * valid UTF-8.
 */
export const pairScanner = (ranges: ScriptRanges) => {
  const kinds = kindTable(ranges)
  const result: PairScan = { englishLength: 0, foreign: { share: 0, length: 0, damage: NO_DAMAGE }, key: new Uint32Array(2) }
  // the hash state across both sides (hash.ts: FNV-1a and a Murmur3-style mix over UTF-16 code units)
  let h1 = 0
  let h2 = 0
  const mix = (c: number): void => {
    h1 = Math.imul(h1 ^ c, 0x01000193)
    let k = Math.imul(c, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h2 ^= Math.imul(k, 0x1b873593)
    h2 = (h2 << 13) | (h2 >>> 19)
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0
  }

  /** The English side: false if it needs normalisation; else its length, the hash mixed with it. */
  const english = (buf: Uint8Array, s: number, e: number): number => {
    let prevSpace = true
    let prev = 0
    let n = 0
    for (let i = s; i < e;) {
      const b = buf[i]
      let c: number
      if (b < 0x80) {
        c = b
        i++
      } else if (b < 0xe0) {
        c = ((b & 0x1f) << 6) | (buf[i + 1] & 0x3f)
        i += 2
      } else if (b < 0xf0) {
        c = ((b & 0x0f) << 12) | ((buf[i + 1] & 0x3f) << 6) | (buf[i + 2] & 0x3f)
        i += 3
      } else return -1 // above U+FFFF: a surrogate pair, which textFlags marks
      const cls = CLASS[c]
      if (cls !== 0) {
        if (cls === STOP || prevSpace) return -1
        prevSpace = true
      } else {
        if (c === COENG && prev === 0x17dd) return -1
        prevSpace = false
      }
      prev = c
      mix(c)
      n++
    }
    if (prevSpace && e > s) return -1
    return n
  }

  const scan = (eb: Uint8Array, es: number, ee: number, fb: Uint8Array, fs: number, fe: number): boolean => {
    h1 = 0x811c9dc5
    h2 = 0x9747b28c
    const englishLength = english(eb, es, ee)
    if (englishLength < 0) return false
    mix(0) // U+0000 separates the two sides
    let prevSpace = true
    let prev = -1
    let length = 0
    let inside = 0
    let counted = 0
    let damage = 0
    for (let i = fs; i < fe;) {
      const b = fb[i]
      let c: number
      if (b < 0x80) {
        c = b
        i++
      } else if (b < 0xe0) {
        c = ((b & 0x1f) << 6) | (fb[i + 1] & 0x3f)
        i += 2
      } else if (b < 0xf0) {
        c = ((b & 0x0f) << 12) | ((fb[i + 1] & 0x3f) << 6) | (fb[i + 2] & 0x3f)
        i += 3
      } else return false
      const cls = CLASS[c]
      if (cls !== 0) {
        if (cls === STOP || prevSpace) return false
        prevSpace = true
      } else {
        if (c === COENG && prev === 0x17dd) return false
        prevSpace = false
      }
      const k = kinds[c]
      if (k === INSIDE) inside++
      if (k !== NOT_A_LETTER) counted++
      if (c === COENG) {
        // the next character (-1 at the end): as `damageFlags` reads it
        let next = -1
        if (i < fe) {
          const d = fb[i]
          next = d < 0x80
            ? d
            : d < 0xe0
            ? ((d & 0x1f) << 6) | (fb[i + 1] & 0x3f)
            : d < 0xf0
            ? ((d & 0x0f) << 12) | ((fb[i + 1] & 0x3f) << 6) | (fb[i + 2] & 0x3f)
            : 0x10000
        }
        if ((prev >= 0 && isJsSpace(prev)) || (next >= 0 && isJsSpace(next))) damage |= SPACE_AROUND_COENG
        if (!isConsonant(next)) damage |= COENG_AT_WORD_END
      } else if (isDependentVowel(c) && !isVowelBase(prev)) damage |= ORPHAN_VOWEL
      prev = c
      mix(c)
      length++
    }
    if (prevSpace && fe > fs) return false
    // hash.ts `finish` (units: the code units of both sides, the separator aside; all BMP here)
    let a = h1
    a ^= a >>> 16
    a = Math.imul(a, 0x85ebca6b)
    a ^= a >>> 13
    let z = h2
    z ^= englishLength + length
    z ^= z >>> 16
    z = Math.imul(z, 0x85ebca6b)
    z ^= z >>> 13
    z = Math.imul(z, 0xc2b2ae35)
    z ^= z >>> 16
    result.key[0] = a >>> 0
    result.key[1] = z >>> 0
    result.englishLength = englishLength
    result.foreign = { share: counted === 0 ? 0 : inside / counted, length, damage: DAMAGE[damage] }
    return true
  }
  return { scan, result }
}
