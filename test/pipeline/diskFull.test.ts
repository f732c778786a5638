/**
 * A full disk while a stage writes its outputs or while the store publishes them (`ENOSPC`, injected into Node's
 * `fs` for files inside the stage's temporary folder): the run fails naming the file, the previously published
 * folder of that stage is left as it was (same files, same bytes), no temporary folder is left behind, and the next
 * run (disk freed) uses the cache again.
 */
import { createRequire, syncBuiltinESMExports } from "node:module"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { cacheEntries, makeToyStages, makeWorkspace, publishedKeys, runToy, statusOf, type ToyHooks, type Workspace } from "../support/toy.ts"

const require = createRequire(import.meta.url)
const nodeFs = require("node:fs") as typeof fs
const run = (...args: Parameters<typeof runToy>) => Effect.runPromise(runToy(...args))

const enospc = (syscall: string, file: string) =>
  Object.assign(new Error(`ENOSPC: no space left on device, ${syscall} '${file}'`), { code: "ENOSPC", errno: -28, syscall, path: file })

let restore: (() => void) | undefined
afterEach(() => {
  restore?.()
  restore = undefined
})

/** Makes every write to a file whose path matches `target` fail with ENOSPC (by path or through its open fd). */
const fillDiskFor = (target: RegExp): void => {
  const original = { openSync: nodeFs.openSync, writeFileSync: nodeFs.writeFileSync, closeSync: nodeFs.closeSync }
  const fds = new Map<number, string>()
  nodeFs.openSync = ((file: fs.PathLike, ...rest: Array<unknown>) => {
    const fd = (original.openSync as (...a: Array<unknown>) => number)(file, ...rest)
    fds.set(fd, String(file))
    return fd
  }) as typeof fs.openSync
  nodeFs.closeSync = ((fd: number) => {
    fds.delete(fd)
    original.closeSync(fd)
  }) as typeof fs.closeSync
  nodeFs.writeFileSync = ((file: fs.PathOrFileDescriptor, ...rest: Array<unknown>) => {
    const name = typeof file === "number" ? fds.get(file) ?? "" : String(file)
    if (target.test(name)) throw enospc("write", name)
    return (original.writeFileSync as (...a: Array<unknown>) => void)(file, ...rest)
  }) as typeof fs.writeFileSync
  syncBuiltinESMExports()
  restore = () => {
    Object.assign(nodeFs, original)
    syncBuiltinESMExports()
  }
}

/** Every file of a published folder with its bytes. */
const snapshot = (ws: Workspace, stage: string): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const key of publishedKeys(ws, stage)) {
    const dir = path.join(ws.cacheDir, stage, key)
    for (const f of fs.readdirSync(dir).sort()) out[`${key}/${f}`] = fs.readFileSync(path.join(dir, f), "base64")
  }
  return out
}

describe("a full disk (ENOSPC)", () => {
  for (const [what, target, names] of [
    ["while the stage writes an output", /\.tmp-[^/]+\/count\.json$/, "count.json"],
    ["while the store writes _meta.json during publishing", /\.tmp-[^/]+\/_meta\.json$/, "_meta.json"]
  ] as const) {
    it(`${what}: the run fails naming the file; the previous cache is intact and used again`, async () => {
      const ws = makeWorkspace("enospc")
      const hooks: ToyHooks = { calls: {} }
      const stages = makeToyStages(hooks)
      expect((await run(ws, stages)).report.failed).toBe(false)
      const before = snapshot(ws, "double")
      expect(Object.keys(before).length).toBeGreaterThan(0)

      fillDiskFor(target)
      const { report } = await run(ws, stages, { force: ["double"] })
      restore?.()
      restore = undefined
      expect(statusOf(report)).toEqual({ gen: "cached", double: "failed", sum: "skipped", side: "cached" })
      const error = report.stages.find((s) => s.stage === "double")?.error ?? ""
      expect(error).toContain("ENOSPC")
      expect(error).toContain(names)
      expect(error).toContain("the disk is full; free space and rerun")
      expect(snapshot(ws, "double")).toEqual(before)
      expect(cacheEntries(ws, "double").filter((n) => n.startsWith(".tmp-") || n.startsWith(".old-"))).toEqual([])

      const again = await run(ws, stages)
      expect(statusOf(again.report)).toEqual({ gen: "cached", double: "cached", sum: "cached", side: "cached" })
    })
  }
})
