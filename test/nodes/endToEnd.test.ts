/**
 * The whole pipeline end to end through the runner, on the bundled sample corpus with tiny models and a few
 * training steps: ingest → … → Stage A → synthesize (offline) → Stage B / fine-tune → generate → judge (offline) →
 * retrievalFull → report. Checks that the artifacts line up (the DAG builds), every stage runs, the report holds
 * the numbers the earlier stages recorded, the lineage lists every stage, and a second run is fully cached.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { TensorBackend } from "../../src/backend/tensorBackend.ts"
import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { finetune } from "../../src/nodes/finetune/stage.ts"
import { langbridge } from "../../src/nodes/langbridge/stage.ts"
import { mindmerger } from "../../src/nodes/mindmerger/stage.ts"
import { generate } from "../../src/nodes/generate/stage.ts"
import { stages as registered } from "../../src/nodes/index.ts"
import { judge } from "../../src/nodes/judge/stage.ts"
import { report } from "../../src/nodes/report/stage.ts"
import { retrievalFull } from "../../src/nodes/retrievalFull/stage.ts"
import { retrievalPeers } from "../../src/nodes/retrievalPeers/stage.ts"
import { stageB } from "../../src/nodes/stageB/stage.ts"
import { synthesize } from "../../src/nodes/synthesize/stage.ts"
import { ArtifactStore } from "../../src/pipeline/cache.ts"
import { buildDag, type AnyStage } from "../../src/pipeline/dag.ts"
import { makeMemoryReporter } from "../../src/pipeline/progress.ts"
import { runPipeline } from "../../src/pipeline/runner.ts"
import { LlinkConfig } from "../../src/nodes/config.ts"
import { tmpDir } from "../support/stageB.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")

/** The registered stages plus any of the Stage B / evaluation stages not registered yet, in DAG order. */
const allStages = (): ReadonlyArray<AnyStage<TensorBackend>> => {
  const names = new Set(registered.map((s) => s.name))
  const extra: ReadonlyArray<AnyStage<TensorBackend>> = [synthesize, stageB, finetune, langbridge, mindmerger, generate, judge, retrievalFull, retrievalPeers, report]
  return [...registered, ...extra.filter((s) => !names.has(s.name))]
}

const tinyConfig = () => {
  const sft = { maxSteps: 2, microBatch: 4, accumulation: 1, evalEvery: 0, checkpointEvery: 0, valMaxRows: 4, maxSeqLen: 96 }
  return Schema.decodeUnknownSync(LlinkConfig)(
    {
      corpus: { path: path.join(repoRoot, "datasets/km-en-sample/km-en.sample.tsv") },
      split: { train: 400, holdout: 120, evalN: 24 },
      models: { tinyTokenizerPairs: 400 },
      stageA: { steps: 3, microBatch: 8, accumulation: 1, warmupSteps: 1, queueSize: 64, hardNegatives: 8, checkpointEvery: 0, evalEvery: 0 },
      synth: { mode: "offline", train: 24, val: 4, evalPerBucket: 3 },
      stageB: sft,
      finetune: sft,
      langbridge: sft,
      mindmerger: { ...sft, mappingMaxSteps: 2, mappingRows: 16 },
      generate: { maxNewTokens: 4, batchSize: 6 },
      judge: { mode: "offline" },
      report: { samples: 4 }
    },
    { onExcessProperty: "error" }
  )
}

describe("end to end on tiny models", () => {
  it("the stages form one DAG: synthesize feeds Stage B and the fine-tune, which feed generate → generations → judge → report", async () => {
    const dag = await Effect.runPromise(buildDag(allStages()))
    const at = (s: string) => dag.order.indexOf(s)
    expect(at("synthesize")).toBeGreaterThan(at("split"))
    // LLINK's, base's and the fine-tune's answers do not wait for the peers' training; the peers answer apart
    expect(new Set(dag.upstream("generate"))).toEqual(new Set(["models", "stageA", "stageB", "finetune", "encode", "synthesize"]))
    expect(new Set(dag.upstream("generatePeers"))).toEqual(new Set(["models", "langbridge", "mindmerger", "synthesize"]))
    expect(new Set(dag.upstream("generations"))).toEqual(new Set(["generate", "generatePeers"]))
    expect(dag.upstream("judge")).toEqual(["generations"])
    expect(at("report")).toBe(dag.order.length - 1)
    expect(new Set(dag.upstream("report"))).toEqual(new Set(["retrieval", "retrievalFull", "retrievalPeers", "testSets", "testSetsFull", "judge", "tokstats", "clean", "ingest", "stageA", "stageB", "generations", "synthesize", "models"]))
  })

  it("runs every stage, reports the recorded numbers with the lineage, and a rerun is all cached", async () => {
    const root = tmpDir("e2e")
    const cacheDir = path.join(root, "cache")
    const runDir = path.join(root, "run")
    const value = tinyConfig()
    const run = () => {
      const reporter = makeMemoryReporter()
      return Effect.runPromise(
        runPipeline(allStages(), { config: { value, file: null, digest: "e2e", overrides: [] }, runDir, reporter }).pipe(
          Effect.provide(ArtifactStore.layer(cacheDir, (m) => reporter.warn(m))),
          Effect.provide(TensorBackend.layer)
        )
      )
    }
    const first = await run()
    const failed = first.stages.filter((s) => s.status !== "ran")
    expect(failed.map((s) => `${s.stage}: ${s.status} ${s.error ?? s.reason ?? ""}`)).toEqual([])
    const manifest = first.manifest
    const results = JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8"))
    expect(results.offline).toEqual({ synthesizer: true, judge: true })
    expect(results.retrieval.stageA.r1).toBe((manifest.stages["retrieval"].metrics["stageA"] as { r1: number }).r1)
    expect(results.retrieval.full.n).toBe(24)
    expect(results.retrieval.peerVector).toBe("meanMappedStates")
    for (const peer of ["langbridge", "mindmerger"]) expect(results.retrieval[peer].n).toBe(24)
    expect(results.tokens.examples).toBe(6)
    expect(results.tokens.ratioBaseToLlink).toBeGreaterThan(1)
    const html = fs.readFileSync(path.join(runDir, "report.html"), "utf8")
    for (const stage of ["ingest", "synthesize", "stageB", "finetune", "generate", "generatePeers", "generations", "judge", "retrievalFull", "retrievalPeers"]) expect(html).toContain(`<td>${stage}</td>`)
    expect(html).toContain("Stage B: L_SFT vs L_zero")
    expect(html).toContain("<svg")
    expect(fs.existsSync(path.join(runDir, "artifacts", "report", "report.html"))).toBe(true)

    const second = await run()
    expect(second.stages.every((s) => s.status === "cached")).toBe(true)
    fs.rmSync(root, { recursive: true, force: true })
  }, 600_000)
})
