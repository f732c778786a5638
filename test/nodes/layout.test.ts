/**
 * The layout rules (ARCHITECTURE.md): one folder per stage under src/nodes/, a stage never imports another stage, a
 * library never imports a stage, and a stage declaration's static imports stay light (no tfjs, no openai client), so
 * `llink status` and a fully cached run do not load them. The format library imports nothing above it (only src/errors). Tests mirror src/: a test file sits at the path of what it
 * tests, and every helper lives in test/support/.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { describe, expect, it } from "vitest"
import { stages } from "../../src/nodes/index.ts"
import { openSourceGraph } from "../../src/pipeline/sourceGraph.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")
const srcRoot = path.join(repoRoot, "src")
const nodesRoot = path.join(srcRoot, "nodes")
const graph = openSourceGraph(srcRoot)

const allSources = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? allSources(p) : e.name.endsWith(".ts") ? [p] : []
  })

const rel = (p: string) => path.relative(repoRoot, p).split(path.sep).join("/")
/** The stage folder a file lies in (`src/nodes/<stage>/…`), or undefined. */
const stageFolderOf = (p: string): string | undefined => {
  const r = path.relative(nodesRoot, p).split(path.sep)
  return r.length >= 2 && r[0] !== ".." ? r[0] : undefined
}

describe("layout", () => {
  const folders = fs.readdirSync(nodesRoot, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()

  it("every stage has its own folder with stage.ts and params.ts, and declares that file as its source", () => {
    expect(folders).toEqual(stages.map((s) => s.name).sort())
    for (const stage of stages) {
      const decl = path.join(nodesRoot, stage.name, "stage.ts")
      expect(fs.existsSync(decl), decl).toBe(true)
      expect(fs.existsSync(path.join(nodesRoot, stage.name, "params.ts")), stage.name).toBe(true)
      expect(stage.source).toBe(pathToFileURL(decl).href)
    }
  })

  it("a stage never imports another stage; a library never imports a stage", () => {
    const violations: Array<string> = []
    for (const file of allSources(srcRoot)) {
      const own = stageFolderOf(file)
      const inCli = file.startsWith(path.join(srcRoot, "cli") + path.sep)
      const isRegistry = path.dirname(file) === nodesRoot
      for (const ref of graph.file(file).imports) {
        if (ref.resolved === undefined) continue
        const target = stageFolderOf(ref.resolved)
        const toRegistry = path.dirname(ref.resolved) === nodesRoot
        if (own !== undefined) {
          if (target !== undefined && target !== own) violations.push(`${rel(file)} imports ${rel(ref.resolved)} (stage ${target})`)
          if (toRegistry && !ref.typeOnly) violations.push(`${rel(file)} imports ${rel(ref.resolved)} at run time (only types may come from the registry)`)
        } else if (!inCli && !isRegistry && (target !== undefined || toRegistry)) {
          violations.push(`library ${rel(file)} imports ${rel(ref.resolved)}`)
        }
      }
    }
    expect(violations).toEqual([])
  })

  it("the format library (src/formats) imports nothing of llink but itself and src/errors", () => {
    const formatsRoot = path.join(srcRoot, "formats")
    const errorsRoot = path.join(srcRoot, "errors")
    const upward: Array<string> = []
    for (const file of allSources(formatsRoot)) {
      for (const ref of graph.file(file).imports) {
        if (ref.resolved === undefined) continue
        if (!ref.resolved.startsWith(formatsRoot + path.sep) && !ref.resolved.startsWith(errorsRoot + path.sep)) upward.push(`${rel(file)} imports ${rel(ref.resolved)}`)
      }
    }
    expect(allSources(formatsRoot).length).toBeGreaterThan(5)
    expect(upward).toEqual([])
  })

  it("src/ has no static import cycle", () => {
    const files = allSources(srcRoot)
    const edges = new Map(files.map((f) => [f, graph.file(f).imports.filter((r) => r.resolved !== undefined && !r.typeOnly && !r.dynamic).map((r) => r.resolved!)]))
    // Tarjan's strongly connected components: a component of more than one file is a cycle
    let next = 0
    const index = new Map<string, number>()
    const low = new Map<string, number>()
    const stack: Array<string> = []
    const onStack = new Set<string>()
    const cycles: Array<string> = []
    const visit = (v: string): void => {
      index.set(v, next)
      low.set(v, next++)
      stack.push(v)
      onStack.add(v)
      for (const w of edges.get(v) ?? []) {
        if (!index.has(w)) {
          visit(w)
          low.set(v, Math.min(low.get(v)!, low.get(w)!))
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
      if (low.get(v) !== index.get(v)) return
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(rel(w))
      } while (w !== v)
      if (component.length > 1) cycles.push(component.sort().join(" ↔ "))
    }
    for (const f of files) if (!index.has(f)) visit(f)
    expect(cycles).toEqual([])
  })

  it("a stage declaration's static imports load neither tfjs nor the openai client", () => {
    const heavy: Array<string> = []
    for (const stage of stages) {
      const seen = new Set<string>()
      const stack = [path.join(nodesRoot, stage.name, "stage.ts")]
      while (stack.length > 0) {
        const file = stack.pop()!
        if (seen.has(file)) continue
        seen.add(file)
        for (const ref of graph.file(file).imports) {
          if (ref.typeOnly || ref.dynamic) continue
          if (/^(@tensorflow\/|openai$)/.test(ref.specifier)) heavy.push(`${stage.name}: ${rel(file)} imports ${ref.specifier}`)
          if (ref.resolved !== undefined) stack.push(ref.resolved)
        }
      }
    }
    expect(heavy).toEqual([])
  })

  it("tests mirror src/: each test folder names a src folder or module, and helpers live only in test/support", () => {
    const testRoot = path.join(repoRoot, "test")
    const supportRoot = path.join(testRoot, "support")
    const strays: Array<string> = []
    for (const file of allSources(testRoot)) {
      if (file.startsWith(supportRoot + path.sep)) continue
      if (!file.endsWith(".test.ts")) {
        strays.push(`${rel(file)} is a helper outside test/support`)
        continue
      }
      const mirror = path.join(srcRoot, path.relative(testRoot, path.dirname(file)))
      if (!fs.existsSync(mirror) && !fs.existsSync(`${mirror}.ts`)) strays.push(`${rel(file)} has no src/ counterpart`)
    }
    expect(strays).toEqual([])
  })
})
