/**
 * The CLI kit the commands share: the common flags (`--config`, `--set`, `--run-dir`), duration parsing for flags such
 * as `--lease` and `--grace`, table formatting, and how an error that stops a command is printed.
 */
import { Duration, Effect } from "effect"
import { Flag } from "effect/cli"
import { describeError } from "../errors/describe.ts"

export const configFlag = Flag.String("config").pipe(
  Flag.withDescription("config file (default: llink.config.json in the current folder, all defaults if absent)"),
  Flag.optional
)
export const setFlag = Flag.String("set").pipe(
  Flag.withDescription("override a config field, e.g. --set split.seed=18 (repeatable; value parsed as JSON if it parses)"),
  Flag.atLeast(0)
)
export const DEFAULT_RUN_DIR = "runs/default"
export const runDirFlag = Flag.String("run-dir").pipe(
  Flag.withDescription("run directory (manifest.json, artifacts/ links, lock)"),
  Flag.withDefault(DEFAULT_RUN_DIR)
)

/**
 * Prints an error that stopped a command (`error: <message>`) and sets the exit code to 1, instead of letting the
 * runtime print a stack trace.
 */
export const reportCommandError = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A | void, never, R> =>
  self.pipe(
    Effect.catch((error: E) =>
      Effect.sync(() => {
        process.stderr.write(`error: ${describeError(error)}\n`)
        process.exitCode = 1
      })
    )
  )

/** Pads columns to their widest cell. */
export const formatTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

/** `30s`, `500ms`, `2m` (or `30 seconds`, `500 millis`, `2 minutes`) → a Duration; undefined when it is not one. */
export const parseDuration = (text: string): Duration.Duration | undefined => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|millis|s|seconds|m|minutes)$/.exec(text.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  return m[2] === "ms" || m[2] === "millis" ? Duration.millis(n) : m[2] === "s" || m[2] === "seconds" ? Duration.seconds(n) : Duration.minutes(n)
}
