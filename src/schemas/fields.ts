/**
 * The vocabulary of config fields: every numeric field of every config section says here what it may hold, so a bad
 * value fails when the config is loaded (naming the file, line, field, value and rule), never hours later when a
 * stage reaches it.
 *
 * - `Count` (integer ≥ 0) and `Size` (integer ≥ 1) for counts, sizes, steps and seeds' neighbours;
 * - `Seed` (any safe integer);
 * - `Positive` (finite > 0) for rates, temperatures, epsilons and clips;
 * - `NonNegative` (finite ≥ 0) for weights and floors;
 * - `Dropout` and `Beta` ([0, 1)), `Fraction` ([0, 1]);
 * - `Real` (any finite number).
 *
 * `dflt(schema, value)` makes the key optional with a decoding default. `crossCheck` builds a struct-level rule whose
 * failure points at one field (so the loader can name that field's line).
 */
import { Effect, Schema } from "effect"

/** Field with a decoding default (the key may be absent). */
export const dflt = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

/**
 * How new embedding rows (added tokens) start: all zeros, the mean of the existing rows, or N(0, std²) (std default
 * 0.02, transformers' `initializer_range`); see `extendEmbeddingRows` in models/tokenizer.ts.
 */
export const EmbeddingInitRule = Schema.Literals(["zeros", "mean", "normal"])
export type EmbeddingInitRule = typeof EmbeddingInitRule.Type

const rule = (message: string) => ({ message })

/** Any finite number. */
export const Real = Schema.Finite
/** An integer (counts that may be anything, such as seeds). */
export const Seed = Schema.Int
/** An integer ≥ 0. */
export const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0, rule("Expected a whole number ≥ 0")))
/** An integer ≥ 1. */
export const Size = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1, rule("Expected a whole number ≥ 1")))
/** A finite number > 0. */
export const Positive = Schema.Finite.check(Schema.isGreaterThan(0, rule("Expected a number > 0")))
/** A finite number ≥ 0. */
export const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0, rule("Expected a number ≥ 0")))
/** A probability that must stay below 1: dropout. */
export const Dropout = Schema.Finite.check(
  Schema.isGreaterThanOrEqualTo(0, rule("Expected a number in [0, 1)")),
  Schema.isLessThan(1, rule("Expected a number in [0, 1)"))
)
/** An Adam β: [0, 1). */
export const Beta = Dropout
/** A share: [0, 1]. */
export const Fraction = Schema.Finite.check(
  Schema.isGreaterThanOrEqualTo(0, rule("Expected a number in [0, 1]")),
  Schema.isLessThanOrEqualTo(1, rule("Expected a number in [0, 1]"))
)

/**
 * A struct-level rule over several fields: `check(value)` returns a message when the rule is broken; the failure is
 * reported at `field` (a key of the struct, or a path of keys for a rule across config sections).
 */
export const crossCheck = <T>(
  field: (keyof T & string) | readonly [keyof T & string, ...Array<string>],
  check: (value: T) => string | undefined
) =>
  Schema.makeFilter<T>((value) => {
    const message = check(value)
    return message === undefined ? undefined : { path: typeof field === "string" ? [field] : [...field], issue: message }
  })

/** Shapes of the tiny checkpoints: "test" (the test suite's) or "mini" (the embedded default's pretrained miniature). */
export const TinySize = Schema.Literals(["test", "mini"])
