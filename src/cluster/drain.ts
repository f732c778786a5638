/**
 * How a runner stops, as plain timer logic (no cluster, no database), so it can be tested on a fake clock:
 *
 * - `ShardGate`: the shards a runner is computing and the stop switch; once stopped no shard starts (its message
 *   stays unprocessed and goes to another runner).
 * - `drainRunner`: on SIGTERM/SIGINT, stop the gate, give running shards the grace period less one second (kept for
 *   the release), then either hand over to the cluster's own shutdown, which releases the lease, or exit without
 *   it: a shard still running, PostgreSQL unreachable, a second signal, or the whole grace period spent.
 * - `leaseState`: whether a runner's last heartbeat is older than the lease (`llink cluster status`).
 *
 * Lease expiry and the re-assignment of a dead runner's cluster shards themselves are Effect Cluster's
 * (`SqlRunnerStorage`); `test/cluster/operator.test.ts` checks them end to end on PostgreSQL.
 */
import type { ChildProcess } from "node:child_process"

export class ShardGate {
  #running = 0
  #stopping = false
  #waiters: Array<() => void> = []
  readonly children = new Set<ChildProcess>()

  get running(): number {
    return this.#running
  }
  get stopping(): boolean {
    return this.#stopping
  }
  /** False when the runner is stopping (the shard must not start). */
  enter(): boolean {
    if (this.#stopping) return false
    this.#running++
    return true
  }
  leave(): void {
    this.#running--
    if (this.#running === 0) for (const w of this.#waiters.splice(0)) w()
  }
  stop(): void {
    this.#stopping = true
  }
  /** Resolves true when no shard runs, false after `ms` if one still does. */
  whenIdle(ms: number): Promise<boolean> {
    if (this.#running === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      this.#waiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }
  /** SIGKILLs the shards' child processes (the process is about to exit without waiting for them). */
  killChildren(): void {
    for (const c of this.children) c.kill("SIGKILL")
  }
}

export interface DrainOptions {
  readonly gate: ShardGate
  readonly graceMs: number
  /** True while PostgreSQL is unreachable (then the lease cannot be released). */
  readonly lost: () => boolean
  readonly log: (line: string) => void
  /** Logs `line`, kills the shards' children and ends the process with `code`. */
  readonly leave: (code: number, line: string) => void
  /** Registers the handler of a second SIGTERM/SIGINT. */
  readonly onSignal: (handler: () => void) => void
  /** Milliseconds since the epoch (default `Date.now`). */
  readonly now?: () => number
}

/**
 * The stop sequence. Resolves "release" when the cluster's shutdown should go on and release the lease (a hard
 * timer still ends the process at the end of the grace period if that shutdown hangs), or "left" once `leave` was
 * called.
 */
export const drainRunner = async (o: DrainOptions): Promise<"release" | "left"> => {
  const now = o.now ?? Date.now
  const started = now()
  o.gate.stop()
  const hard = setTimeout(() => o.leave(130, `grace period (${o.graceMs / 1000} s) over: exiting; unfinished work is left to the lease`), o.graceMs)
  hard.unref?.()
  o.onSignal(() => o.leave(130, "second signal: exiting now; unfinished work is left to the lease"))
  o.log(
    o.gate.running === 0
      ? "stopping: no new shards"
      : `stopping: no new shards; ${o.gate.running} running shard(s) have ${o.graceMs / 1000} s to finish`
  )
  const idle = await o.gate.whenIdle(Math.max(0, o.graceMs - 1000))
  if (!idle) {
    clearTimeout(hard)
    o.leave(130, `grace period over with ${o.gate.running} shard(s) running: exiting; their messages go to another runner when the lease expires`)
    return "left"
  }
  if (o.lost()) {
    clearTimeout(hard)
    o.leave(130, "PostgreSQL is unreachable, so the lease cannot be released: exiting; this runner's shards move when it expires")
    return "left"
  }
  o.log(`releasing the lease (stopped in ${((now() - started) / 1000).toFixed(1)} s so far)`)
  return "release"
}

/** "held", or "expired (> <lease>)" when the last heartbeat is older than the lease. */
export const leaseState = (heartbeatAgeSeconds: number, leaseSeconds: number, leaseText: string): string =>
  heartbeatAgeSeconds > leaseSeconds ? `expired (> ${leaseText})` : "held"
