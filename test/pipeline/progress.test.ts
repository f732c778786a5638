import { describe, expect, it } from "vitest"
import { formatDuration, makeConsoleReporter } from "../../src/pipeline/progress.ts"

const sink = (isTTY: boolean) => {
  const writes: Array<string> = []
  return { writes, isTTY, columns: 200, write: (text: string) => writes.push(text) }
}

describe("console reporter", () => {
  it("on a TTY redraws one status line with \\r at most 10 times a second", () => {
    const out = sink(true)
    let now = 0
    const reporter = makeConsoleReporter(out, { now: () => now })
    const bar = reporter.progress("ingest", "pairs", 1000)
    const before = out.writes.length
    for (let i = 0; i < 100; i++) {
      now += 5 // 100 advances over 0.5 s
      bar.advance(10)
    }
    const redraws = out.writes.slice(before).filter((w) => w.startsWith("[ingest]"))
    expect(redraws.length).toBeGreaterThanOrEqual(4)
    expect(redraws.length).toBeLessThanOrEqual(6)
    expect(out.writes).toContain("\r\x1b[2K")
    const last = redraws[redraws.length - 1]
    expect(last).toMatch(/^\[ingest\] pairs █+░* (\d{3}|1,000)\/1,000 2\.0k\/s ETA 0:0\d$/)
    reporter.log("ingest", "hello")
    expect(out.writes.slice(-3)).toEqual(["\r\x1b[2K", "[ingest] hello\n", expect.stringMatching(/^\[ingest\] pairs/)])
    bar.done()
    expect(out.writes.slice(-1)[0]).toBe("[ingest] pairs: 1,000 in 0.5s (2.0k/s)\n")
  })

  it("off a TTY prints nothing while running and one line when done", () => {
    const out = sink(false)
    let now = 0
    const reporter = makeConsoleReporter(out, { now: () => now })
    const bar = reporter.progress("split", "rank")
    for (let i = 0; i < 50; i++) {
      now += 100
      bar.advance()
    }
    expect(out.writes).toEqual([])
    bar.done()
    bar.done()
    expect(out.writes).toEqual(["[split] rank: 50 in 5.0s (10.0/s)\n"])
  })

  it("formats durations", () => {
    expect(formatDuration(5)).toBe("0:05")
    expect(formatDuration(3725)).toBe("1:02:05")
    expect(formatDuration(Number.NaN)).toBe("?")
  })
})
