/**
 * vitest globalSetup: every temporary folder the suite makes (`os.tmpdir()` in tests and in the processes they
 * start) goes under one folder of this run, removed when the run ends (`LLINK_KEEP_TMP=1` keeps it for a post-mortem),
 * so a run leaves nothing in /tmp however its tests clean up.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export default function setup(): () => void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "llink-test-"))
  // traversable by other users: as root, the cluster tests' PostgreSQL runs as `postgres` in a folder under it
  fs.chmodSync(root, 0o755)
  const previous = process.env["TMPDIR"]
  process.env["TMPDIR"] = root
  return () => {
    if (previous === undefined) delete process.env["TMPDIR"]
    else process.env["TMPDIR"] = previous
    if (process.env["LLINK_KEEP_TMP"] === "1") process.stderr.write(`kept the suite's temporary files in ${root}\n`)
    else fs.rmSync(root, { recursive: true, force: true })
  }
}
