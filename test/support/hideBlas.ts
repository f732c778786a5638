/**
 * Running a command as on a machine without OpenBLAS: in a private mount namespace (`unshare -m`, root only), an
 * empty folder is bind-mounted over every folder that holds a `libopenblas.so*` the dynamic loader knows
 * (`ldconfig -p`, links resolved), so neither the loader's search nor llink's own Debian paths find it. Used by the
 * no-BLAS test and `npm run bench -- fallback`.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** Folders holding OpenBLAS on this machine (empty when it has none). */
export const openblasFolders = (): Array<string> => {
  let listing = ""
  try {
    listing = execFileSync("ldconfig", ["-p"], { encoding: "utf8" })
  } catch (e) {
    throw new Error(`ldconfig -p failed: ${e instanceof Error ? e.message : String(e)}`)
  }
  const folders = new Set<string>()
  for (const line of listing.split("\n")) {
    const m = /libopenblas[^\s]*\.so[^\s]*.*=>\s*(\S+)/.exec(line)
    if (m === null) continue
    if (fs.existsSync(m[1])) folders.add(path.dirname(fs.realpathSync(m[1])))
  }
  // a shared lib folder itself is never hidden (everything lives there): Debian's OpenBLAS entries in it are links
  // into the variant's own folder (openblas-pthread/), which is hidden, so they dangle
  for (const shared of ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/lib64"]) {
    if (folders.has(shared)) throw new Error(`OpenBLAS sits directly in ${shared}; hiding it would hide every library`)
  }
  return [...folders].sort()
}

/** Why commands cannot be run with OpenBLAS hidden here, or undefined when they can. */
export const hideBlasUnavailable = (): string | undefined => {
  if (process.platform !== "linux") return "not Linux"
  if (process.getuid?.() !== 0) return "needs root for unshare -m and mount --bind"
  const r = spawnSync("unshare", ["-m", "true"], { encoding: "utf8" })
  if (r.status !== 0) return `unshare -m does not work here (${(r.stderr || r.error?.message || "").trim()})`
  if (openblasFolders().length === 0) return "OpenBLAS is not installed here, so there is nothing to hide"
  return undefined
}

/** `argv` with OpenBLAS hidden; returns the spawnSync result. */
export const runWithoutBlas = (argv: ReadonlyArray<string>, options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "llink-noblas-"))
  const mounts = openblasFolders().map((f) => `mount --bind ${JSON.stringify(empty)} ${JSON.stringify(f)}`).join(" && ")
  const quoted = argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ")
  try {
    return spawnSync("unshare", ["-m", "sh", "-c", `${mounts} && exec ${quoted}`], { cwd: options.cwd, env: options.env, encoding: "utf8", timeout: options.timeoutMs, maxBuffer: 64 << 20 })
  } finally {
    fs.rmSync(empty, { recursive: true, force: true })
  }
}
