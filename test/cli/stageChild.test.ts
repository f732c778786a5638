/**
 * The real stage child (src/cli/stageChild.ts): every heavy stage's parameters, as the parent sends them (the
 * manifest's JSON), decode in the child to the same value the parent decoded, under the default config and under the
 * settings beyond the paper; and a request the child cannot serve comes back as a reply, not a hang.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { loadConfig } from "../../src/nodes/config.ts"
import { stages } from "../../src/nodes/index.ts"
import { canonicalJson } from "../../src/pipeline/digest.ts"
import { decodeStageParams } from "../../src/pipeline/plan.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")

describe("stage child", () => {
  it("decodes every heavy stage's parameters to what the parent decoded", async () => {
    const heavy = stages.filter((s) => s.heavy === true)
    expect(heavy.map((s) => s.name)).toEqual(expect.arrayContaining(["tinyEncoder", "tinyDecoder", "finetune", "stageA", "stageB", "generate"]))
    const settings = [
      [],
      ["stageB.numbers=copy", `stageB.slotPolicy={"byLength":{"min":2,"max":8,"tokensPerSlot":2}}`, "models.pretrain.numberDrill=true"]
    ]
    for (const sets of settings) {
      const config = await Effect.runPromise(loadConfig({ file: path.join(repoRoot, "llink.config.json"), sets }))
      for (const stage of heavy) {
        const parent = await Effect.runPromise(decodeStageParams(stage, config))
        const child = await Effect.runPromise(Schema.decodeUnknownEffect(stage.params)(JSON.parse(JSON.stringify(parent.json))))
        expect(canonicalJson(child), `${stage.name} with ${sets.join(" ")}`).toBe(canonicalJson(parent.value))
      }
    }
  })

  it("answers a request it cannot serve with a reply that says why", () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, "src/cli/stageChild.ts")], {
      input: JSON.stringify({ stage: "nope", key: "k", root: "/tmp", params: {}, inputs: {}, outputs: {}, scratchDir: "/tmp", runDir: "/tmp" }),
      encoding: "utf8"
    })
    expect(r.status).toBe(1)
    expect(JSON.parse(r.stdout.trim())).toEqual({ ok: false, message: "no stage named nope in this build" })
  })
})
