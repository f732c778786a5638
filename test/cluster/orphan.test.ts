/**
 * The shard child process (`src/cli/shardChild.ts`) of a runner that died must not compute its shard: the runner
 * passes its pid, and a child whose parent is no longer that pid exits before reading its request — also when the
 * runner died while the child was still loading its modules (the race that let a killed runner's orphan publish the
 * shard another runner had been given). Needs no PostgreSQL.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const repo = path.resolve(import.meta.dirname, "../..")
const child = path.join(repo, "src/cli/shardChild.ts")

const runChild = (runnerPid: number, request: string): Promise<{ code: number | null; out: string }> =>
  new Promise((resolve) => {
    const p = spawn(process.execPath, [child], { cwd: repo, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LLINK_RUNNER_PID: String(runnerPid) } })
    let out = ""
    p.stdout.on("data", (b: Buffer) => (out += b.toString()))
    p.on("exit", (code) => resolve({ code, out }))
    p.stdin.on("error", () => {}) // the orphan may exit before it reads
    p.stdin.end(request)
  })

describe("a runner's shard child", () => {
  it("exits at once, printing no result, when its runner is gone", { timeout: 60_000 }, async () => {
    // a pid that is not this test's: the child sees a parent other than its runner
    const r = await runChild(process.pid + 1_000_000, JSON.stringify({ stage: "encode" }))
    expect(r.code).toBe(1)
    expect(r.out).toBe("")
  })

  it("with its runner alive, reads the request and answers it (here: a request that does not decode)", { timeout: 60_000 }, async () => {
    const r = await runChild(process.pid, JSON.stringify({ stage: "encode" }))
    expect(r.code).toBe(1)
    const last = JSON.parse(r.out.trim().split("\n").pop() ?? "{}") as { ok?: boolean; message?: string }
    expect(last.ok).toBe(false)
    expect(typeof last.message).toBe("string")
  })
})
