/**
 * Tests that need something of the machine. Outside CI they skip with the reason; under CI (`CI=true`, which
 * `.ci/run` sets after installing these) a missing one fails the file with the reason instead, so a green CI never
 * hides a whole area skipped. `.ci/run` names in `LLINK_ALLOW_MISSING` what no install can bring (only the shared
 * Khmer–English data folder, which is not part of a clone), after saying so.
 */
import { spawnSync } from "node:child_process"

export type Need = "openblas" | "lavapipe" | "postgres" | "root" | "xz" | "shared-data"

/** Whether to skip: false when `why` is undefined (the need is met). Throws under CI unless the need is allowed. */
export const skipFor = (need: Need, why: string | undefined): boolean => {
  if (why === undefined) return false
  const allowed = (process.env.LLINK_ALLOW_MISSING ?? "").split(",").map((s) => s.trim()).includes(need)
  if (process.env.CI === "true" && !allowed) {
    throw new Error(`[${need}] CI requires it, and it is missing: ${why}`)
  }
  console.warn(`[${need}] skipped: ${why}`)
  return true
}

/** Why the xz CLI cannot run here, or undefined when it can (the .xz ingest tests compress with it). */
export const xzMissing = (): string | undefined => {
  const res = spawnSync("xz", ["--version"], { stdio: "ignore" })
  if (res.error !== undefined) return `the xz CLI is not available (${res.error.message}); Debian's xz-utils has it`
  return res.status === 0 ? undefined : `xz --version exited with ${res.status}`
}
