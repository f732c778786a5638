/**
 * Numeric fidelity: does a system output keep the numbers of the reference, and their units? The paper reports
 * "unit slips (kW vs MW)" as a typical LLINK failure; this metric counts them.
 *
 * A mention is a number (digits with optional thousands commas and decimals; Khmer digits ០–៩ are read as 0–9)
 * with an optional unit: a currency before it (`$`, `US$`, `USD`, `€`, `£`, `៛`), and after it an optional scale
 * word (`thousand`, `million`, `billion`, `trillion`) and an optional unit (`kW`, `MW`, `km`, `kg`, `%`, `USD`,
 * `riel`, `years`, ...). Values are compared canonically (`1,000` = `1000`, `2.50` = `2.5`); units through an alias
 * table (`percent` = `%`, `kilowatts` = `kW`, `dollars` = `$` = `USD`), case-sensitive for SI symbols, so `mW`
 * is not `MW`.
 *
 * Per example, over the reference's mentions (as a multiset):
 * - `valueRecall`: share of mentions whose value appears in the output;
 * - `unitRecall`: share of mentions that carry a unit whose value *with that unit* appears in the output;
 * - `score`: share of mentions reproduced unchanged (the value, and the unit when the reference has one).
 * Examples whose reference has no number are not applicable (`score` null) and are left out of the aggregate.
 *
 * Gotchas: numbers glued to letters before them (`G20`, `A4`) are not mentions; ordinals (`21st`) count as their
 * number; a sign is ignored; spelled-out numbers ("five") are not read.
 */

import { khmerToLatinDigits } from "../text/numerals.ts"

export interface NumberMention {
  /** The text as written (after digit conversion), e.g. `$1,200`, `5 kW`, `10%`. */
  readonly text: string
  /** Canonical value: no thousands separators, no leading zeros, no trailing fractional zeros. */
  readonly value: string
  /** Canonical unit (`USD`, `kW`, `million`, `USD million`, ...) or null. */
  readonly unit: string | null
  /** Offset of the mention in the converted text. */
  readonly offset: number
}

/** Unit aliases matched case-sensitively (SI symbols and currency codes). */
const SYMBOL_UNITS: ReadonlyArray<readonly [string, string]> = [
  ["kWh", "kWh"], ["MWh", "MWh"], ["GWh", "GWh"], ["kW", "kW"], ["KW", "kW"], ["kw", "kW"], ["MW", "MW"],
  ["GW", "GW"], ["W", "W"], ["km²", "km2"], ["km2", "km2"], ["m²", "m2"], ["m2", "m2"], ["km", "km"], ["cm", "cm"],
  ["mm", "mm"], ["m", "m"], ["kg", "kg"], ["g", "g"], ["t", "t"], ["ha", "ha"], ["ml", "ml"], ["mL", "ml"],
  ["l", "l"], ["L", "l"], ["°C", "°C"], ["USD", "USD"], ["US$", "USD"], ["KHR", "KHR"], ["EUR", "EUR"],
  ["GBP", "GBP"], ["THB", "THB"], ["VND", "VND"], ["%", "%"], ["៛", "KHR"], ["MB", "MB"], ["GB", "GB"]
]
/** Unit words matched case-insensitively. */
const WORD_UNITS: ReadonlyArray<readonly [string, string]> = [
  ["kilowatt-hours", "kWh"], ["kilowatt-hour", "kWh"], ["megawatt-hours", "MWh"], ["megawatt-hour", "MWh"],
  ["kilowatts", "kW"], ["kilowatt", "kW"], ["megawatts", "MW"], ["megawatt", "MW"], ["gigawatts", "GW"],
  ["gigawatt", "GW"], ["watts", "W"], ["watt", "W"], ["square kilometres", "km2"], ["square kilometers", "km2"],
  ["kilometres", "km"], ["kilometers", "km"], ["kilometre", "km"], ["kilometer", "km"], ["centimetres", "cm"],
  ["centimeters", "cm"], ["millimetres", "mm"], ["millimeters", "mm"], ["metres", "m"], ["meters", "m"],
  ["metre", "m"], ["meter", "m"], ["kilograms", "kg"], ["kilogram", "kg"], ["kilos", "kg"], ["grams", "g"],
  ["gram", "g"], ["tonnes", "t"], ["tonne", "t"], ["tons", "t"], ["ton", "t"], ["hectares", "ha"],
  ["hectare", "ha"], ["litres", "l"], ["liters", "l"], ["litre", "l"], ["liter", "l"], ["percent", "%"],
  ["per cent", "%"], ["dollars", "USD"], ["dollar", "USD"], ["riels", "KHR"], ["riel", "KHR"], ["euros", "EUR"],
  ["euro", "EUR"], ["baht", "THB"], ["years", "year"], ["year", "year"], ["yrs", "year"], ["months", "month"],
  ["month", "month"], ["weeks", "week"], ["week", "week"], ["days", "day"], ["day", "day"], ["hours", "hour"],
  ["hour", "hour"], ["hrs", "hour"], ["minutes", "minute"], ["minute", "minute"], ["mins", "minute"],
  ["seconds", "second"], ["second", "second"], ["degrees", "degree"], ["degree", "degree"]
]
const SCALES: ReadonlyArray<readonly [string, string]> = [
  ["thousand", "thousand"], ["million", "million"], ["billion", "billion"], ["trillion", "trillion"],
  ["bn", "billion"], ["mn", "million"]
]
const CURRENCY_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ["US$", "USD"], ["USD", "USD"], ["$", "USD"], ["€", "EUR"], ["£", "GBP"], ["៛", "KHR"], ["KHR", "KHR"]
]

const CURRENCIES: ReadonlySet<string> = new Set(["USD", "EUR", "GBP", "KHR", "THB", "VND"])

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
const byLengthDesc = (list: ReadonlyArray<readonly [string, string]>) => [...list].sort((a, b) => b[0].length - a[0].length)

// After the number: optional space or hyphen, then the alias, not followed by a letter or digit.
const suffixRe = (list: ReadonlyArray<readonly [string, string]>, flags: string) =>
  new RegExp(`^(?:[ \\u00a0]|-)?(${byLengthDesc(list).map(([a]) => escapeRe(a)).join("|")})(?![\\p{L}\\p{N}])`, flags)
const SYMBOL_RE = suffixRe(SYMBOL_UNITS, "u")
const WORD_RE = suffixRe(WORD_UNITS, "iu")
const SCALE_RE = suffixRe(SCALES, "iu")
const PREFIX_RE = new RegExp(`(${byLengthDesc(CURRENCY_PREFIXES).map(([a]) => escapeRe(a)).join("|")})[ \\u00a0]?$`, "u")
const ORDINAL_RE = /^(?:st|nd|rd|th)(?![\p{L}\p{N}])/u
const NUMBER_RE = /(?<![\p{L}\p{N}_.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\p{N}])/gu

const lookup = (list: ReadonlyArray<readonly [string, string]>, alias: string, caseInsensitive: boolean): string => {
  const found = list.find(([a]) => (caseInsensitive ? a.toLowerCase() === alias.toLowerCase() : a === alias))
  return found === undefined ? alias : found[1]
}

const canonicalValue = (integer: string, fraction: string | undefined): string => {
  const int = integer.replace(/,/g, "").replace(/^0+(?=\d)/, "")
  const frac = (fraction ?? "").replace(/0+$/, "")
  return frac === "" ? int : `${int}.${frac}`
}

/** All number mentions of a text, in order. */
export const extractNumbers = (text: string): Array<NumberMention> => {
  const converted = khmerToLatinDigits(text)
  const mentions: Array<NumberMention> = []
  for (const m of converted.matchAll(NUMBER_RE)) {
    const start = m.index ?? 0
    let end = start + m[0].length
    const value = canonicalValue(m[1], m[2])
    const prefix = PREFIX_RE.exec(converted.slice(Math.max(0, start - 5), start))
    let mentionStart = start
    let currency: string | null = null
    let scaleUnit: string | null = null
    let unit: string | null = null
    if (prefix !== null) {
      currency = lookup(CURRENCY_PREFIXES, prefix[1], false)
      mentionStart = start - prefix[0].length
    }
    let rest = converted.slice(end)
    const ordinal = ORDINAL_RE.exec(rest)
    if (ordinal !== null) {
      end += ordinal[0].length
      rest = converted.slice(end)
    }
    const scale = SCALE_RE.exec(rest)
    if (scale !== null) {
      scaleUnit = lookup(SCALES, scale[1], true)
      end += scale[0].length
      rest = converted.slice(end)
    }
    const symbol = SYMBOL_RE.exec(rest)
    const word = symbol === null ? WORD_RE.exec(rest) : null
    const suffix = symbol !== null ? lookup(SYMBOL_UNITS, symbol[1], false) : word !== null ? lookup(WORD_UNITS, word[1], true) : null
    if (suffix !== null) {
      end += (symbol ?? word ?? [""])[0].length
      if (CURRENCIES.has(suffix)) currency = currency ?? suffix
      else unit = suffix
    }
    // Canonical order: currency, scale, unit ("$5 million" = "5 million dollars" = "USD million").
    const parts = [currency, scaleUnit, unit].filter((p): p is string => p !== null)
    mentions.push({
      text: converted.slice(mentionStart, end),
      value,
      unit: parts.length === 0 ? null : parts.join(" "),
      offset: mentionStart
    })
  }
  return mentions
}

export interface NumericFidelity {
  /** Number mentions in the reference. */
  readonly mentions: number
  /** Reference mentions whose value appears in the output (multiset). */
  readonly valuesMatched: number
  /** Reference mentions that carry a unit. */
  readonly unitMentions: number
  /** Of those, how many appear in the output with the same value and unit (multiset). */
  readonly unitsMatched: number
  /** Reference mentions reproduced unchanged (value, and unit where the reference has one). */
  readonly matched: number
  /** matched / mentions; null when the reference has no number. */
  readonly score: number | null
  readonly valueRecall: number | null
  readonly unitRecall: number | null
  /** Reference mentions not reproduced unchanged (their text). */
  readonly missing: ReadonlyArray<string>
}

const countBy = (keys: ReadonlyArray<string>): Map<string, number> => {
  const m = new Map<string, number>()
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1)
  return m
}

const take = (m: Map<string, number>, key: string): boolean => {
  const n = m.get(key) ?? 0
  if (n === 0) return false
  m.set(key, n - 1)
  return true
}

/** Numeric fidelity of one output against its reference. */
export const numericFidelity = (reference: string, output: string): NumericFidelity => {
  const ref = extractNumbers(reference)
  const out = extractNumbers(output)
  const outValues = countBy(out.map((m) => m.value))
  const outWithUnit = countBy(out.map((m) => `${m.value}|${m.unit ?? ""}`))
  const outForExact = countBy(out.map((m) => `${m.value}|${m.unit ?? ""}`))
  const outValuesForExact = countBy(out.map((m) => m.value))
  let valuesMatched = 0
  let unitMentions = 0
  let unitsMatched = 0
  let matched = 0
  const missing: Array<string> = []
  for (const m of ref) {
    if (take(outValues, m.value)) valuesMatched++
    if (m.unit !== null) {
      unitMentions++
      if (take(outWithUnit, `${m.value}|${m.unit}`)) unitsMatched++
    }
    // Unchanged: with a unit, the same value+unit; without, the value (whatever unit the output attaches).
    const exact = m.unit !== null ? take(outForExact, `${m.value}|${m.unit}`) : take(outValuesForExact, m.value)
    if (exact) matched++
    else missing.push(m.text)
  }
  const n = ref.length
  return {
    mentions: n,
    valuesMatched,
    unitMentions,
    unitsMatched,
    matched,
    score: n === 0 ? null : matched / n,
    valueRecall: n === 0 ? null : valuesMatched / n,
    unitRecall: unitMentions === 0 ? null : unitsMatched / unitMentions,
    missing
  }
}

export interface NumericFidelityAggregate {
  readonly examples: number
  /** Examples whose reference has at least one number. */
  readonly applicable: number
  readonly mentions: number
  /** Σ matched / Σ mentions (null when no mention). */
  readonly micro: number | null
  /** Mean of per-example scores over applicable examples (null when none). */
  readonly macro: number | null
  readonly valueRecall: number | null
  readonly unitRecall: number | null
  /** Applicable examples with every mention reproduced. */
  readonly perfect: number
}

/** Aggregates per-example results. */
export const aggregateNumericFidelity = (items: ReadonlyArray<NumericFidelity>): NumericFidelityAggregate => {
  const applicable = items.filter((i) => i.score !== null)
  const sum = (f: (i: NumericFidelity) => number) => items.reduce((a, i) => a + f(i), 0)
  const mentions = sum((i) => i.mentions)
  const unitMentions = sum((i) => i.unitMentions)
  return {
    examples: items.length,
    applicable: applicable.length,
    mentions,
    micro: mentions === 0 ? null : sum((i) => i.matched) / mentions,
    macro: applicable.length === 0 ? null : applicable.reduce((a, i) => a + (i.score ?? 0), 0) / applicable.length,
    valueRecall: mentions === 0 ? null : sum((i) => i.valuesMatched) / mentions,
    unitRecall: unitMentions === 0 ? null : sum((i) => i.unitsMatched) / unitMentions,
    perfect: applicable.filter((i) => i.matched === i.mentions).length
  }
}
