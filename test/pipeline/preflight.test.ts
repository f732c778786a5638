/**
 * The pre-flight of `llink run` (src/pipeline/preflight.ts): a config with a missing corpus, a decoder folder that
 * holds an encoder, an endpoint on a closed loopback port and no key fails before any stage runs and lists all four
 * problems, each with the config line to edit; with the fake OpenAI server up and the key set, the endpoint passes
 * (asked through GET /models); a snapshot lacking a tensor is named; stages already cached are not checked again.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { initTinyModels } from "../../src/models/init.ts"
import { snapshotProblems } from "../../src/models/snapshot.ts"
import { loadConfig } from "../../src/nodes/config.ts"
import { stages } from "../../src/nodes/index.ts"
import { ArtifactStore } from "../../src/pipeline/cache.ts"
import { runPreflight } from "../../src/pipeline/preflight.ts"
import { type FakeOpenAI, startFakeOpenAI } from "../support/fakeOpenAI.ts"

const repo = path.resolve(import.meta.dirname, "../..")
const main = path.join(repo, "src/cli/main.ts")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-preflight-"))
let tiny = { encoder: "", decoder: "" }
let server: FakeOpenAI | undefined

/** A loopback port that nothing listens on (bound, then closed). */
const closedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

beforeAll(async () => {
  await Effect.runPromise(initTinyModels(path.join(dir, "tiny"), { seed: 3 }))
  tiny = { encoder: path.join(dir, "tiny", "encoder"), decoder: path.join(dir, "tiny", "decoder") }
  server = await startFakeOpenAI()
})
afterAll(async () => {
  await server?.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Writes `name.json` (one key per line, so each field has its own line) and returns its path. */
const writeConfig = (name: string, config: Record<string, unknown>): string => {
  const file = path.join(dir, `${name}.json`)
  fs.writeFileSync(file, JSON.stringify({ cacheDir: path.join(dir, `${name}-cache`), ...config }, null, 2))
  return file
}

const lineOf = (file: string, needle: string): number => fs.readFileSync(file, "utf8").split("\n").findIndex((l) => l.includes(needle)) + 1

describe("pre-flight", () => {
  it("lists every problem at once, with the line to edit, and runs nothing", async () => {
    const port = await closedPort()
    const file = writeConfig("broken", {
      corpus: { path: path.join(dir, "no-such-corpus.tsv") },
      models: { encoder: tiny.encoder, decoder: tiny.encoder },
      synth: { mode: "endpoint", endpoint: { baseUrl: `http://127.0.0.1:${port}/v1` } }
    })
    const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_BASE_URL: "" }
    delete env["OPENAI_API_KEY"]
    const runDir = path.join(dir, "broken-run")
    const r = spawnSync(process.execPath, [main, "run", "--config", file, "--run-dir", runDir], { cwd: dir, env, encoding: "utf8", timeout: 120_000 })
    const out = r.stdout + r.stderr
    expect(r.status, out).toBe(1)
    expect(out).toMatch(/pre-flight: 4 problems \(\d+ stages checked\); nothing has run/)
    const shown = path.basename(file)
    expect(out).toContain(`${shown}:${lineOf(file, "no-such-corpus")}: corpus.path: `)
    expect(out).toContain("no-such-corpus.tsv")
    expect(out).toContain(`${shown}:${lineOf(file, '"decoder"')}: models.decoder: ${tiny.encoder}: config.json describes an XLM-RoBERTa encoder, not a Llama decoder`)
    expect(out).toMatch(new RegExp(`synth\\.endpoint\\.baseUrl: cannot reach http://127\\.0\\.0\\.1:${port}/v1`))
    expect(out).toContain("synth.endpoint.apiKeyEnv: $OPENAI_API_KEY is not set")
    // the encoder folder is a fine encoder: no line for it
    expect(out).not.toContain("models.encoder:")
    // nothing ran: no stage output, no manifest
    expect(out).not.toMatch(/\[ingest\] running/)
    expect(fs.existsSync(path.join(runDir, "manifest.json"))).toBe(false)
  })

  it("passes an endpoint that answers with the key set, and leaves out cached stages", async () => {
    const fake = server!
    const before = fake.modelListings()
    const file = writeConfig("good", {
      corpus: { path: path.join(repo, "datasets/km-en-sample/km-en.sample.tsv") },
      split: { train: 400, holdout: 120, evalN: 20 },
      synth: { mode: "endpoint", endpoint: { baseUrl: fake.baseUrl } }
    })
    const config = await Effect.runPromise(loadConfig({ file }))
    const check = (env: Record<string, string | undefined>) =>
      Effect.runPromise(
        runPreflight(stages, { config, runDir: path.join(dir, "good-run"), cacheDir: config.value.cacheDir, env }).pipe(
          Effect.provide(ArtifactStore.layer(config.value.cacheDir))
        )
      )
    const ok = await check({ OPENAI_API_KEY: "sk-test" })
    expect(ok.problems).toEqual([])
    expect(ok.checked).toContain("synthesize")
    expect(fake.modelListings()).toBe(before + 1)
    // the key is needed, and its value never shows
    const noKey = await check({})
    expect(noKey.problems.map((p) => p.field)).toEqual(["synth.endpoint.apiKeyEnv"])

    // after ingest → split ran, those stages are cached and not checked again
    const runDir = path.join(dir, "good-run")
    const r = spawnSync(process.execPath, [main, "run", "--config", file, "--run-dir", runDir, "--until", "split"], {
      cwd: dir, env: { ...process.env, OPENAI_API_KEY: "sk-test" }, encoding: "utf8", timeout: 300_000
    })
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const again = await check({ OPENAI_API_KEY: "sk-test" })
    expect(again.cached).toEqual(["ingest", "clean", "split"])
    expect(again.checked).not.toContain("ingest")
  })

  it("names a snapshot that lacks a tensor, and a folder without tokenizer.json", async () => {
    const broken = path.join(dir, "decoder-broken")
    fs.cpSync(tiny.decoder, broken, { recursive: true })
    expect(await Effect.runPromise(snapshotProblems(broken, "llama"))).toEqual([])
    // rewrite the checkpoint without one tensor: its header no longer names it
    const { readSafetensorsFileSync, writeSafetensorsFile } = await import("../../src/models/safetensors.ts")
    const weights = readSafetensorsFileSync(path.join(broken, "model.safetensors"))
    weights.delete("model.norm.weight")
    await Effect.runPromise(writeSafetensorsFile(path.join(broken, "model.safetensors"), weights))
    fs.rmSync(path.join(broken, "tokenizer.json"))
    const problems = await Effect.runPromise(snapshotProblems(broken, "llama"))
    expect(problems).toEqual([
      `${broken}: no tokenizer.json`,
      `${broken}: the checkpoint lacks 1 tensor config.json implies (model.norm.weight)`
    ])
  })
})
