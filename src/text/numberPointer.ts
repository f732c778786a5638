/**
 * The number pointer (`generate.copyNumbers: "on"`, beyond the paper, off by default): a decoding rule that writes
 * each number of an answer by copying one of the source's numerals token for token, instead of trusting the
 * decoder's own digits.
 *
 * Why: the paper's §7.3 proposes "a copying path for exact strings". A miniature decoder cannot write a number token
 * it never saw in pretraining (its LM-head row is zero), and even a decoder that can tends to write a plausible number
 * rather than the one in its prompt. A pointer-generator network learns when to copy; this rule is its simplest
 * deterministic form: the decoder decides *where* a number goes (its greedy choice is a digit token), the rule decides
 * *which* number (one of the source's numerals, `findNumerals`, each used once).
 *
 * At each greedy step, for one sequence:
 * - while a copy is under way, the next token of the numeral being copied replaces the decoder's choice;
 * - else, when the decoder picks a digit token (a token of 1–3 ASCII digits, as Llama-3's pre-tokenizer writes
 *   numbers) that starts a number (the previous token is not a digit token, nor a separator after one), and an
 *   unused numeral is left, the rule copies a numeral: the first unused one whose first token is the decoder's pick
 *   (the decoder and the source agree), else the first unused one in source order;
 * - otherwise the decoder's choice stands (so with no numeral in the source, or after all are used, nothing changes).
 *
 * What it is not: it does not learn, it cannot convert numbers ("1985" → "the 1980s") or read numbers written in words,
 * and it copies the source's digits as written (a Khmer "១,០០០" becomes "1,000"). A copy also completes when the
 * decoder picks its stop token mid-number. It applies the same way to every system it is given.
 */
import { findNumerals } from "./numerals.ts"

/** Replaces a greedy pick of one sequence (called once per generated token, in order). */
export type Steer = (picked: number) => number

/** Whether a vocabulary entry is a digit group (1–3 ASCII digits). */
export const isDigitGroup = (piece: string): boolean => /^[0-9]{1,3}$/.test(piece)

/** Characters that continue a number between digit groups ("1,000", "12.5", "10-20"). */
const NUMBER_JOINERS = new Set([",", ".", "-"])

export interface PointerTokenizer {
  /** Token ids of a text, without special tokens. */
  readonly encode: (text: string) => ReadonlyArray<number>
  /** The text of one token id. */
  readonly piece: (id: number) => string
}

/** A model tokenizer seen by the pointer: ids without special tokens, and each id's text decoded once (a memo shared
 *  by every steer made with it). */
export const pointerTokenizer = (tok: {
  encode(text: string, options?: { readonly addSpecialTokens?: boolean }): ReadonlyArray<number>
  decode(ids: ReadonlyArray<number>, options?: { readonly cleanUpTokenizationSpaces?: boolean }): string
}): PointerTokenizer => {
  const pieces = new Map<number, string>()
  return {
    encode: (text) => tok.encode(text, { addSpecialTokens: false }),
    piece: (id) => {
      let p = pieces.get(id)
      if (p === undefined) {
        p = tok.decode([id], { cleanUpTokenizationSpaces: false })
        pieces.set(id, p)
      }
      return p
    }
  }
}

/** A steer for one sequence whose source text is `source`: copies its numerals (see the module doc). */
export const numberPointer = (source: string, tok: PointerTokenizer): Steer => {
  const numerals = findNumerals(source).map((n) => [...tok.encode(n)]).filter((ids) => ids.length > 0)
  const used = numerals.map(() => false)
  const digit = (id: number | undefined): boolean => id !== undefined && isDigitGroup(tok.piece(id))
  // the last two tokens emitted: enough to tell whether the next one would continue a number
  let last: number | undefined
  let beforeLast: number | undefined
  let queue: Array<number> = []
  const emit = (id: number): number => {
    beforeLast = last
    last = id
    return id
  }
  return (picked) => {
    if (queue.length > 0) return emit(queue.shift()!)
    const insideNumber = digit(last) || (last !== undefined && NUMBER_JOINERS.has(tok.piece(last)) && digit(beforeLast))
    if (!digit(picked) || insideNumber) return emit(picked)
    let which = numerals.findIndex((ids, i) => !used[i] && ids[0] === picked)
    if (which < 0) which = used.indexOf(false)
    if (which < 0) return emit(picked)
    used[which] = true
    queue = numerals[which].slice(1)
    return emit(numerals[which][0])
  }
}

/** Per row, the number pointer over its foreign text for a system reading `tok`'s ids (`copyNumbers` on), or none
 *  (`generate.copyNumbers`). */
export const numberSteers = (
  copyNumbers: "off" | "on",
  tok: Parameters<typeof pointerTokenizer>[0],
  rows: ReadonlyArray<{ readonly foreign_raw: string }>
): ReadonlyArray<Steer> | undefined => {
  if (copyNumbers === "off") return undefined
  const pointerTok = pointerTokenizer(tok)
  return rows.map((r) => numberPointer(r.foreign_raw, pointerTok))
}
