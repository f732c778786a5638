/**
 * The first Stage A and Stage B steps on one backend, in a process of their own (test/support/fixtures/steps.ts; tfjs
 * has one backend per process), and the comparison the backend parity tests make of two such results.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"

const repoRoot = path.resolve(import.meta.dirname, "../..")

/** The steps' numbers on `backend` (LLINK_BACKEND), using `dir` as scratch. */
export const runSteps = (backend: string, dir: string): Record<string, unknown> => {
  const r = spawnSync(path.join(repoRoot, "node_modules/.bin/node"), [path.join(repoRoot, "test/support/fixtures/steps.ts"), dir], {
    encoding: "utf8",
    env: { ...process.env, LLINK_BACKEND: backend },
    timeout: 600_000
  })
  if (r.status !== 0) throw new Error(`steps on ${backend} exited ${r.status}:\n${r.stderr}`)
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>
}

/** Every number of `a` against the same place in `b`: the places differing by more than `tol` (relative above 1). */
export const differences = (a: unknown, b: unknown, at = "", tol = 1e-4): Array<string> => {
  if (typeof a === "number" && typeof b === "number") {
    const d = Math.abs(a - b) / Math.max(1, Math.abs(b))
    return d <= tol ? [] : [`${at}: ${a} vs ${b}`]
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b ? [] : [`${at}: ${String(a)} vs ${String(b)}`]
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  return [...keys].flatMap((k) => differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`, tol))
}
