/** Config section `clean`: normalisation, rejects and the truncation of the foreign side. */
import { Schema } from "effect"
import { Count, crossCheck, dflt, Fraction, Size } from "../../schemas/fields.ts"

const CodePointRange = Schema.Tuple([Count, Count]).check(
  Schema.makeFilter(([lo, hi]) => (lo <= hi ? undefined : `Expected [lo, hi] with lo ≤ hi, got [${lo}, ${hi}]`))
)

export const CleanConfig = Schema.Struct({
  removeZeroWidth: dflt(Schema.Boolean, true),
  /** Minimum share of the foreign side's letters inside `scriptRanges` (0 disables the check). */
  minScriptShare: dflt(Fraction, 0.5),
  /** Unicode ranges of the foreign script as [lo, hi] code points (Khmer: U+1780–U+17FF, U+19E0–U+19FF). */
  scriptRanges: dflt(Schema.Array(CodePointRange), [
    [0x1780, 0x17ff],
    [0x19e0, 0x19ff]
  ]),
  /** Foreign side truncated to this many code points (the paper: 256). */
  maxForeignChars: dflt(Size, 256),
  dedupe: dflt(Schema.Boolean, true)
}).check(
  crossCheck("scriptRanges", (c) =>
    c.minScriptShare > 0 && c.scriptRanges.length === 0 ? "is empty while clean.minScriptShare > 0" : undefined)
)

export type CleanParams = typeof CleanConfig.Type
