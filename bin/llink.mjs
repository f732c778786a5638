#!/usr/bin/env node
// Entry point for `npx llink`. The project's own Node 22 (npm package `node`) comes first on PATH under npx and
// npm scripts, and Node >= 22.18 runs the TypeScript sources directly (type stripping), so there is no build step.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `llink needs Node >= 22.18 (found ${process.version}). Run it through npx or npm scripts after \`npm ci\`: ` +
      "the project installs Node 22 from the npm registry as a dependency (package `node`)."
  )
  process.exit(1)
}
await import("../src/cli/main.ts")
