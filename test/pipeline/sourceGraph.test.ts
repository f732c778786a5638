import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { codeDigest, openSourceGraph, parseImports } from "../../src/pipeline/sourceGraph.ts"

describe("parseImports", () => {
  it("finds static, re-export, side-effect and dynamic imports; marks type-only ones; ignores comments and strings", () => {
    const text = [
      `/** see import("./doc.ts") and from "./comment.ts" */`,
      `import { a, type B } from "./a.ts"`,
      `import type { C } from "./c.ts"`,
      `import * as d from "./d.ts"`,
      `import "./side.ts"`,
      `export { e } from "./e.ts"`,
      `export type { F } from "./f.ts"`,
      `// import { g } from "./g.ts"`,
      `const s = "import('./string.ts')"`,
      `const t = \`from "./template.ts"\``,
      `const lazy = () => import("./lazy.ts")`,
      `import {`,
      `  h,`,
      `  i`,
      `} from "./multi.ts"`,
      `export const x = "./not-an-import.ts"`
    ].join("\n")
    expect(parseImports(text)).toEqual([
      { specifier: "./a.ts", typeOnly: false, dynamic: false },
      { specifier: "./c.ts", typeOnly: true, dynamic: false },
      { specifier: "./d.ts", typeOnly: false, dynamic: false },
      { specifier: "./side.ts", typeOnly: false, dynamic: false },
      { specifier: "./e.ts", typeOnly: false, dynamic: false },
      { specifier: "./f.ts", typeOnly: true, dynamic: false },
      { specifier: "./lazy.ts", typeOnly: false, dynamic: true },
      { specifier: "./multi.ts", typeOnly: false, dynamic: false }
    ])
  })
})

describe("openSourceGraph", () => {
  const tree = (files: Record<string, string>): string => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "llink-src-"))
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true })
      fs.writeFileSync(path.join(root, name), text)
    }
    return root
  }

  it("reaches runtime imports (dynamic ones too) inside the root, not type-only ones nor packages", () => {
    const root = tree({
      "src/stage.ts": `import type { T } from "./types.ts"\nimport { lib } from "./lib.ts"\nimport * as fs from "node:fs"\nexport const run = () => import("./work.ts")`,
      "src/lib.ts": `export const lib = 1`,
      "src/work.ts": `import { lib } from "./lib.ts"\nimport { deep } from "./deep/deep.ts"\nimport "effect"`,
      "src/deep/deep.ts": `export const deep = 2`,
      "src/types.ts": `export type T = number`,
      "src/unused.ts": `export const u = 3`
    })
    const graph = openSourceGraph(path.join(root, "src"))
    const closure = graph.closure(path.join(root, "src/stage.ts"))
    expect(Object.keys(closure.files)).toEqual(["src/deep/deep.ts", "src/lib.ts", "src/stage.ts", "src/work.ts"])
    expect(closure.digest).toBe(codeDigest(closure.files))
  })

  it("the digest changes with any reached file and with nothing else", () => {
    const files = {
      "src/a.ts": `import { b } from "./b.ts"`,
      "src/b.ts": `export const b = 1`,
      "src/c.ts": `export const c = 1`
    }
    const one = tree(files)
    const digestOf = (root: string) => openSourceGraph(path.join(root, "src")).closure(path.join(root, "src/a.ts")).digest
    const base = digestOf(one)
    expect(digestOf(tree({ ...files, "src/c.ts": "export const c = 2" }))).toBe(base)
    expect(digestOf(tree({ ...files, "src/b.ts": "export const b = 2" }))).not.toBe(base)
  })
})
