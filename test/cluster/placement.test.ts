/**
 * llink's own cluster logic without a cluster: the timings derived from the lease, the coordinator's lanes, and the
 * salted entity ids that land a shard on a chosen runner (with a made-up shard function and ownership table).
 */
import { Duration } from "effect"
import { describe, expect, it } from "vitest"
import { clusterTuning, lanesOf, saltedEntityId, SHARDS_PER_GROUP } from "../../src/cluster/placement.ts"

const ms = (d: Duration.Duration) => Duration.toMillis(d)

describe("cluster tuning from the lease", () => {
  it("refreshes the lock three times per lease and checks health twice, with floors for short leases", () => {
    const t8 = clusterTuning("8 seconds")
    expect(ms(t8.shardLockExpiration)).toBe(8000)
    expect(ms(t8.shardLockRefreshInterval)).toBeCloseTo(8000 / 3, 6)
    expect(ms(t8.runnerHealthCheckInterval)).toBe(4000)
    const t1 = clusterTuning("1 second")
    expect(ms(t1.shardLockRefreshInterval)).toBe(500)
    expect(ms(t1.runnerHealthCheckInterval)).toBe(1000)
    const dflt = clusterTuning(undefined)
    expect(ms(dflt.shardLockExpiration)).toBe(35_000)
    expect(dflt.shardsPerGroup).toBe(SHARDS_PER_GROUP)
    // a refresh always comes well before the lock can expire
    for (const lease of ["1 second", "2 seconds", "8 seconds", "35 seconds", "10 minutes"] as const) {
      const t = clusterTuning(lease)
      expect(ms(t.shardLockRefreshInterval)).toBeLessThanOrEqual(ms(t.shardLockExpiration) / 2)
    }
  })
})

describe("lanes", () => {
  it("gives each runner weight + 1 lanes, round robin, so the first shards go one to each runner", () => {
    expect(lanesOf([{ address: "a", weight: 1 }, { address: "b", weight: 2 }, { address: "c", weight: 1 }])).toEqual(
      ["a", "b", "c", "a", "b", "c", "b"]
    )
    expect(lanesOf([{ address: "a", weight: 0 }])).toEqual(["a", "a"]) // weight below 1 counts as 1
    expect(lanesOf([])).toEqual([])
  })
})

describe("salted entity ids", () => {
  // a made-up shard function: the number after the salt (0 without one) picks the shard, 1-based, over 4 shards
  const shardOf = (id: string) => {
    const salt = Number(id.split("~")[1] ?? 0)
    return (salt % 4) + 1
  }
  const owners = ["r1", "r2", "r1", "r3"]
  const same = (a: string, b: string) => a === b

  it("keeps the plain id when it already lands on the runner, else takes the smallest salt that does", () => {
    expect(saltedEntityId("encode/k/train[0,64)", "r1", owners, shardOf, same)).toBe("encode/k/train[0,64)")
    expect(saltedEntityId("encode/k/train[0,64)", "r2", owners, shardOf, same)).toBe("encode/k/train[0,64)~1")
    expect(saltedEntityId("encode/k/train[0,64)", "r3", owners, shardOf, same)).toBe("encode/k/train[0,64)~3")
  })

  it("falls back to the plain id for a runner that owns nothing, or before any ownership is known", () => {
    expect(saltedEntityId("s", "r9", owners, shardOf, same)).toBe("s")
    expect(saltedEntityId("s", "r1", [], shardOf, same)).toBe("s")
  })
})
