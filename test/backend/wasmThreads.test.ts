/**
 * The wasm backend on several threads (`src/backend/wasmThreads.ts`): it starts on this machine's cores, its
 * products and gradients are bit for bit those of one thread, and a process that used it exits by itself.
 */
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const fixture = path.join(import.meta.dirname, "../support/fixtures/wasmProducts.ts")

const products = (threads: number): { description: string; digest: string } => {
  const r = spawnSync(process.execPath, [fixture], {
    encoding: "utf8",
    env: { ...process.env, LLINK_WASM_THREADS: String(threads) },
    timeout: 120_000
  })
  // a pool worker left referenced would keep the process alive until the timeout (signal SIGTERM)
  expect(r.signal, `the process did not exit by itself: ${r.stderr}`).toBeNull()
  expect(r.status, r.stderr).toBe(0)
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { description: string; digest: string }
}

describe("the multi-threaded wasm backend", () => {
  it("runs on 2 threads, gives one thread's bytes, and exits by itself", { timeout: 300_000 }, () => {
    const one = products(1)
    const two = products(2)
    expect(one.description).toMatch(/XNNPACK, 1 thread\b/)
    // this machine's cores bound what the C side accepts
    expect(two.description).toMatch(os.availableParallelism() >= 2 ? /XNNPACK, 2 threads\)/ : /XNNPACK, 1 thread\b/)
    expect(two.digest).toBe(one.digest)
  })

  it("LLINK_WASM_THREADS that is not a whole number ≥ 1 is an error naming the variable", { timeout: 120_000 }, () => {
    const r = spawnSync(process.execPath, [fixture], { encoding: "utf8", env: { ...process.env, LLINK_WASM_THREADS: "two" }, timeout: 60_000 })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/LLINK_WASM_THREADS must be a whole number ≥ 1, got 'two'/)
  })
})
