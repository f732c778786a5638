// PostgreSQL for the cluster tests: the server `.ci/run` started (LLINK_TEST_POSTGRES), else a throwaway one started
// here with `.ci/postgres.sh` when pg_ctl is installed, else a skip reason. Every caller gets a fresh database.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const script = path.resolve(import.meta.dirname, "../../.ci/postgres.sh")

export type TestPostgres =
  | { readonly ok: true; readonly url: (name: string) => string; readonly stop: () => void }
  | { readonly ok: false; readonly reason: string }

const run = (args: ReadonlyArray<string>) => spawnSync("bash", [script, ...args], { encoding: "utf8" })

export const startTestPostgres = (): TestPostgres => {
  const stamp = `${process.pid}_${Date.now()}`
  const createdb = (base: string) => (name: string) => {
    const r = run(["createdb", base, `llink_${name}_${stamp}`])
    if (r.status !== 0) throw new Error(`createdb failed: ${r.stderr}`)
    return r.stdout.trim()
  }
  const given = process.env["LLINK_TEST_POSTGRES"]
  if (given !== undefined && given !== "") return { ok: true, url: createdb(given), stop: () => {} }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-pg-"))
  // away from the runner ports the tests and the bench use (34xxx)
  const port = String(40000 + (process.pid % 10000))
  const r = run(["start", dir, port])
  if (r.status === 3) {
    fs.rmSync(dir, { recursive: true, force: true })
    return { ok: false, reason: "PostgreSQL is not installed (no pg_ctl; Debian: apt-get install postgresql); cluster tests skipped" }
  }
  if (r.status !== 0) throw new Error(`could not start PostgreSQL: ${r.stderr}`)
  const base = r.stdout.trim()
  return { ok: true, url: createdb(base), stop: () => void run(["stop", dir]) }
}

export type PrivatePostgres =
  | {
    readonly ok: true
    readonly url: string
    /** Stops the server (fast shutdown), keeping its data. */
    readonly pause: () => void
    /** Starts it again on the same port. */
    readonly resume: () => void
    readonly stop: () => void
  }
  | { readonly ok: false; readonly reason: string }

/** A server of its own (never the shared one), for tests that stop and start PostgreSQL under a cluster. */
export const startPrivatePostgres = (port: number): PrivatePostgres => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-pg-own-"))
  const r = run(["start", dir, String(port)])
  if (r.status === 3) {
    fs.rmSync(dir, { recursive: true, force: true })
    return { ok: false, reason: "PostgreSQL is not installed (no pg_ctl; Debian: apt-get install postgresql); cluster tests skipped" }
  }
  if (r.status !== 0) throw new Error(`could not start PostgreSQL: ${r.stderr}`)
  const must = (args: ReadonlyArray<string>) => {
    const x = run(args)
    if (x.status !== 0) throw new Error(`.ci/postgres.sh ${args.join(" ")} failed: ${x.stderr}`)
  }
  return {
    ok: true,
    url: r.stdout.trim(),
    pause: () => must(["pause", dir]),
    resume: () => must(["resume", dir, String(port)]),
    stop: () => void run(["stop", dir])
  }
}
