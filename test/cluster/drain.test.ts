/**
 * The runner's stop sequence on a fake clock (vitest's fake timers drive setTimeout and Date): when a stopping
 * runner releases its lease, when it leaves its shards to the lease instead, and the grace-period arithmetic. The
 * end-to-end versions (real runners, real PostgreSQL, real signals) are in operator.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { drainRunner, leaseState, ShardGate } from "../../src/cluster/drain.ts"

interface Trace {
  readonly lines: Array<string>
  readonly exits: Array<{ readonly at: number; readonly code: number; readonly line: string }>
  signal: (() => void) | undefined
}

const start = (gate: ShardGate, o: { readonly graceMs: number; readonly lost?: () => boolean }) => {
  const t0 = Date.now()
  const trace: Trace = { lines: [], exits: [], signal: undefined }
  let outcome: "release" | "left" | undefined
  let settledAt: number | undefined
  void drainRunner({
    gate,
    graceMs: o.graceMs,
    lost: o.lost ?? (() => false),
    log: (line) => trace.lines.push(line),
    leave: (code, line) => trace.exits.push({ at: Date.now() - t0, code, line }),
    onSignal: (handler) => (trace.signal = handler)
  }).then((r) => {
    outcome = r
    settledAt = Date.now() - t0
  })
  return { trace, outcome: () => outcome, settledAt: () => settledAt }
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 })
})
afterEach(() => {
  vi.useRealTimers()
})

describe("ShardGate", () => {
  it("refuses new shards once stopped and says when the running ones are done, or that they are not", async () => {
    const gate = new ShardGate()
    expect(gate.enter()).toBe(true)
    expect(gate.enter()).toBe(true)
    gate.stop()
    expect(gate.enter()).toBe(false)
    expect(gate.running).toBe(2)
    let idle: boolean | undefined
    void gate.whenIdle(5_000).then((r) => (idle = r))
    gate.leave()
    await vi.advanceTimersByTimeAsync(1_000)
    expect(idle).toBeUndefined()
    gate.leave()
    await vi.advanceTimersByTimeAsync(0)
    expect(idle).toBe(true)

    expect(gate.enter()).toBe(false)
    const busy = new ShardGate()
    busy.enter()
    let late: boolean | undefined
    void busy.whenIdle(5_000).then((r) => (late = r))
    await vi.advanceTimersByTimeAsync(4_999)
    expect(late).toBeUndefined()
    await vi.advanceTimersByTimeAsync(1)
    expect(late).toBe(false)
    expect(await new ShardGate().whenIdle(0)).toBe(true)
  })
})

describe("drainRunner (fake clock)", () => {
  it("with nothing running it releases the lease at once", async () => {
    const run = start(new ShardGate(), { graceMs: 10_000 })
    await vi.advanceTimersByTimeAsync(0)
    expect(run.outcome()).toBe("release")
    expect(run.settledAt()).toBe(0)
    expect(run.trace.lines).toEqual(["stopping: no new shards", "releasing the lease (stopped in 0.0 s so far)"])
    expect(run.trace.exits).toEqual([])
  })

  it("a shard that finishes 2.8 s into a 10 s grace period is waited for, then the lease is released", async () => {
    const gate = new ShardGate()
    gate.enter()
    setTimeout(() => gate.leave(), 2_800)
    const run = start(gate, { graceMs: 10_000 })
    await vi.advanceTimersByTimeAsync(2_799)
    expect(run.outcome()).toBeUndefined()
    expect(gate.enter()).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    expect(run.outcome()).toBe("release")
    expect(run.settledAt()).toBe(2_800)
    expect(run.trace.lines).toEqual([
      "stopping: no new shards; 1 running shard(s) have 10 s to finish",
      "releasing the lease (stopped in 2.8 s so far)"
    ])
    expect(run.trace.exits).toEqual([])
  })

  it("a shard still running one second before the end of the grace period is left to the lease", async () => {
    const gate = new ShardGate()
    gate.enter()
    gate.enter()
    const run = start(gate, { graceMs: 10_000 })
    await vi.advanceTimersByTimeAsync(8_999)
    expect(run.trace.exits).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(run.outcome()).toBe("left")
    expect(run.trace.exits).toEqual([{
      at: 9_000,
      code: 130,
      line: "grace period over with 2 shard(s) running: exiting; their messages go to another runner when the lease expires"
    }])
  })

  it("without PostgreSQL the lease cannot be released: it exits as soon as the shards are done", async () => {
    const gate = new ShardGate()
    gate.enter()
    setTimeout(() => gate.leave(), 1_500)
    const run = start(gate, { graceMs: 10_000, lost: () => true })
    await vi.advanceTimersByTimeAsync(1_500)
    expect(run.outcome()).toBe("left")
    expect(run.trace.exits.map((e) => [e.at, e.code])).toEqual([[1_500, 130]])
    expect(run.trace.exits[0]!.line).toMatch(/^PostgreSQL is unreachable, so the lease cannot be released/)
  })

  it("a second signal exits at once, and the hard timer ends a release that hangs at the end of the grace period", async () => {
    const gate = new ShardGate()
    gate.enter()
    const run = start(gate, { graceMs: 10_000 })
    await vi.advanceTimersByTimeAsync(3_000)
    run.trace.signal?.()
    expect(run.trace.exits.map((e) => [e.at, e.line])).toEqual([[3_000, "second signal: exiting now; unfinished work is left to the lease"]])

    const quiet = start(new ShardGate(), { graceMs: 4_000 })
    await vi.advanceTimersByTimeAsync(0)
    expect(quiet.outcome()).toBe("release")
    // the cluster's own shutdown (releasing the lease) never returns: the process still ends at 4 s
    await vi.advanceTimersByTimeAsync(3_999)
    expect(quiet.trace.exits).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(quiet.trace.exits).toEqual([{ at: 4_000, code: 130, line: "grace period (4 s) over: exiting; unfinished work is left to the lease" }])
  })

  it("a grace period under one second gives shards no time: it leaves at once, and only once", async () => {
    const gate = new ShardGate()
    gate.enter()
    const run = start(gate, { graceMs: 500 })
    await vi.advanceTimersByTimeAsync(0)
    expect(run.outcome()).toBe("left")
    expect(run.trace.exits.map((e) => e.at)).toEqual([0])
    await vi.advanceTimersByTimeAsync(500)
    expect(run.trace.exits.map((e) => e.at)).toEqual([0])
  })
})

describe("leaseState", () => {
  it("a heartbeat older than the lease is expired, one at or under it is held", () => {
    expect(leaseState(35.1, 35, "35s")).toBe("expired (> 35s)")
    expect(leaseState(35, 35, "35s")).toBe("held")
    expect(leaseState(0.4, 2, "2s")).toBe("held")
  })
})
