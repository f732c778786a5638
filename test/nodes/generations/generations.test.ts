/**
 * `generations`: generate's rows joined with generatePeers' columns on `id`, in generate's order; a table that
 * misses an example, or holds one twice, is an error naming the file.
 */
import * as path from "node:path"
import * as fs from "node:fs"
import { Effect, Stream } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { writeTable } from "../../../src/formats/parquet/table.ts"
import { generations } from "../../../src/nodes/generations/stage.ts"
import { MainGenerationColumns, type MainGenerationRow, PeerGenerationColumns, type PeerGenerationRow } from "../../../src/schemas/sft.ts"
import { configOf, makeContext, paramsOf, readRows, tmpDir } from "../../support/stageB.ts"

const base = tmpDir("generations-join")
afterAll(() => fs.rmSync(base, { recursive: true, force: true }))

const main = (id: number): MainGenerationRow => ({
  id, row: 10 + id, task_type: "translate_to_english", bucket: "content", instruction: "Translate.", foreign: `f${id}`,
  reference: `r${id}`, target: `t${id}`, llink: `L${id}`, base: `B${id}`, finetune: `F${id}`,
  llinkPromptTokens: 5, basePromptTokens: 9, finetunePromptTokens: 8
})
const peer = (id: number): PeerGenerationRow => ({ id, langbridge: `LB${id}`, mindmerger: null, langbridgePromptTokens: 7, mindmergerPromptTokens: null })

const write = async (name: string, columns: typeof MainGenerationColumns | typeof PeerGenerationColumns, rows: ReadonlyArray<object>) => {
  const file = path.join(base, name)
  await Effect.runPromise(writeTable(file, columns, Stream.fromIterable(rows.map((r) => ({ ...r })))))
  return file
}

const join = async (dir: string, mainFile: string, peersFile: string) => {
  const ctx = makeContext(generations, paramsOf(generations, configOf({})), { "generations.main": mainFile, "generations.peers": peersFile }, path.join(base, dir))
  const exit = await Effect.runPromiseExit(generations.run(ctx))
  return { ctx, exit }
}

describe("generations", () => {
  it("joins the peers' columns onto generate's rows by id, in generate's order", async () => {
    const m = await write("main.parquet", MainGenerationColumns, [main(2), main(0), main(1)])
    const p = await write("peers.parquet", PeerGenerationColumns, [peer(0), peer(1), peer(2)])
    const { ctx, exit } = await join("ok", m, p)
    expect(exit._tag).toBe("Success")
    const rows = await readRows(ctx.outputs["generations"])
    expect(rows.map((r) => [r["id"], r["llink"], r["langbridge"], r["mindmerger"], r["langbridgePromptTokens"]])).toEqual([
      [2, "L2", "LB2", null, 7],
      [0, "L0", "LB0", null, 7],
      [1, "L1", "LB1", null, 7]
    ])
  })

  it("an example missing from the peers' table, or there twice, is an error naming the file", async () => {
    const m = await write("main2.parquet", MainGenerationColumns, [main(0), main(1)])
    const missing = await write("peers-missing.parquet", PeerGenerationColumns, [peer(0)])
    const r1 = await join("missing", m, missing)
    expect(String(r1.exit._tag === "Failure" ? JSON.stringify(r1.exit.cause) : "")).toContain("example 1 of generations.main has no row in generations.peers")
    const twice = await write("peers-twice.parquet", PeerGenerationColumns, [peer(0), peer(1), peer(1)])
    const r2 = await join("twice", m, twice)
    expect(String(r2.exit._tag === "Failure" ? JSON.stringify(r2.exit.cause) : "")).toContain("holds an id twice")
    expect(String(r2.exit._tag === "Failure" ? JSON.stringify(r2.exit.cause) : "")).toContain("peers-twice.parquet")
  })
})
