/**
 * Run slots handed out by priority. The runner lets `concurrency` stages run at once; when a slot frees, the waiting
 * stage with the highest priority takes it (ties: the one that asked first). The runner's priority is the length of
 * the longest chain of stages still below a stage (`stagePriorities`), so the method's long chain (teacher → Stage A → Stage B →
 * generate → judge → report) goes ahead of a baseline that only generate waits for, and the run ends sooner.
 */
import { Deferred, Effect } from "effect"
import type { Dag } from "./dag.ts"

export interface PriorityPermits {
  /** Runs `effect` holding one slot, waiting for it at `priority` (higher first). */
  readonly withPermit: (priority: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

interface Waiter {
  readonly priority: number
  readonly seq: number
  readonly wake: Deferred.Deferred<void>
  granted: boolean
}

export const makePriorityPermits = (slots: number): PriorityPermits => {
  let free = Math.max(1, slots)
  let seq = 0
  const waiting: Array<Waiter> = []
  const release = Effect.sync(() => {
    if (waiting.length === 0) {
      free++
      return
    }
    let best = 0
    for (let i = 1; i < waiting.length; i++) {
      const w = waiting[i]
      const b = waiting[best]
      if (w.priority > b.priority || (w.priority === b.priority && w.seq < b.seq)) best = i
    }
    const next = waiting.splice(best, 1)[0]
    next.granted = true
    Deferred.doneUnsafe(next.wake, Effect.void)
  })
  const acquire = (priority: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (free > 0) {
        free--
        return Effect.void
      }
      const w: Waiter = { priority, seq: seq++, wake: Deferred.makeUnsafe<void>(), granted: false }
      waiting.push(w)
      return Deferred.await(w.wake).pipe(
        Effect.onInterrupt(() =>
          w.granted ? release : Effect.sync(() => {
            const i = waiting.indexOf(w)
            if (i >= 0) waiting.splice(i, 1)
          })
        )
      )
    })
  return {
    withPermit: (priority) => (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(acquire(priority)), () => restore(effect).pipe(Effect.ensuring(release)))
      )
  }
}

/**
 * Per stage, its priority: the cost of the longest path through it from a first stage to a last one (the critical
 * path, each stage weighing its declared `cost`, 1 when absent), then the cost of the longest chain below it, then
 * how many stages depend on it at all. Costs are rounded to whole numbers (at least 1).
 */
export const stagePriorities = <R>(dag: Dag<R>): ReadonlyMap<string, number> => {
  const cost = (name: string) => Math.max(1, Math.round(dag.stage(name).cost ?? 1))
  const above = new Map<string, number>()
  for (const name of dag.order) above.set(name, cost(name) + Math.max(0, ...dag.upstream(name).map((u) => above.get(u) ?? 0)))
  const below = new Map<string, number>()
  for (const name of [...dag.order].reverse()) {
    let longest = 0
    for (const other of dag.order) {
      if (dag.upstream(other).includes(name)) longest = Math.max(longest, below.get(other) ?? 0)
    }
    below.set(name, longest + cost(name))
  }
  return new Map(dag.order.map((name) => {
    const through = above.get(name)! + below.get(name)! - cost(name)
    return [name, through * 1e9 + below.get(name)! * 1e4 + dag.descendants(name).length]
  }))
}
