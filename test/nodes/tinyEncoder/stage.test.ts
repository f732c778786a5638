/**
 * The tiny checkpoints are two stages that run side by side: each one's key holds only its own side's settings, so
 * changing the decoder's pretraining does not make the encoder run again (and the other way round), and both are
 * upstream of `models` and of nothing else.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { stages } from "../../../src/nodes/index.ts"
import { tinyDecoder } from "../../../src/nodes/tinyDecoder/stage.ts"
import { tinyEncoder } from "../../../src/nodes/tinyEncoder/stage.ts"
import { buildDag } from "../../../src/pipeline/dag.ts"
import { configOf, paramsOf } from "../../support/stageB.ts"

describe("tinyEncoder and tinyDecoder", () => {
  it("each reads only its own side of models.pretrain", () => {
    const base = configOf({ models: { tinySize: "mini", pretrain: { decoderSteps: 300, encoderSteps: 200 } } })
    const decoderChanged = configOf({ models: { tinySize: "mini", pretrain: { decoderSteps: 1000, encoderSteps: 200, numberDrill: true } } })
    const encoderChanged = configOf({ models: { tinySize: "mini", pretrain: { decoderSteps: 300, encoderSteps: 50, maskProb: 0.2 } } })
    expect(paramsOf(tinyEncoder, decoderChanged)).toEqual(paramsOf(tinyEncoder, base))
    expect(paramsOf(tinyEncoder, encoderChanged)).not.toEqual(paramsOf(tinyEncoder, base))
    expect(paramsOf(tinyDecoder, encoderChanged)).toEqual(paramsOf(tinyDecoder, base))
    expect(paramsOf(tinyDecoder, decoderChanged)).not.toEqual(paramsOf(tinyDecoder, base))
    // a snapshot on one side leaves that side's stage nothing to do, and the other side as it was
    const snapshotEncoder = configOf({ models: { encoder: "/models/xlm-roberta-base", tinySize: "mini" } })
    expect(paramsOf(tinyEncoder, snapshotEncoder).tiny).toBe(false)
    expect(paramsOf(tinyDecoder, snapshotEncoder)).toEqual(paramsOf(tinyDecoder, configOf({ models: { tinySize: "mini" } })))
  })

  it("run side by side: neither is upstream of the other, and models waits for both", async () => {
    const dag = await Effect.runPromise(buildDag(stages))
    expect(dag.ancestors("tinyDecoder")).not.toContain("tinyEncoder")
    expect(dag.ancestors("tinyEncoder")).not.toContain("tinyDecoder")
    expect(new Set(dag.upstream("models"))).toEqual(new Set(["tinyEncoder", "tinyDecoder"]))
    for (const s of stages) {
      if (s.name === "models") continue
      expect(dag.upstream(s.name), s.name).not.toContain("tinyEncoder")
      expect(dag.upstream(s.name), s.name).not.toContain("tinyDecoder")
    }
  })
})
