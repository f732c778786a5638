/**
 * The import graph of llink's own TypeScript sources, for code-aware cache keys and the layering rule.
 *
 * - `parseImports(text)`: every module specifier a file names — `import … from "x"`, `import "x"`,
 *   `export … from "x"` and `import("x")` with a string literal — after blanking comments and the insides of
 *   string and template literals, so a specifier quoted in a doc comment does not count. `import type` and
 *   `export type … from` are marked `typeOnly`: they are erased before the code runs, so they cannot change what
 *   it computes.
 * - `openSourceGraph(root)`: resolves relative specifiers (`./x.ts`) against the importing file and walks, from an
 *   entry file, every runtime import that stays inside `root` (packages and Node built-ins are left out: their
 *   versions are recorded in the manifest instead). Files are read and digested once per graph.
 * - `codeDigest`: sha256 over the reached files' relative paths and content digests, in path order.
 *
 * Gotcha: a specifier built at run time (`import(name)`) cannot be followed; llink's lazy stage loaders always use
 * literal paths (`importWork(stage, () => import("./work.ts"))`).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { sha256 } from "./digest.ts"

export interface ImportRef {
  readonly specifier: string
  /** `import type` / `export type … from`: erased at run time. */
  readonly typeOnly: boolean
  /** `import("…")`. */
  readonly dynamic: boolean
}

/**
 * `text` with comments blanked and string/template literal bodies replaced by spaces (quotes kept), so that a
 * regular expression over the result sees only code. Offsets and lengths are preserved.
 */
const codeOnly = (text: string): { readonly code: string; readonly literals: ReadonlyMap<number, string> } => {
  const out = text.split("")
  const literals = new Map<number, string>()
  let i = 0
  const n = text.length
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " "
  }
  while (i < n) {
    const c = text[i]
    const next = text[i + 1]
    if (c === "/" && next === "/") {
      const end = text.indexOf("\n", i)
      const stop = end < 0 ? n : end
      blank(i, stop)
      i = stop
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2)
      const stop = end < 0 ? n : end + 2
      blank(i, stop)
      i = stop
    } else if (c === "\"" || c === "'" || c === "`") {
      let j = i + 1
      while (j < n && text[j] !== c) {
        if (text[j] === "\\") j++
        else if (c !== "`" && text[j] === "\n") break
        j++
      }
      literals.set(i, text.slice(i + 1, j))
      blank(i + 1, j)
      i = j + 1
    } else {
      i++
    }
  }
  return { code: out.join(""), literals }
}

const STATIC = /(^|[;\s}])(import|export)(\s+type)?\s+(?:[\w*$\s{},]*?\s+from\s*)?(["'])/g
const DYNAMIC = /(^|[^\w$.])import\s*\(\s*(["'])/g

/** The module specifiers `text` imports (see the module doc). */
export const parseImports = (text: string): Array<ImportRef> => {
  const { code, literals } = codeOnly(text)
  const refs: Array<{ readonly at: number; readonly ref: ImportRef }> = []
  for (const m of code.matchAll(STATIC)) {
    const quoteAt = m.index + m[0].length - 1
    const specifier = literals.get(quoteAt)
    if (specifier === undefined) continue
    // `import { type A } from` stays a runtime import (the module still loads); only `import type` is erased.
    refs.push({ at: quoteAt, ref: { specifier, typeOnly: m[3] !== undefined, dynamic: false } })
  }
  for (const m of code.matchAll(DYNAMIC)) {
    const quoteAt = m.index + m[0].length - 1
    const specifier = literals.get(quoteAt)
    if (specifier !== undefined) refs.push({ at: quoteAt, ref: { specifier, typeOnly: false, dynamic: true } })
  }
  return refs.sort((a, b) => a.at - b.at).map((r) => r.ref)
}

export interface SourceFile {
  /** Path relative to the graph's root's parent (`src/nodes/stageB/work.ts`), `/`-separated. */
  readonly name: string
  readonly absolute: string
  readonly digest: string
  readonly imports: ReadonlyArray<ImportRef & { readonly resolved: string | undefined }>
}

export interface CodeClosure {
  /** Relative file name → content digest, sorted by name. */
  readonly files: Readonly<Record<string, string>>
  readonly digest: string
}

export interface SourceGraph {
  /** The folder whose files count (absolute), e.g. `<repo>/src`. */
  readonly root: string
  readonly file: (absolute: string) => SourceFile
  /** Every file reached from `entry` through runtime imports inside `root` (the entry included). */
  readonly closure: (entry: string) => CodeClosure
}

/** Combines a closure's files into one digest (`<name>\t<digest>\n` per file, in name order). */
export const codeDigest = (files: Readonly<Record<string, string>>): string =>
  sha256(Object.keys(files).sort().map((name) => `${name}\t${files[name]}\n`).join(""))

/**
 * A lazily read import graph of the `.ts` files under `root`. Names are relative to `root`'s parent, so a
 * stage's file list reads `src/nodes/…` wherever the checkout lives. Throws when a file cannot be read.
 */
export const openSourceGraph = (root: string): SourceGraph => {
  const absRoot = path.resolve(root)
  const base = path.dirname(absRoot)
  const cache = new Map<string, SourceFile>()
  const inside = (p: string) => p === absRoot || p.startsWith(absRoot + path.sep)
  const file = (absolute: string): SourceFile => {
    const hit = cache.get(absolute)
    if (hit !== undefined) return hit
    const text = fs.readFileSync(absolute, "utf8")
    const imports = parseImports(text).map((ref) => {
      if (!ref.specifier.startsWith(".")) return { ...ref, resolved: undefined }
      const resolved = path.resolve(path.dirname(absolute), ref.specifier)
      return { ...ref, resolved: inside(resolved) ? resolved : undefined }
    })
    const entry: SourceFile = {
      name: path.relative(base, absolute).split(path.sep).join("/"),
      absolute,
      digest: sha256(text),
      imports
    }
    cache.set(absolute, entry)
    return entry
  }
  const closures = new Map<string, CodeClosure>()
  const closure = (entry: string): CodeClosure => {
    const start = path.resolve(entry)
    const known = closures.get(start)
    if (known !== undefined) return known
    const seen = new Map<string, SourceFile>()
    const stack = [start]
    while (stack.length > 0) {
      const next = stack.pop()!
      if (seen.has(next)) continue
      const f = file(next)
      seen.set(next, f)
      for (const ref of f.imports) if (!ref.typeOnly && ref.resolved !== undefined) stack.push(ref.resolved)
    }
    const names = [...seen.values()].map((f) => [f.name, f.digest] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1))
    const files = Object.fromEntries(names)
    const result = { files, digest: codeDigest(files) }
    closures.set(start, result)
    return result
  }
  return { root: absRoot, file, closure }
}
