/**
 * llink's own part of the cluster's timing and placement, kept pure so it is tested without a cluster:
 * - the sharding timings derived from the lease (`llink run/runner --lease`);
 * - the coordinator's lanes: each healthy runner `weight + 1` times, round robin;
 * - the salted entity id that lands a shard on a chosen runner's cluster shard.
 * Lease expiry and the re-assignment of a dead runner's cluster shards are Effect Cluster's (SqlRunnerStorage);
 * test/cluster runs them end to end on PostgreSQL.
 */
import { Duration } from "effect"
import { SALT } from "./protocol.ts"

/** Cluster shards per entity group, set on every runner and on the coordinator (its placement hint relies on it). */
export const SHARDS_PER_GROUP = 300

/** The default lease: how long a silent runner keeps its cluster shards. */
export const DEFAULT_LEASE: Duration.Input = "35 seconds"

/**
 * Sharding timings from the lease: the lock expires with the lease and is refreshed three times within it (never
 * more often than every 500 ms); runner health is checked twice per lease (at most once a second).
 */
export const clusterTuning = (lease: Duration.Input | undefined) => {
  const l = Duration.fromInputUnsafe(lease ?? DEFAULT_LEASE)
  return {
    shardsPerGroup: SHARDS_PER_GROUP,
    shardLockExpiration: l,
    shardLockRefreshInterval: Duration.max(Duration.millis(500), Duration.divideUnsafe(l, 3)),
    entityMessagePollInterval: Duration.millis(500),
    entityReplyPollInterval: Duration.millis(100),
    refreshAssignmentsInterval: Duration.millis(1000),
    runnerHealthCheckInterval: Duration.max(Duration.seconds(1), Duration.divideUnsafe(l, 2))
  }
}

/** Each runner `max(1, weight) + 1` times, round robin (r1, r2, r3, r1, …), so the first shards go one to each. */
export const lanesOf = <A>(runners: ReadonlyArray<{ readonly address: A; readonly weight: number }>): Array<A> => {
  const total = runners.reduce((a, r) => a + Math.max(1, r.weight) + 1, 0)
  const lanes: Array<A> = []
  for (let round = 0; lanes.length < total; round++) {
    for (const r of runners) if (round < Math.max(1, r.weight) + 1) lanes.push(r.address)
  }
  return lanes
}

/**
 * `base`, or `base~<salt>` with the smallest salt whose cluster shard (`shardOf`, 1-based) `owners` gives to
 * `runner`; `base` when none of 10,000 salts lands there (or nobody owns anything yet).
 */
export const saltedEntityId = <A>(
  base: string,
  runner: A,
  owners: ReadonlyArray<A>,
  shardOf: (id: string) => number,
  same: (a: A, b: A) => boolean
): string => {
  for (let salt = 0; salt < 10_000; salt++) {
    const id = salt === 0 ? base : `${base}${SALT}${salt}`
    const owner = owners[shardOf(id) - 1]
    if (owner !== undefined && same(owner, runner)) return id
  }
  return base
}
