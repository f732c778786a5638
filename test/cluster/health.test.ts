/**
 * What a cluster process says while PostgreSQL is away (src/cluster/health.ts), on a fake clock: one line on the
 * loss, at most one a minute, one when it is back; which log entries count as storage failures; the probe's
 * back-off; and `--listen`'s forms (src/cli/cluster.ts).
 */
import { Cause, Effect, Logger } from "effect"
import { PersistenceError } from "effect/cluster/ClusterError"
import { ConnectionError, SqlError } from "effect/sql/SqlError"
import { describe, expect, it } from "vitest"
import { parseListen } from "../../src/cli/cluster.ts"
import { clusterLogger, makeStorageWatch, probeDelay, storageFailure } from "../../src/cluster/health.ts"

const refused = () => {
  const socket = new Error("connect ECONNREFUSED 127.0.0.1:45432")
  const sql = new SqlError({ reason: new ConnectionError({ message: "PgConnection: Failed to connect", cause: socket }) })
  return new PersistenceError({ cause: sql })
}

describe("storage failures while PostgreSQL is away", () => {
  it("a PersistenceError over an SqlError is a storage failure named by its innermost message; others are not", () => {
    expect(storageFailure(Cause.fail(refused()))).toBe("connect ECONNREFUSED 127.0.0.1:45432")
    expect(storageFailure(Cause.fail(new Error("something else")))).toBeUndefined()
    expect(storageFailure(Cause.die(new Error("a defect")))).toBeUndefined()
    expect(storageFailure(Cause.empty)).toBeUndefined()
  })

  it("300 failed calls over 150 s and a recovery: one line on the loss, one a minute, one when it is back", () => {
    let t = 1_000_000
    const lines: Array<string> = []
    const watch = makeStorageWatch({ url: "postgres://llink:secret@127.0.0.1:45432/db", log: (l) => lines.push(l), now: () => t })
    expect(watch.lost()).toBe(false)
    for (let i = 0; i < 300; i++) {
      watch.failure("connect ECONNREFUSED 127.0.0.1:45432")
      t += 500
    }
    expect(watch.lost()).toBe(true)
    watch.recovered()
    expect(watch.lost()).toBe(false)
    expect(lines).toHaveLength(4)
    expect(lines[0]).toBe("lost PostgreSQL at postgres://llink:***@127.0.0.1:45432/db (connect ECONNREFUSED 127.0.0.1:45432): retrying with back-off")
    expect(lines[1]).toMatch(/still unreachable after 60 s \(121 failed storage calls/)
    expect(lines[2]).toMatch(/still unreachable after 120 s \(241 failed storage calls/)
    expect(lines[3]).toBe("PostgreSQL at postgres://llink:***@127.0.0.1:45432/db is back after 150 s (300 failed storage calls)")
    expect(lines.join("\n")).not.toContain("secret")
    // a recovery without a loss says nothing; a second loss is announced again
    watch.recovered()
    watch.failure("x")
    expect(lines).toHaveLength(5)
  })

  it("the cluster logger swallows storage failures (and passes them with --verbose) and keeps every other entry", async () => {
    const run = async (verbose: boolean) => {
      const lines: Array<string> = []
      const passed: Array<string> = []
      const watch = makeStorageWatch({ url: "postgres://x@h/db", log: (l) => lines.push(l) })
      const next = Logger.make((o) => void passed.push((o.message as ReadonlyArray<unknown>).map(String).join(" ")))
      await Effect.runPromise(
        Effect.gen(function*() {
          yield* Effect.logWarning("Could not read messages from storage", Cause.fail(refused()))
          yield* Effect.logWarning("Could not release shards, retrying", Cause.fail(refused()))
          yield* Effect.logError("Shard lock storage is unhealthy")
          yield* Effect.logInfo("Shard lock storage has recovered")
          yield* Effect.logInfo("Listening on: 127.0.0.1:1")
        }).pipe(Effect.provide(Logger.layer([clusterLogger(watch, verbose, next)])))
      )
      return { lines, passed }
    }
    const quiet = await run(false)
    expect(quiet.lines).toHaveLength(1)
    expect(quiet.passed).toEqual(["Listening on: 127.0.0.1:1"])
    const verbose = await run(true)
    expect(verbose.lines).toHaveLength(1)
    expect(verbose.passed).toHaveLength(5)
  })

  it("the probe backs off 1 s, 2 s, 4 s … to a 30 s cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 40].map(probeDelay)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
  })
})

describe("--listen", () => {
  it("host:port, host:0 and host alone (a free port), and rejects the rest", () => {
    expect(parseListen("127.0.0.1:34431")).toEqual({ host: "127.0.0.1", port: 34431 })
    expect(parseListen("10.0.0.5:0")).toEqual({ host: "10.0.0.5", port: 0 })
    expect(parseListen("gpu-3.lan")).toEqual({ host: "gpu-3.lan", port: 0 })
    expect(parseListen("[::1]:7000")).toEqual({ host: "[::1]", port: 7000 })
    expect(parseListen("host:70000")).toBeUndefined()
    expect(parseListen("host:port")).toBeUndefined()
    expect(parseListen("")).toBeUndefined()
  })
})
