/**
 * The number drill (`models.pretrain.numberDrill`, beyond the paper, off by default): English-only decoder
 * pretraining data that teaches the miniature decoder every number token and how to copy one, as Llama-3.2-1B
 * already knows them.
 *
 * Why: Llama-3's tokenizer writes every digit group of 1–3 digits as one token ("0" … "999", "00" … "099", "000" …
 * "099": 1,110 tokens). The miniature decoder learns only the tokens of its pretraining data, the training split's
 * English; held-out numbers (the generator keeps some numbers for evaluation only) have a zero LM-head row and an
 * untrained embedding, so no decoder-side pathway can write them. The real Llama has seen them all.
 *
 * The drill has two parts, both English and digits only (no foreign script, no evaluation sentence):
 * - **Copy lists**: `Instruction: Repeat the numbers.` with 8–16 random digit groups on the `Foreign:` line and on the
 *   `Numbers:` line, answered by the same list. Every one of the 1,110 digit-group tokens appears in these lists,
 *   cycled in a seeded order, so each is seen many times.
 * - **Sentences**: training English sentences that hold numbers, with each digit group replaced by a random digit
 *   string of the same length (one group per sentence takes the next token of the seeded cycle). Each becomes a plain
 *   LM sequence and a `translate_to_english` example whose prompt carries the `Numbers:` line of the number pathway.
 *
 * The drill changes only the decoder's pretraining data; the default (drill off) is the paper's setting and keeps
 * every artifact's digest.
 */
import { deriveSeed, makeRng, type Rng } from "../../models/rng.ts"
import { offlineInstructionAndAnswer } from "../../prompts/synthesis.ts"
import { findNumerals } from "../../text/numerals.ts"

/** The digit-group tokens of Llama-3's pre-tokenizer (`\p{N}{1,3}`): every string of 1–3 ASCII digits. */
export const digitGroups = (): Array<string> => {
  const out: Array<string> = []
  for (let len = 1; len <= 3; len++) {
    for (let n = 0; n < 10 ** len; n++) out.push(String(n).padStart(len, "0"))
  }
  return out
}

/** One drill example before tokenization: a prompt (or none: plain text) and the text to learn. */
export interface DrillText {
  /** The instruction of a task example; absent for a plain language-modelling sequence. */
  readonly instruction?: string
  /** The `Foreign:` line's English (task examples). */
  readonly input?: string
  /** The `Numbers:` line's numerals (task examples). */
  readonly numbers?: ReadonlyArray<string>
  /** The answer of a task example, or the whole plain sequence. */
  readonly text: string
}

export const COPY_INSTRUCTION = "Repeat the numbers."

const shuffled = <A>(xs: ReadonlyArray<A>, rng: Rng): Array<A> => {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.nextU32() % (i + 1)
    const t = out[i]
    out[i] = out[j]
    out[j] = t
  }
  return out
}

const randomDigits = (len: number, rng: Rng): string =>
  Array.from({ length: len }, () => String(rng.nextU32() % 10)).join("")

/** A digit run as Llama-3's pre-tokenizer splits it: groups of three from the left. */
const groupsOf = (run: string): Array<string> => run.match(/\d{1,3}/g) ?? []

/**
 * The drill's texts for `english` (the training split's English side), seeded by `seed`: `copyLists` copy-list
 * examples and one drilled sentence (plain + translate) per English sentence that holds a digit, up to `sentences`.
 */
export const numberDrill = (
  english: ReadonlyArray<string>,
  seed: number,
  opts: { readonly copyLists?: number; readonly sentences?: number } = {}
): Array<DrillText> => {
  const rng = makeRng(deriveSeed(seed, "number-drill"))
  const groups = digitGroups()
  let order = shuffled(groups, rng)
  let at = 0
  const nextGroup = (): string => {
    if (at === order.length) {
      order = shuffled(groups, rng)
      at = 0
    }
    return order[at++]
  }
  const out: Array<DrillText> = []
  const copyLists = opts.copyLists ?? 1000
  for (let i = 0; i < copyLists; i++) {
    const n = 8 + (rng.nextU32() % 9)
    const list = Array.from({ length: n }, nextGroup)
    const line = list.join(" ")
    out.push({ instruction: COPY_INSTRUCTION, input: line, numbers: list, text: line })
  }
  const withDigits = english.filter((s) => /\d/.test(s))
  const sentences = Math.min(opts.sentences ?? withDigits.length, withDigits.length)
  for (const s of shuffled(withDigits, rng).slice(0, sentences)) {
    let first = true
    const drilled = s.replace(/\d+/g, (run) =>
      groupsOf(run).map((g) => {
        if (first) {
          first = false
          return nextGroup()
        }
        return randomDigits(g.length, rng)
      }).join("")
    )
    out.push({ text: drilled })
    const { instruction, answer } = offlineInstructionAndAnswer("translate_to_english", drilled)
    out.push({ instruction, input: drilled, numbers: findNumerals(drilled), text: answer })
  }
  return out
}
