// Preloaded by bench/device/pack.sh (NODE_OPTIONS=--import): appends every file Node resolves (ESM imports,
// require() calls, native addons) to $LLINK_TRACE_FILE, so the device folder holds exactly what runs.
import { appendFileSync } from "node:fs"
import { registerHooks } from "node:module"

const out = process.env.LLINK_TRACE_FILE
if (out !== undefined) {
  registerHooks({
    resolve(specifier, context, next) {
      const result = next(specifier, context)
      if (result.url.startsWith("file:")) appendFileSync(out, `${result.url}\n`)
      return result
    }
  })
}
