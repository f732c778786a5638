/**
 * Work in a child process, both sides: the parent starts `node <script>`, writes one JSON request on its stdin, hands
 * its stderr lines on as they come, and reads the reply from its last stdout line (`runJsonChild`); the child reads
 * the request (`readStdinText`), exits once its parent is gone (`exitWhenOrphaned`) and turns a failure into a reply
 * (`failureOf`). Used for a heavy stage (`childStage.ts`) and for a cluster runner's shard (`src/cluster/worker.ts`).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { type Cause, Effect } from "effect"

/** How a child ended: its last stdout line (the reply), its last stderr lines, and its exit. */
export interface ChildEnd {
  readonly lastLine: string
  readonly tail: ReadonlyArray<string>
  readonly exit: string
}

export interface JsonChildOptions {
  /** Variables added to the parent's environment. */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** Each stderr line, as it comes. */
  readonly onLine: (line: string) => void
  /** Called with the child once started and again once it ended (e.g. to track children for a drain). */
  readonly onStart?: ((child: ChildProcess) => void) | undefined
  readonly onEnd?: ((child: ChildProcess) => void) | undefined
}

/**
 * V8 flags of every child. The model code allocates many short-lived typed arrays; a 64 MiB young generation (16 MiB by
 * default) lets most die before they are copied, which took a 40-step fine-tune from 25.6 s to 23.4 s here. Memory
 * only: no result depends on it.
 */
const CHILD_NODE_FLAGS = ["--max-semi-space-size=64"]

/** Runs `node <script>` with `request` as JSON on stdin; fails (with the reason) only when it cannot start.
 *  Interrupting kills the child. */
export const runJsonChild = (script: string, request: unknown, options: JsonChildOptions): Effect.Effect<ChildEnd, string> =>
  Effect.callback<ChildEnd, string>((resume) => {
    const child = spawn(process.execPath, [...CHILD_NODE_FLAGS, script], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...options.env } })
    options.onStart?.(child)
    let out = ""
    let err = ""
    const tail: Array<string> = []
    const line = (text: string) => {
      tail.push(text)
      if (tail.length > 20) tail.shift()
      options.onLine(text)
    }
    child.stdout.on("data", (b: Buffer) => (out += b.toString()))
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString()
      let nl: number
      while ((nl = err.indexOf("\n")) >= 0) {
        line(err.slice(0, nl))
        err = err.slice(nl + 1)
      }
    })
    child.on("error", (e) => resume(Effect.fail(`cannot start ${script}: ${e.message}`)))
    child.on("exit", (code, signal) => {
      options.onEnd?.(child)
      if (err.length > 0) line(err)
      resume(Effect.succeed({ lastLine: out.trim().split("\n").pop() ?? "", tail, exit: signal ?? `exit ${code}` }))
    })
    child.stdin.end(JSON.stringify(request))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

/** The child's side: all of stdin as text. */
export const readStdinText: Effect.Effect<string> = Effect.promise(async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
})

/**
 * The child's side: exits once its parent is gone (re-parented), checked at once and once a second; returns the check,
 * to call also where the event loop may be busy for long (every progress step). The parent passes its pid in
 * `pidVariable`: `process.ppid` read here could already be the new parent's when the parent died while this process
 * was still loading its modules.
 */
export const exitWhenOrphaned = (pidVariable: string): (() => void) => {
  const parent = Number(process.env[pidVariable] ?? process.ppid)
  const check = () => {
    if (process.ppid !== parent) process.exit(1)
  }
  check()
  setInterval(check, 1000).unref()
  return check
}

/** The child's side: the first error (or defect) of a failure, what its reply describes. */
export const failureOf = (cause: Cause.Cause<unknown>): unknown => {
  const first = cause.reasons[0]
  return first !== undefined && "error" in first ? first.error : first !== undefined && "defect" in first ? first.defect : cause
}
