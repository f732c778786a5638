import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadConfig } from "../../src/nodes/config.ts"
import { locateJsonPaths, type LoadConfigOptions } from "../../src/pipeline/configLoad.ts"
import { ConfigError } from "../../src/pipeline/errors.ts"
import { tmpDir } from "../support/toy.ts"

const load = (options: LoadConfigOptions) => Effect.runPromise(loadConfig(options))
const loadError = (options: LoadConfigOptions) => Effect.runPromise(Effect.flip(loadConfig(options)))

/** A folder holding `llink.config.json` with `text`. */
const withConfig = (text: string) => {
  const dir = tmpDir("config")
  fs.writeFileSync(path.join(dir, "llink.config.json"), text)
  return dir
}

describe("loadConfig", () => {
  it("a missing default file means all defaults, paths resolved against the working directory", async () => {
    const cwd = tmpDir("noconfig")
    const config = await load({ cwd })
    expect(config.file).toBeNull()
    expect(config.value.split.seed).toBe(17)
    expect(config.value.cacheDir).toBe(path.join(cwd, "runs/.cache"))
    expect(config.value.corpus.path).toBe(path.join(cwd, "datasets/km-en-sample/km-en.sample.tsv"))
    expect(config.digest).toMatch(/^[0-9a-f]{64}$/)
    // The digest does not depend on where the config lives.
    expect((await load({ cwd: tmpDir("noconfig2") })).digest).toBe(config.digest)
  })

  it("a missing --config file is an error", async () => {
    const cwd = tmpDir("missing")
    const error = await loadError({ cwd, file: "nope.json" })
    expect(error).toBeInstanceOf(ConfigError)
    expect(error.message).toContain("nope.json: cannot read the config file")
  })

  it("resolves relative paths against the config file's folder", async () => {
    const dir = withConfig(JSON.stringify({ cacheDir: "cache", corpus: { path: "data/c.tsv", pairPath: "/abs/p.km" } }))
    const config = await load({ cwd: tmpDir("elsewhere"), file: path.join(dir, "llink.config.json") })
    expect(config.file).toBe(path.join(dir, "llink.config.json"))
    expect(config.value.cacheDir).toBe(path.join(dir, "cache"))
    expect(config.value.corpus.path).toBe(path.join(dir, "data/c.tsv"))
    expect(config.value.corpus.pairPath).toBe("/abs/p.km")
    expect(config.value.tokstats.tokenizer).toBe("")
  })

  it("type errors name the file, line, field path and expected type", async () => {
    const dir = withConfig(`{\n  "split": {\n    "seed": 3,\n    "train": "many"\n  }\n}\n`)
    const error = await loadError({ cwd: dir })
    expect(error.path).toBe("split.train")
    expect(error.message).toBe(`llink.config.json:4: split.train: Expected number, got "many"`)
  })

  it("unknown keys are errors listing the known ones", async () => {
    const dir = withConfig(`{\n  "split": {\n    "trian": 5\n  }\n}`)
    const error = await loadError({ cwd: dir })
    expect(error.message).toBe(
      `llink.config.json:3: split.trian: unknown field "trian" (known fields of split: train, holdout, seed, holdoutFrom, evalN)`
    )
  })

  it("errors inside arrays point at the element's line", async () => {
    const dir = withConfig(`{\n  "clean": {\n    "scriptRanges": [\n      [1, 2],\n      [3, "x"]\n    ]\n  }\n}`)
    const error = await loadError({ cwd: dir })
    expect(error.message).toBe(`llink.config.json:5: clean.scriptRanges[1][1]: Expected number, got "x"`)
  })

  it("JSON syntax errors give the line", async () => {
    const dir = withConfig(`{\n  "split": {\n    "seed": 3,\n  }\n}`)
    const error = await loadError({ cwd: dir })
    expect(error.message).toMatch(/^llink\.config\.json:4: invalid JSON: /)
  })

  it("--set overrides: JSON values, strings, new intermediate objects", async () => {
    const dir = withConfig(JSON.stringify({ split: { seed: 1 } }))
    const config = await load({
      cwd: dir,
      sets: ["split.seed=18", "corpus.path=other.tsv", "corpus.foreignLang=123", "clean.scriptRanges=[[1,2]]"]
    })
    expect(config.value.split.seed).toBe(18)
    expect(config.value.corpus.path).toBe(path.join(dir, "other.tsv"))
    expect(config.value.corpus.foreignLang).toBe("123")
    expect(config.value.clean.scriptRanges).toEqual([[1, 2]])
    expect(config.overrides).toHaveLength(4)
    expect(config.digest).not.toBe((await load({ cwd: dir })).digest)
  })

  it("--set with an unknown path or a bad value is an error naming the --set", async () => {
    const dir = withConfig("{}")
    const unknown = await loadError({ cwd: dir, sets: ["split.trian=1"] })
    expect(unknown.message).toBe(
      `--set split.trian=1: split.trian: unknown field "trian" (known fields of split: train, holdout, seed, holdoutFrom, evalN)`
    )
    const bad = await loadError({ cwd: dir, sets: ["split.seed=abc"] })
    expect(bad.message).toBe(`--set split.seed=abc: split.seed: Expected number, got "abc"`)
    const notObject = await loadError({ cwd: dir, sets: ["split.seed.x=1"] })
    expect(notObject.message).toContain("--set split.seed.x=1")
    const malformed = await loadError({ cwd: dir, sets: ["split.seed"] })
    expect(malformed.message).toContain("expected path=value")
  })
})

describe("locateJsonPaths", () => {
  it("finds the line of every key and array element", () => {
    const lines = locateJsonPaths(`{\n "a": {\n  "b": [\n   1,\n   {"c": "x\\"y"}\n  ]\n },\n "d": true\n}`)
    expect(lines.get(JSON.stringify(["a"]))).toBe(2)
    expect(lines.get(JSON.stringify(["a", "b"]))).toBe(3)
    expect(lines.get(JSON.stringify(["a", "b", 0]))).toBe(4)
    expect(lines.get(JSON.stringify(["a", "b", 1, "c"]))).toBe(5)
    expect(lines.get(JSON.stringify(["d"]))).toBe(8)
  })
})
