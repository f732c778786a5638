/**
 * Loading the run configuration: JSON file → `--set` overrides → Schema decode (unknown keys are errors) → relative
 * paths resolved against the config file's folder.
 *
 * - The default file is `llink.config.json` in the working directory; when it does not exist, every field takes its
 *   default. A file named with `--config` must exist.
 * - `--set a.b.c=value`: `value` is parsed as JSON when it parses (`18`, `true`, `[1,2]`, `"x"`), else taken as a
 *   string; if the field expects a string and the JSON value is not one (`--set corpus.path=123`), the raw text is
 *   used. Intermediate objects are created as needed. An unknown path is an error (the decode rejects excess keys).
 * - Errors are `ConfigError`s naming the file and line of the offending key (or the `--set` that caused it), the
 *   field path and what was expected, e.g. `llink.config.json:7: split.train: Expected number, got "many"`.
 * - Every string field whose name ends in `path`, `Path` or `Dir` (`corpus.path`, `corpus.pairPath`, `cacheDir`,
 *   ...) that holds a relative path is resolved against the config file's folder (the working directory when there
 *   is no file). Empty strings are left alone.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Cause, Effect, Exit, Result, Schema, SchemaAST, SchemaIssue, SchemaParser } from "effect"
import { canonicalJson, sha256 } from "./digest.ts"
import { ConfigError } from "./errors.ts"
import { errnoCode } from "../formats/file.ts"
import { describeError } from "../errors/describe.ts"

export const DEFAULT_CONFIG_FILE = "llink.config.json"

export interface LoadConfigOptions {
  /** Config file given with `--config` (must exist); default: `llink.config.json` in `cwd` (may be absent). */
  readonly file?: string | undefined
  /** `--set path=value` overrides, applied in order. */
  readonly sets?: ReadonlyArray<string> | undefined
  /** Working directory (default: `process.cwd()`). */
  readonly cwd?: string | undefined
}

export interface LoadedConfig<A> {
  /** The decoded config, with relative paths resolved. */
  readonly value: A
  /** Absolute path of the file read, or null when the default file was absent (all defaults). */
  readonly file: string | null
  /** The folder relative paths were resolved against. */
  readonly dir: string
  readonly overrides: ReadonlyArray<string>
  /** sha256 of the canonical JSON of the decoded config before path resolution (the same on every machine). */
  readonly digest: string
}

type JsonPath = ReadonlyArray<PropertyKey>
/** The path of a Standard Schema issue as plain keys. */
const issuePath = (p: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): JsonPath =>
  (p ?? []).map((k) => (typeof k === "object" && k !== null ? k.key : k))
const pathKey = (p: JsonPath): string => JSON.stringify(p.map((k) => (typeof k === "symbol" ? String(k) : k)))
const showPath = (p: JsonPath): string =>
  p.length === 0
    ? "(root)"
    : p.map((k, i) => (typeof k === "number" ? `[${k}]` : `${i > 0 ? "." : ""}${String(k)}`)).join("")

/**
 * Line numbers (1-based) of every key and array element in a valid JSON text, by path (see `pathKey`).
 * The text must already have parsed with `JSON.parse`.
 */
export const locateJsonPaths = (text: string): ReadonlyMap<string, number> => {
  const lines = new Map<string, number>()
  let i = 0
  let line = 1
  const skipSpace = () => {
    while (i < text.length) {
      const c = text[i]
      if (c === "\n") line++
      else if (c !== " " && c !== "\t" && c !== "\r") break
      i++
    }
  }
  const readString = (): string => {
    const start = i
    i++
    while (i < text.length && text[i] !== "\"") i += text[i] === "\\" ? 2 : 1
    i++
    return JSON.parse(text.slice(start, i)) as string
  }
  const readValue = (at: Array<PropertyKey>): void => {
    skipSpace()
    const c = text[i]
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]"
      i++
      skipSpace()
      if (text[i] === close) {
        i++
        return
      }
      for (let n = 0;; n++) {
        skipSpace()
        let child: Array<PropertyKey>
        if (c === "{") {
          const keyLine = line
          child = [...at, readString()]
          lines.set(pathKey(child), keyLine)
          skipSpace()
          i++ // ':'
        } else {
          child = [...at, n]
          skipSpace()
          lines.set(pathKey(child), line)
        }
        readValue(child)
        skipSpace()
        if (text[i++] !== ",") return
      }
    }
    if (c === "\"") {
      readString()
      return
    }
    while (i < text.length && !/[,\]}\s]/.test(text[i])) i++
  }
  readValue([])
  return lines
}

/** The line of a JSON syntax error, from V8's message (`... (line 3 column 5)` or `... at position 42`). */
const syntaxErrorLine = (text: string, message: string): number | undefined => {
  const byLine = /\(line (\d+) column \d+\)/.exec(message)
  if (byLine) return Number(byLine[1])
  const byPosition = /at position (\d+)/.exec(message)
  if (byPosition) return text.slice(0, Number(byPosition[1])).split("\n").length
  return undefined
}

interface Override {
  readonly source: string
  readonly path: ReadonlyArray<string | number>
  readonly raw: string
  value: unknown
}

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const parseOverride = (source: string, file: string): Result.Result<Override, ConfigError> => {
  const eq = source.indexOf("=")
  const fail = (message: string) =>
    Result.fail(new ConfigError({ file, path: source, message: `--set ${source}: ${message}` }))
  if (eq <= 0) return fail("expected path=value, e.g. --set split.seed=18")
  const pathText = source.slice(0, eq).trim()
  const segments = pathText.split(".")
  if (segments.some((s) => s === "")) return fail(`invalid path "${pathText}"`)
  const raw = source.slice(eq + 1)
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (cause) {
    if (!(cause instanceof SyntaxError)) throw cause
    value = raw // not JSON: taken as a string (documented)
  }
  return Result.succeed({
    source,
    path: segments.map((s) => (/^\d+$/.test(s) ? Number(s) : s)),
    raw,
    value
  })
}

const applyOverride = (root: Record<string, unknown>, o: Override, file: string): ConfigError | undefined => {
  let cursor: Record<string, unknown> | Array<unknown> = root
  for (let k = 0; k < o.path.length - 1; k++) {
    const segment = o.path[k]
    const current: unknown = Array.isArray(cursor) ? cursor[Number(segment)] : cursor[String(segment)]
    if (current === undefined) {
      const created: Record<string, unknown> = {}
      if (Array.isArray(cursor)) cursor[Number(segment)] = created
      else cursor[String(segment)] = created
      cursor = created
    } else if (isRecord(current) || Array.isArray(current)) {
      cursor = current
    } else {
      const at = showPath(o.path.slice(0, k + 1))
      return new ConfigError({ file, path: at, message: `--set ${o.source}: ${at} is not an object` })
    }
  }
  const last = o.path[o.path.length - 1]
  if (Array.isArray(cursor)) cursor[Number(last)] = o.value
  else cursor[String(last)] = o.value
  return undefined
}

const valueAt = (root: unknown, p: JsonPath): { readonly found: boolean; readonly value?: unknown } => {
  let cursor: unknown = root
  for (const k of p) {
    if (typeof cursor !== "object" || cursor === null || typeof k === "symbol") return { found: false }
    const next: unknown = (cursor as Record<string | number, unknown>)[k]
    if (next === undefined && !(k in cursor)) return { found: false }
    cursor = next
  }
  return { found: true, value: cursor }
}

const isPrefix = (a: JsonPath, b: JsonPath): boolean => a.length <= b.length && a.every((k, i) => k === b[i])

/** Known keys of the struct that rejected an excess key, by the excess key's path. */
const collectKnownKeys = (issue: SchemaIssue.Issue, at: JsonPath, out: Map<string, ReadonlyArray<string>>): void => {
  switch (issue._tag) {
    case "Pointer":
      collectKnownKeys(issue.issue, [...at, ...issue.path], out)
      return
    case "Composite":
    case "AnyOf":
      for (const child of issue.issues) collectKnownKeys(child, at, out)
      return
    case "Encoding":
    case "Filter":
      collectKnownKeys(issue.issue, at, out)
      return
    case "UnexpectedKey":
      if (SchemaAST.isObjects(issue.ast)) {
        out.set(pathKey(at), issue.ast.propertySignatures.map((p) => String(p.name)))
      }
      return
    default:
      return
  }
}

const shortJson = (u: unknown): string => {
  const text = JSON.stringify(u) ?? String(u)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/** Loads and decodes a config with `schema` (see the module doc). llink's own is `loadConfig` in src/nodes/config.ts. */
export const loadConfigWith = <A>(
  schema: Schema.Codec<A, unknown>,
  options?: LoadConfigOptions
): Effect.Effect<LoadedConfig<A>, ConfigError> =>
  Effect.gen(function*() {
    const cwd = options?.cwd ?? process.cwd()
    const explicit = options?.file !== undefined
    const file = path.resolve(cwd, options?.file ?? DEFAULT_CONFIG_FILE)
    const display = path.relative(cwd, file).startsWith("..") ? file : path.relative(cwd, file) || file
    const configError = (at: string, message: string) => new ConfigError({ file, path: at, message })

    let text: string | undefined
    try {
      text = fs.readFileSync(file, "utf8")
    } catch (cause) {
      if (errnoCode(cause) !== "ENOENT" || explicit) {
        return yield* configError("", `${display}: cannot read the config file: ${describeError(cause)}`)
      }
    }

    let raw: unknown = {}
    if (text !== undefined) {
      try {
        raw = JSON.parse(text)
      } catch (cause) {
        const message = describeError(cause)
        const line = syntaxErrorLine(text, message)
        return yield* configError("", `${display}${line !== undefined ? `:${line}` : ""}: invalid JSON: ${message}`)
      }
    }
    const lines = text !== undefined ? locateJsonPaths(text) : new Map<string, number>()

    const overrides: Array<Override> = []
    for (const source of options?.sets ?? []) {
      const parsed = parseOverride(source, file)
      if (Result.isFailure(parsed)) return yield* parsed.failure
      overrides.push(parsed.success)
    }

    const decode = (input: unknown) =>
      SchemaParser.decodeUnknownExit(schema)(input, { onExcessProperty: "error", errors: "all" })
    const build = (): Result.Result<unknown, ConfigError> => {
      const copy: unknown = structuredClone(raw)
      if (overrides.length > 0 && !isRecord(copy)) {
        return Result.fail(configError("", `${display}: the config must be a JSON object`))
      }
      for (const o of overrides) {
        const error = applyOverride(copy as Record<string, unknown>, o, file)
        if (error !== undefined) return Result.fail(error)
      }
      return Result.succeed(copy)
    }

    let input = build()
    if (Result.isFailure(input)) return yield* input.failure
    let exit = decode(input.success)
    // `--set corpus.path=123`: retry overrides whose JSON value was rejected with their raw text.
    if (Exit.isFailure(exit)) {
      let retried = false
      const first = Cause.findError(exit.cause)
      if (Result.isSuccess(first)) {
        const issues = SchemaIssue.makeFormatterStandardSchemaV1()(first.success).issues
        for (const o of overrides) {
          if (typeof o.value === "string") continue
          if (issues.some((i) => pathKey(issuePath(i.path)) === pathKey(o.path) && /Expected string/.test(i.message))) {
            o.value = o.raw
            retried = true
          }
        }
      }
      if (retried) {
        input = build()
        if (Result.isFailure(input)) return yield* input.failure
        exit = decode(input.success)
      }
    }

    if (Exit.isFailure(exit)) {
      const found = Cause.findError(exit.cause)
      if (Result.isFailure(found)) {
        return yield* configError("", `${display}: ${Cause.pretty(exit.cause)}`)
      }
      const issue = found.success
      const known = new Map<string, ReadonlyArray<string>>()
      collectKnownKeys(issue, [], known)
      const messages = SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues.map((entry) => {
        const at = issuePath(entry.path)
        let reason = entry.message
        const knownKeys = known.get(pathKey(at))
        if (knownKeys !== undefined) {
          const parent = at.length > 1 ? ` of ${showPath(at.slice(0, -1))}` : ""
          reason = `unknown field "${String(at[at.length - 1])}" (known fields${parent}: ${knownKeys.join(", ")})`
        } else {
          const actual = valueAt(input.success, at)
          if (actual.found && !reason.includes(", got ")) reason = `${reason}, got ${shortJson(actual.value)}`
        }
        const override = [...overrides].reverse().find((o) => isPrefix(o.path, at) || isPrefix(at, o.path))
        if (override !== undefined) return { at, text: `--set ${override.source}: ${showPath(at)}: ${reason}` }
        let line: number | undefined
        for (let n = at.length; n >= 1 && line === undefined; n--) line = lines.get(pathKey(at.slice(0, n)))
        if (line === undefined && text !== undefined) line = 1
        const where = text !== undefined ? `${display}:${line}` : `${display} (defaults)`
        return { at, text: `${where}: ${showPath(at)}: ${reason}` }
      })
      return yield* configError(showPath(messages[0]?.at ?? []), messages.map((m) => m.text).join("\n"))
    }

    const value = exit.value
    const digest = yield* Effect.try({
      try: () => sha256(canonicalJson(value)),
      catch: (cause) => configError("", `${display}: the decoded config is not JSON-serialisable: ${describeError(cause)}`)
    })
    const dir = text !== undefined ? path.dirname(file) : cwd
    return {
      value: resolveConfigPaths(value, dir),
      file: text !== undefined ? file : null,
      dir,
      overrides: overrides.map((o) => o.source),
      digest
    }
  }).pipe(Effect.withSpan("Config.load"))

const PATH_FIELD = /(path|Path|Dir)$/

/**
 * Returns a copy of `value` in which every non-empty relative string under a key ending in `path`/`Path`/`Dir` is
 * resolved against `dir`.
 */
export const resolveConfigPaths = <A>(value: A, dir: string): A => {
  const walk = (u: unknown, key: string | undefined): unknown => {
    if (typeof u === "string") {
      return key !== undefined && PATH_FIELD.test(key) && u !== "" && !path.isAbsolute(u) ? path.resolve(dir, u) : u
    }
    if (Array.isArray(u)) return u.map((x) => walk(x, undefined))
    if (isRecord(u)) return Object.fromEntries(Object.entries(u).map(([k, v]) => [k, walk(v, k)]))
    return u
  }
  return walk(value, undefined) as A
}
