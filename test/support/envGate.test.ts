/** The environment gate: skips with the reason outside CI, fails with it under CI unless .ci/run allowed the need. */
import { afterEach, describe, expect, it } from "vitest"
import { skipFor } from "./envGate.ts"

const saved = { CI: process.env.CI, allow: process.env.LLINK_ALLOW_MISSING }
afterEach(() => {
  if (saved.CI === undefined) delete process.env.CI
  else process.env.CI = saved.CI
  if (saved.allow === undefined) delete process.env.LLINK_ALLOW_MISSING
  else process.env.LLINK_ALLOW_MISSING = saved.allow
})

describe("skipFor", () => {
  it("never skips a need that is met, in or out of CI", () => {
    process.env.CI = "true"
    expect(skipFor("postgres", undefined)).toBe(false)
    process.env.CI = ""
    expect(skipFor("postgres", undefined)).toBe(false)
  })

  it("skips a missing need outside CI", () => {
    process.env.CI = ""
    expect(skipFor("postgres", "pg_ctl not found")).toBe(true)
  })

  it("fails a missing need under CI, naming it and why", () => {
    process.env.CI = "true"
    delete process.env.LLINK_ALLOW_MISSING
    expect(() => skipFor("lavapipe", "no adapter")).toThrow("[lavapipe] CI requires it, and it is missing: no adapter")
  })

  it("skips under CI only what .ci/run allowed", () => {
    process.env.CI = "true"
    process.env.LLINK_ALLOW_MISSING = "shared-data"
    expect(skipFor("shared-data", "absent")).toBe(true)
    expect(() => skipFor("postgres", "absent")).toThrow("[postgres]")
  })
})
