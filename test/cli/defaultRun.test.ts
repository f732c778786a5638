/**
 * The README's first command, as a user runs it: `llink run` on the embedded default (`llink.config.json`: the
 * project's own sample corpus, tiny seeded checkpoints, offline synthesizer and judge), in a fresh cache and run dir.
 * Checks that every stage runs, that a second run recomputes nothing, and that the method actually learns there:
 * Stage A retrieval well above chance, Stage B's L_SFT falling with L_zero − L_SFT ending positive (the slots are used),
 * and the miniature's end-to-end claims against two controls on the same cache: the same pipeline on random
 * (unpretrained) models, and LLINK with its slots zeroed at inference.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { readTableAll } from "../../src/formats/parquet/table.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")

interface ManifestStage {
  readonly status: string
  readonly outputs: Readonly<Record<string, { readonly path: string }>>
}
interface Manifest {
  readonly stages: Readonly<Record<string, ManifestStage>>
}

const llinkRun = (runDir: string, cacheDir: string, ...extra: Array<string>) => {
  const r = spawnSync(
    process.execPath,
    [path.join(repoRoot, "bin/llink.mjs"), "run", "--run-dir", runDir, "--set", `cacheDir=${cacheDir}`, ...extra],
    { cwd: repoRoot, encoding: "utf8", env: { ...process.env, OPENAI_BASE_URL: "" } }
  )
  if (r.status !== 0) throw new Error(`llink run exited ${r.status}:\n${r.stdout}\n${r.stderr}`)
  return JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")) as Manifest
}

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length

describe("the embedded default (npx llink run)", () => {
  it("runs every stage, learns, and a second run is fully cached", { timeout: 2_400_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llink-default-"))
    const runDir = path.join(dir, "run")
    const cacheDir = path.join(dir, "cache")

    const first = llinkRun(runDir, cacheDir)
    const stageNames = Object.keys(first.stages)
    expect(stageNames.length).toBeGreaterThanOrEqual(16)
    for (const name of stageNames) expect([name, first.stages[name].status]).toEqual([name, "ran"])

    // Stage A learned: held-out retrieval far above chance.
    const results = JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8")) as {
      retrieval: { stageA: { r1: number; mrr: number; chanceR1: number; n: number }; langbridge: { n: number } | null; mindmerger: { n: number } | null }
    }
    console.log(`default run: Stage A R@1 ${results.retrieval.stageA.r1} (chance ${results.retrieval.stageA.chanceR1})`)
    expect(results.retrieval.stageA.r1).toBeGreaterThan(5 * results.retrieval.stageA.chanceR1)
    // The peers' Table 1 rows are there, on the same slice.
    for (const peer of ["langbridge", "mindmerger"] as const) expect(results.retrieval[peer]?.n).toBe(results.retrieval.stageA.n)

    // Stage B learned and uses the slots: L_SFT falls, and the last measured L_zero − L_SFT is positive.
    const metricsPath = first.stages.stageB.outputs["stageB.metrics"].path
    const rows = await Effect.runPromise(readTableAll(metricsPath))
    const lsft = rows.map((r) => Number(r.lsft))
    const gaps = rows.filter((r) => r.gap !== null).map((r) => Number(r.gap))
    console.log(
      `default run: Stage B L_SFT ${mean(lsft.slice(0, 5)).toFixed(3)} → ${mean(lsft.slice(-5)).toFixed(3)}, ` +
        `last gap L_zero − L_SFT ${gaps[gaps.length - 1].toFixed(4)}`
    )
    expect(mean(lsft.slice(-5))).toBeLessThan(mean(lsft.slice(0, 5)) - 0.05)
    expect(gaps[gaps.length - 1]).toBeGreaterThan(0)

    // The miniature's pretraining worked. Uniform guessing over the decoder's English shortlist (~900 ids) is a loss of
    // ~6.8 nats and a unigram model of these sentences ~4; below 1.0 the decoder predicts the templated English
    // (names, places, numbers excepted) token by token.
    const r = JSON.parse(fs.readFileSync(path.join(runDir, "results.json"), "utf8")) as MiniResults
    const dec = r.pretrain?.decoder
    const enc = r.pretrain?.encoder
    console.log(`default run: decoder LM loss ${dec?.firstLoss} → ${dec?.finalLoss}; encoder MLM ${enc?.firstLoss} → ${enc?.finalLoss}`)
    expect(dec?.finalLoss).toBeLessThan(1.0)
    expect(enc!.finalLoss!).toBeLessThan(enc!.firstLoss! - 1)
    // LLINK reads the foreign sentence through its slots: readable translations, far above the base model (which
    // cannot read Khmer), and preferred over it with the whole 95% interval above ½, raw and length-controlled.
    const translate = (x: MiniResults, system: string) => x.generation![system].chrfByTask["translate_to_english"]
    console.log(`default run: translate chrF LLINK ${translate(r, "llink").toFixed(1)}, base ${translate(r, "base").toFixed(1)}, fine-tune ${translate(r, "finetune").toFixed(1)}`)
    expect(translate(r, "llink")).toBeGreaterThan(40)
    expect(translate(r, "llink")).toBeGreaterThan(translate(r, "base") + 15)
    expect(r.judge!.overall.vsBase.preferenceCI!.lo).toBeGreaterThan(0.5)
    expect(r.judge!.overall.vsBase.lengthControlled!.ci!.lo).toBeGreaterThan(0.5)
    expect(r.claims.length).toBe(5)

    const html = fs.readFileSync(path.join(runDir, "report.html"), "utf8")
    expect(html).toContain("<svg")
    expect(html).toContain("0.430") // the paper's Stage A R@1 beside this run's

    const second = llinkRun(runDir, cacheDir)
    for (const name of stageNames) expect([name, second.stages[name].status]).toEqual([name, "cached"])

    // `--until retrieval` in a fresh run dir still leaves results.json: what exists, and what was not computed.
    const partialDir = path.join(dir, "partial")
    const partial = llinkRun(partialDir, cacheDir, "--until", "retrieval")
    expect(partial.stages.report.status).toBe("ran")
    expect(partial.stages.stageB.status).toBe("skipped")
    const partialResults = JSON.parse(fs.readFileSync(path.join(partialDir, "results.json"), "utf8")) as {
      retrieval: { stageA: { r1: number } | null; full: unknown }
      judge: unknown
      tokenizer: unknown
      partial?: { missing: ReadonlyArray<string> }
    }
    expect(partialResults.retrieval.stageA?.r1).toBe(results.retrieval.stageA.r1)
    expect(partialResults.retrieval.full).toBeNull()
    expect(partialResults.judge).toBeNull()
    expect(partialResults.tokenizer).toBeNull() // tokstats is not upstream of retrieval
    expect(partialResults.partial?.missing).toEqual(["retrieval.full", "retrieval.peers", "retrieval.testSets", "retrieval.testSets.full", "judge", "judge.pairs", "tokstats", "stageB.metrics", "generations", "sft.eval"])
    expect(fs.readFileSync(path.join(partialDir, "report.md"), "utf8")).toContain("PARTIAL RUN: not computed in this run: retrieval.full")

    // Control 1: the slots zeroed at inference (only generate, generations, judge and report rerun; the peers' answers
    // stay cached). They carry the sentence.
    const zeroDir = path.join(dir, "zeroed")
    const zeroedManifest = llinkRun(zeroDir, cacheDir, "--set", "generate.slots=zeroed")
    expect(zeroedManifest.stages.generatePeers.status).toBe("cached")
    expect(zeroedManifest.stages.generate.status).toBe("ran")
    const zeroed = JSON.parse(fs.readFileSync(path.join(zeroDir, "results.json"), "utf8")) as MiniResults
    console.log(`default run: LLINK translate chrF ${translate(r, "llink").toFixed(1)}, slots zeroed ${translate(zeroed, "llink").toFixed(1)}`)
    expect(translate(zeroed, "llink")).toBeLessThan(translate(r, "llink") - 10)

    // Control 2: LLINK's pipeline on random (unpretrained) models of the same shapes, up to the generations; the
    // peers left out and the fine-tune cut to 5 steps (generate needs it, LLINK's numbers do not).
    const randomDir = path.join(dir, "random")
    llinkRun(randomDir, cacheDir, "--until", "generations", "--set", "models.pretrain.decoderSteps=0", "--set", "models.pretrain.encoderSteps=0", "--set", 'baselines=["base","finetune"]', "--set", "finetune.maxSteps=5")
    const random = JSON.parse(fs.readFileSync(path.join(randomDir, "results.json"), "utf8")) as MiniResults
    console.log(`default run: LLINK translate chrF pretrained ${translate(r, "llink").toFixed(1)}, random models ${translate(random, "llink").toFixed(1)}`)
    expect(translate(random, "llink")).toBeLessThan(translate(r, "llink") - 15)
    fs.rmSync(dir, { recursive: true, force: true })
  })
})

interface MiniResults {
  readonly pretrain: { readonly decoder: { firstLoss: number | null; finalLoss: number | null } | null; readonly encoder: { firstLoss: number | null; finalLoss: number | null } | null } | null
  readonly generation: Record<string, { readonly chrfByTask: Record<string, number> }> | null
  readonly judge: { readonly overall: { readonly vsBase: { preferenceCI: { lo: number } | null; lengthControlled: { ci: { lo: number } | null } | null } } } | null
  readonly claims: ReadonlyArray<unknown>
}
