/**
 * Small text helpers shared by the corpus readers and the data stages. Lengths here are in Unicode code points
 * (what Python's `len` counts, and what the paper's "256 characters" means), never in UTF-16 code units.
 */

/** Number of code points in `s` (a lone surrogate counts as one). */
export const codePointLength = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
    n++
  }
  return n
}

/**
 * The first `max` code points of `s`; never splits a surrogate pair. Returns `s` itself when it is short enough,
 * so callers can test `result !== s` (or compare lengths) to know whether it was cut.
 */
export const truncateCodePoints = (s: string, max: number): string => {
  if (s.length <= max) return s
  let n = 0
  let i = 0
  while (i < s.length) {
    if (n === max) return s.slice(0, i)
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      i += d >= 0xdc00 && d <= 0xdfff ? 2 : 1
    } else {
      i++
    }
    n++
  }
  return s
}

/** A raw excerpt for quarantine rows and error messages: at most `max` code points, with a marker when cut. */
export const excerpt = (s: string, max = 500): string => {
  const cut = truncateCodePoints(s, max)
  return cut === s ? s : truncateCodePoints(s, max - 1) + "…"
}

/**
 * Primary subtag of a language code, lower-cased, with the common three-letter codes mapped to two letters:
 * `en-US`, `EN`, `eng` → `en`; `km-KH`, `khm` → `km`.
 */
export const primaryLang = (code: string): string => {
  const primary = code.trim().toLowerCase().split(/[-_]/)[0] ?? ""
  return LANG_ALIASES[primary] ?? primary
}

const LANG_ALIASES: Readonly<Record<string, string>> = {
  eng: "en",
  khm: "km",
  fra: "fr",
  fre: "fr",
  deu: "de",
  ger: "de",
  spa: "es",
  vie: "vi",
  tha: "th",
  lao: "lo",
  zho: "zh",
  chi: "zh",
  jpn: "ja",
  kor: "ko",
  ind: "id",
  mya: "my",
  bur: "my"
}

/** True when two language codes name the same language (`en-US` ~ `EN` ~ `eng`). */
export const sameLang = (a: string, b: string): boolean => primaryLang(a) === primaryLang(b)

/**
 * True when `s` is certainly in NFC without asking ICU: every code unit is below U+0300 (no combining marks, no
 * decomposable or composable characters there that NFC changes), or in the Khmer blocks U+1780–U+17FF /
 * U+19E0–U+19FF (no decompositions; the only marks with a non-zero combining class are U+17D2 (9) and U+17DD
 * (230), so only U+17DD directly followed by U+17D2 could be reordered), or ZWSP/ZWNJ/ZWJ (U+200B–U+200D).
 * False means "ask `normalize`", not "not NFC". Saves ICU's copy for the typical Khmer/English pair.
 */
export const isSurelyNfc = (s: string): boolean => {
  let prev = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x300) {
      prev = c
      continue
    }
    if ((c >= 0x1780 && c <= 0x17ff) || (c >= 0x19e0 && c <= 0x19ff)) {
      if (c === 0x17d2 && prev === 0x17dd) return false
      prev = c
      continue
    }
    if (c >= 0x200b && c <= 0x200d) {
      prev = c
      continue
    }
    return false
  }
  return true
}

/** `s` in NFC (the fast check first). */
export const toNfc = (s: string): string => (isSurelyNfc(s) ? s : s.normalize("NFC"))

/** `textFlags` bits. */
export const MAYBE_NOT_NFC = 1
export const HAS_ZERO_WIDTH = 2
export const NEEDS_SPACE_FIX = 4

/** JavaScript's `\s` for one UTF-16 code unit. */
export const isJsSpace = (c: number): boolean =>
  c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff

/**
 * One pass over `s` telling what normalisation could change: `MAYBE_NOT_NFC` (see `isSurelyNfc`),
 * `HAS_ZERO_WIDTH` (U+200B, U+FEFF or U+2060 present), `NEEDS_SPACE_FIX` (whitespace other than a single inner
 * U+0020: a tab, a newline, NBSP, two spaces in a row, or whitespace at either end). 0 means `s` is already clean.
 */
export const textFlags = (s: string): number => {
  let flags = 0
  let prev = 0
  let prevSpace = true // a space at the start needs fixing
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    flags |= unitFlags(c, prev, prevSpace)
    prevSpace = isJsSpace(c)
    prev = c
  }
  if (prevSpace && s.length > 0) flags |= NEEDS_SPACE_FIX
  return flags
}

/** The `textFlags` bits that the UTF-16 code unit `c` sets after `prev` (`prevSpace`: whether that was a space). */
const unitFlags = (c: number, prev: number, prevSpace: boolean): number =>
  (c === 0x200b || c === 0xfeff || c === 0x2060 ? HAS_ZERO_WIDTH : 0) |
  (isJsSpace(c) && (c !== 0x20 || prevSpace) ? NEEDS_SPACE_FIX : 0) |
  ((c >= 0x300 && !((c >= 0x1780 && c <= 0x17ff) || (c >= 0x19e0 && c <= 0x19ff) || (c >= 0x200b && c <= 0x200d))) ||
      (c === 0x17d2 && prev === 0x17dd)
    ? MAYBE_NOT_NFC
    : 0)

/** Bytes of the UTF-8 sequence that starts with `lead`. */
export const utf8Width = (lead: number): number => (lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4)

/** The code point of the valid UTF-8 sequence starting at `buf[i]`. */
export const utf8At = (buf: Uint8Array, i: number): number => {
  const b = buf[i]
  if (b < 0x80) return b
  if (b < 0xe0) return ((b & 0x1f) << 6) | (buf[i + 1] & 0x3f)
  if (b < 0xf0) return ((b & 0x0f) << 12) | ((buf[i + 1] & 0x3f) << 6) | (buf[i + 2] & 0x3f)
  return ((b & 0x07) << 18) | ((buf[i + 1] & 0x3f) << 12) | ((buf[i + 2] & 0x3f) << 6) | (buf[i + 3] & 0x3f)
}

/**
 * `textFlags` of the text that the UTF-8 bytes `buf[s, e)` decode to, without decoding them into a string (the
 * bytes must be valid UTF-8): the same code units, a character above U+FFFF as its surrogate pair.
 */
export const textFlagsUtf8 = (buf: Uint8Array, s: number, e: number): number => {
  let flags = 0
  let prev = 0
  let prevSpace = true
  for (let i = s; i < e; i += utf8Width(buf[i])) {
    let c = utf8At(buf, i)
    if (c > 0xffff) {
      const high = 0xd800 + ((c - 0x10000) >> 10)
      flags |= unitFlags(high, prev, prevSpace)
      prevSpace = false
      prev = high
      c = 0xdc00 + ((c - 0x10000) & 0x3ff)
    }
    flags |= unitFlags(c, prev, prevSpace)
    prevSpace = isJsSpace(c)
    prev = c
  }
  if (prevSpace && e > s) flags |= NEEDS_SPACE_FIX
  return flags
}

/** The zero-width characters `clean` removes (`clean.removeZeroWidth`): ZWSP, BOM, word joiner (not ZWNJ/ZWJ). */
export const ZERO_WIDTH = /[\u200B\uFEFF\u2060]/g
export const WHITESPACE_RUN = /\s+/g

/** `clean`'s normalisation (its steps 1–3): NFC, zero-width characters removed (when asked), whitespace runs made
 *  one space and the ends trimmed. Named test sets go through it too, so they meet the models as the split does. */
export const normalizeText = (s: string, removeZeroWidth: boolean): string => {
  let t = (textFlags(s) & MAYBE_NOT_NFC) !== 0 ? s.normalize("NFC") : s
  if (removeZeroWidth && (textFlags(t) & HAS_ZERO_WIDTH) !== 0) t = t.replace(ZERO_WIDTH, "")
  if ((textFlags(t) & NEEDS_SPACE_FIX) !== 0) t = t.replace(WHITESPACE_RUN, " ").trim()
  return t
}
