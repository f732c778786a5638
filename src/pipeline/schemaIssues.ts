/** Schema decoding failures as one line a person can act on: `field.path: what was wrong; other.field: …`. */
import { SchemaIssue } from "effect"

/** A Standard Schema issue path as `a.b.0`. */
export const dottedPath = (p: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): string =>
  (p ?? []).map((k) => String(typeof k === "object" && k !== null ? k.key : k)).join(".")

const keyOf = (k: PropertyKey | { readonly key: PropertyKey }): PropertyKey => (typeof k === "object" && k !== null ? k.key : k)

/** The value at an issue's path inside `input` (undefined when the path does not exist). */
const valueAt = (input: unknown, p: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): unknown => {
  let cursor = input
  for (const k of p ?? []) {
    const key = keyOf(k)
    if (typeof cursor !== "object" || cursor === null || typeof key === "symbol") return undefined
    cursor = (cursor as Record<string | number, unknown>)[key]
  }
  return cursor
}

const shortJson = (u: unknown): string => {
  const text = JSON.stringify(u) ?? String(u)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/**
 * Every leaf issue of `issue` as `path: message` (`(root)` for the value itself), in order; with `input`, the
 * offending value is appended (`…, got "three"`) when the message does not already say it.
 */
export const describeIssues = (
  issue: SchemaIssue.Issue,
  input?: { readonly value: unknown }
): Array<{ readonly path: string; readonly text: string }> =>
  SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues.map((i) => {
    const at = dottedPath(i.path)
    const value = input === undefined ? undefined : valueAt(input.value, i.path)
    const got = value === undefined || i.message.includes(", got ") ? "" : `, got ${shortJson(value)}`
    return { path: at, text: `${at === "" ? "(root)" : at}: ${i.message}${got}` }
  })

/** `describeIssues` joined into one line. */
export const describeSchemaError = (error: { readonly issue: SchemaIssue.Issue }, input?: { readonly value: unknown }): string =>
  describeIssues(error.issue, input).map((i) => i.text).join("; ")
