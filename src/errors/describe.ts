/**
 * The one way llink turns something thrown or failed into text for a person: the message of each error along its
 * cause chain, joined by ": ". A cause whose text the outer message already holds is skipped (most wrappers quote
 * their cause), a Node system error's code comes first when its message lacks it, and an error without a message
 * is named by its tag. Only causes that are errors (or carry a message) are followed, never Effect `Cause` values.
 */

const MAX_DEPTH = 8

const tagOf = (e: object): string | undefined => ("_tag" in e && typeof e._tag === "string" ? e._tag : undefined)

const ownText = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code
    if (e.message === "") return tagOf(e) ?? e.name
    return typeof code === "string" && !e.message.includes(code) ? `${code}: ${e.message}` : e.message
  }
  if (typeof e === "object" && e !== null) {
    if ("message" in e && typeof e.message === "string" && e.message !== "") return e.message
    return tagOf(e) ?? String(e)
  }
  return String(e)
}

const causeOf = (e: unknown): unknown => {
  if (typeof e !== "object" || e === null || !("cause" in e)) return undefined
  const c = e.cause
  return c instanceof Error || (typeof c === "object" && c !== null && "message" in c && typeof c.message === "string") ? c : undefined
}

export const describeError = (error: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < MAX_DEPTH && current !== undefined; depth++) {
    const text = ownText(current)
    if (text !== "" && !parts.some((p) => p.includes(text))) parts.push(text)
    current = causeOf(current)
  }
  return parts.join(": ")
}
