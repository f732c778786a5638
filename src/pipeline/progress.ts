/**
 * Console output of a run: log lines prefixed with the stage name, warnings, and progress bars (`Progress` from
 * `stage.ts`).
 *
 * On a TTY, the active bars share one status line at the bottom of stderr — `[stage] label ████░░ 1,234/5,000
 * 812/s ETA 0:05` — redrawn with `\r` at most 10 times a second; log lines are printed above it. When stderr is not
 * a TTY (CI, a pipe, a test) bars print nothing while running and one summary line when done.
 */
import type { Progress } from "./stage.ts"

/** Where a run's human-facing output goes. */
export interface Reporter {
  /** One log line for `stage` (`[stage] message`). */
  readonly log: (stage: string, message: string) => void
  /** A warning not tied to a stage's work (stale lock taken over, unreadable cache file, ...). */
  readonly warn: (message: string) => void
  /** Starts a progress bar. */
  readonly progress: (stage: string, label: string, total?: number) => Progress
  /** Clears the status line (call before printing a final table). */
  readonly close: () => void
}

/** A writable text stream (process.stderr or a test double). */
export interface TextSink {
  readonly write: (text: string) => unknown
  readonly isTTY?: boolean | undefined
  readonly columns?: number | undefined
}

const compact = (n: number): string => {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`
  return n >= 100 ? n.toFixed(0) : n.toFixed(n >= 10 ? 1 : 2)
}

/** `m:ss` or `h:mm:ss`. */
export const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "?"
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`
}

interface Bar {
  readonly stage: string
  readonly label: string
  total: number | undefined
  count: number
  readonly startedAt: number
}

const describeBar = (bar: Bar, now: number, width: number): string => {
  const elapsed = Math.max((now - bar.startedAt) / 1000, 1e-3)
  const rate = bar.count / elapsed
  const head = `[${bar.stage}] ${bar.label}`
  const rateText = `${compact(rate)}/s`
  if (bar.total === undefined || bar.total <= 0) return `${head} ${bar.count.toLocaleString("en-US")} ${rateText}`
  const fraction = Math.min(bar.count / bar.total, 1)
  const eta = rate > 0 ? (bar.total - bar.count) / rate : Number.NaN
  const cells = Math.max(Math.min(width, 20), 0)
  const filled = Math.round(fraction * cells)
  const graph = cells > 0 ? ` ${"█".repeat(filled)}${"░".repeat(cells - filled)}` : ""
  return `${head}${graph} ${bar.count.toLocaleString("en-US")}/${bar.total.toLocaleString("en-US")} ${rateText} ETA ${
    formatDuration(eta)
  }`
}

/**
 * The console reporter. `now` (milliseconds) is injectable for tests; `interactive` overrides the TTY detection.
 */
export const makeConsoleReporter = (
  sink: TextSink = process.stderr,
  options?: { readonly now?: () => number; readonly interactive?: boolean }
): Reporter => {
  const now = options?.now ?? (() => performance.now())
  const interactive = options?.interactive ?? sink.isTTY === true
  const bars = new Set<Bar>()
  let lastDraw = Number.NEGATIVE_INFINITY
  let lineShown = false

  const clearLine = () => {
    if (lineShown) sink.write("\r\x1b[2K")
    lineShown = false
  }
  const draw = (force: boolean) => {
    if (!interactive) return
    const t = now()
    if (!force && t - lastDraw < 100) return
    lastDraw = t
    clearLine()
    if (bars.size === 0) return
    const columns = sink.columns !== undefined && sink.columns >= 20 ? sink.columns : 100
    const parts = [...bars].map((bar) => describeBar(bar, t, bars.size > 1 ? 10 : 20))
    let line = parts.join(" | ")
    if (line.length > columns - 1) line = `${line.slice(0, Math.max(columns - 2, 0))}…`
    sink.write(line)
    lineShown = true
  }
  const print = (text: string) => {
    clearLine()
    sink.write(`${text}\n`)
    draw(true)
  }

  return {
    log: (stage, message) => print(`[${stage}] ${message}`),
    warn: (message) => print(`warning: ${message}`),
    progress: (stage, label, total) => {
      const bar: Bar = { stage, label, total, count: 0, startedAt: now() }
      bars.add(bar)
      draw(true)
      let finished = false
      return {
        advance: (n = 1) => {
          bar.count += n
          draw(false)
        },
        setTotal: (t) => {
          bar.total = t
          draw(false)
        },
        done: () => {
          if (finished) return
          finished = true
          bars.delete(bar)
          const seconds = (now() - bar.startedAt) / 1000
          const rate = seconds > 0 ? ` (${compact(bar.count / seconds)}/s)` : ""
          print(`[${stage}] ${label}: ${bar.count.toLocaleString("en-US")} in ${seconds.toFixed(1)}s${rate}`)
        }
      }
    },
    close: () => {
      bars.clear()
      clearLine()
    }
  }
}

/** A reporter that records every line (for tests); progress bars record only their final line. */
export const makeMemoryReporter = (): Reporter & { readonly lines: Array<string> } => {
  const lines: Array<string> = []
  const inner = makeConsoleReporter({ write: (text) => lines.push(...text.split("\n").filter((l) => l !== "")) }, {
    interactive: false
  })
  return { ...inner, lines }
}
