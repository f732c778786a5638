// Prints the closing line CI reads: `N passed, N failed, N skipped`. Skipped tests are never counted as passed, and a
// failure is never hidden as a skip: a test that did not run because its suite's hook (or its file) failed counts as
// failed, a suite or file that failed with every test passed (a throwing afterAll) adds one failure, and the line
// never says `0 failed` for a run vitest ends as failed.
import type { Reporter, SerializedError, TestCase, TestModule, TestRunEndReason, TestSuite } from "vitest/node"

type Entity = TestModule | TestSuite

/** The suites (and the file) a test sits in, innermost first. */
const ancestors = (test: TestCase): ReadonlyArray<Entity> => {
  const out: Array<Entity> = []
  let at: Entity = test.parent
  for (;;) {
    out.push(at)
    if (at.type === "module") return out
    at = at.parent
  }
}

const firstLine = (errors: ReadonlyArray<SerializedError>): string => (errors[0]?.message ?? "failed").split("\n")[0]

export interface Summary {
  readonly passed: number
  readonly failed: number
  readonly skipped: number
  /** One line per suite or file that failed outside its tests (hook, collection). */
  readonly broken: ReadonlyArray<string>
}

export const summarize = (
  testModules: ReadonlyArray<TestModule>,
  unhandledErrors: ReadonlyArray<unknown>,
  reason: TestRunEndReason
): Summary => {
  let passed = 0
  let failed = 0
  let skipped = 0
  const broken: Array<string> = []
  for (const mod of testModules) {
    const entities: Array<Entity> = [mod, ...mod.children.allSuites()]
    const failedOutside = new Set<Entity>(entities.filter((e) => e.errors().length > 0))
    const explained = new Set<Entity>()
    for (const test of mod.children.allTests()) {
      const state = test.result().state
      const brokenAbove = ancestors(test).filter((e) => failedOutside.has(e))
      if (state === "passed") passed++
      else if (state === "failed") failed++
      else if (brokenAbove.length > 0 || state === "pending") {
        // not run because a hook or the file failed, or never reached: a failure, not a skip
        failed++
        for (const e of brokenAbove) explained.add(e)
      } else skipped++
    }
    for (const e of failedOutside) {
      const where = e.type === "module" ? mod.relativeModuleId : `${mod.relativeModuleId} > ${e.fullName}`
      broken.push(`${where}: ${firstLine(e.errors())}`)
      if (!explained.has(e)) failed++
    }
    if (mod.state() === "failed" && failedOutside.size === 0 && mod.ok()) {
      broken.push(`${mod.relativeModuleId}: failed`)
      failed++
    }
  }
  failed += unhandledErrors.length
  const maxSkipped = process.env.LLINK_MAX_SKIPPED
  if (maxSkipped !== undefined && maxSkipped !== "" && skipped > Number(maxSkipped)) {
    broken.push(`${skipped} tests skipped where at most ${maxSkipped} may (LLINK_MAX_SKIPPED, set by .ci/run)`)
    failed++
  }
  if (reason !== "passed" && failed === 0) {
    broken.push(`the run ended as ${reason}`)
    failed = 1
  }
  return { passed, failed, skipped, broken }
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
    reason: TestRunEndReason
  ) {
    const s = summarize(testModules, unhandledErrors, reason)
    const lines = s.broken.map((b) => `failed outside a test: ${b}\n`).join("")
    if (s.failed > 0) process.exitCode = 1
    process.stdout.write(`\n${lines}${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped\n`)
  }
}
