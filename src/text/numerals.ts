/**
 * Numerals in text, normalised to ASCII: what the number pathway (`stageB.numbers: "copy"`) hands the decoder beside
 * the slots, so exact figures do not have to survive the slots' compression.
 *
 * A numeral is a run of digits, Latin (0–9) or Khmer (០–៩, U+17E0–U+17E9), possibly with
 * - a decimal or thousands separator between digits: `.` `,` `٫` `٬` (the Arabic ones), `'` or a narrow/no-break
 *   space (U+202F, U+00A0) as a thousands mark, each followed by a digit;
 * - a range: two numerals joined by `-`, `–` (en dash) or `—`, with optional spaces around it only when the dash
 *   is an en or em dash (a plain hyphen with spaces is read as two numerals).
 * Normalised: digits to ASCII, `٫` to `.`, `٬`, `'` and the spaces to `,`, range dashes to `-`. Ordinary spaces end a
 * numeral, so "036 497 752" is three numerals (as the text shows them). Khmer number words (បួន, "four") are words,
 * not numerals: copying them is the slots' job.
 */

const KHMER_ZERO = 0x17e0

/** Khmer digits ០–៩ (U+17E0–U+17E9) → ASCII digits, everything else unchanged (numeric fidelity reads numbers so). */
export const khmerToLatinDigits = (text: string): string =>
  text.replace(/[\u17e0-\u17e9]/g, (d) => String.fromCharCode(d.charCodeAt(0) - KHMER_ZERO + 0x30))

/** `c` as an ASCII digit character, or undefined. */
const asciiDigit = (c: string): string | undefined => {
  const cp = c.codePointAt(0)!
  if (cp >= 0x30 && cp <= 0x39) return c
  if (cp >= KHMER_ZERO && cp <= KHMER_ZERO + 9) return String.fromCharCode(0x30 + cp - KHMER_ZERO)
  return undefined
}

/** Separators inside one numeral, and what each becomes. */
const INNER: Readonly<Record<string, string>> = { ".": ".", ",": ",", "٫": ".", "٬": ",", "'": ",", "\u202f": ",", "\u00a0": "," }
/** Range dashes, and whether spaces may surround them. */
const RANGE: Readonly<Record<string, boolean>> = { "-": false, "–": true, "—": true }

/** The numerals of `text`, in order, normalised to ASCII (see the module doc). */
export const findNumerals = (text: string): Array<string> => {
  const chars = Array.from(text)
  const out: Array<string> = []
  let i = 0
  /** One numeral without ranges starting at a digit at `i`; returns its normalised text and the index after it. */
  const single = (at: number): { readonly text: string; readonly end: number } => {
    let s = ""
    let j = at
    while (j < chars.length) {
      const d = asciiDigit(chars[j])
      if (d !== undefined) {
        s += d
        j++
        continue
      }
      const sep = INNER[chars[j]]
      if (sep !== undefined && s !== "" && j + 1 < chars.length && asciiDigit(chars[j + 1]) !== undefined) {
        s += sep
        j++
        continue
      }
      break
    }
    return { text: s, end: j }
  }
  while (i < chars.length) {
    if (asciiDigit(chars[i]) === undefined) {
      i++
      continue
    }
    const first = single(i)
    let text = first.text
    let end = first.end
    // a range: numeral, dash (spaced only for en/em dashes), numeral
    let j = end
    let spaced = false
    while (j < chars.length && chars[j] === " ") {
      j++
      spaced = true
    }
    const dash = chars[j]
    if (dash !== undefined && dash in RANGE && (!spaced || RANGE[dash])) {
      let k = j + 1
      let spacedAfter = false
      while (k < chars.length && chars[k] === " ") {
        k++
        spacedAfter = true
      }
      if (k < chars.length && asciiDigit(chars[k]) !== undefined && (!spacedAfter || RANGE[dash])) {
        const second = single(k)
        text = `${text}-${second.text}`
        end = second.end
      }
    }
    out.push(text)
    i = end
  }
  return out
}
