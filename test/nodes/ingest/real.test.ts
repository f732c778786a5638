/**
 * Real-data tier: ingest → clean → split → tokstats on the real Khmer–English files in ../shared/data/km-en/
 * (never copied into the repository), one run per format present there: the TSV (ParaCrawl bonus column order),
 * the NTREX Moses pair and the TICO-19 TMX zip. Skipped, with a message, when the folder is absent (a fresh clone).
 * Prints the measured tokens per character of both sides (the paper reports ~1.7 for Khmer vs ~0.3 for English).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { clean } from "../../../src/nodes/clean/stage.ts"
import { ingest } from "../../../src/nodes/ingest/stage.ts"
import { split } from "../../../src/nodes/split/stage.ts"
import { tokstats } from "../../../src/nodes/tokstats/stage.ts"
import { cleanParams, corpusParams, repoRoot, rows, runStage, splitParams, tempDir, tokstatsParams } from "../../support/dataStages.ts"
import { skipFor } from "../../support/envGate.ts"

const DATA = path.resolve(repoRoot, "../shared/data/km-en")
const present = !skipFor("shared-data", fs.existsSync(DATA) ? undefined : `${DATA} is absent (it is not part of a fresh clone)`)

interface Case {
  readonly name: string
  readonly corpus: Record<string, unknown>
  readonly files: ReadonlyArray<string>
  readonly format: string
  readonly lines: number
  readonly split: { readonly train: number; readonly holdout: number; readonly evalN: number }
}

const CASES: ReadonlyArray<Case> = [
  {
    name: "TSV (mixed_real_pairs.en-km.tsv, en<TAB>km)",
    corpus: { path: path.join(DATA, "mixed_real_pairs.en-km.tsv") },
    files: ["mixed_real_pairs.en-km.tsv"],
    format: "tsv",
    lines: 8684,
    split: { train: 4000, holdout: 1000, evalN: 256 }
  },
  {
    name: "Moses pair (NTREX-128 .eng.txt / .khm.txt)",
    corpus: { path: path.join(DATA, "ntrex128.eng.txt"), pairPath: path.join(DATA, "ntrex128.khm.txt") },
    files: ["ntrex128.eng.txt", "ntrex128.khm.txt"],
    format: "moses",
    lines: 1997,
    split: { train: 1000, holdout: 500, evalN: 128 }
  },
  {
    name: "TMX zip (tico19_all.en-km.tmx.zip)",
    corpus: { path: path.join(DATA, "tico19_all.en-km.tmx.zip") },
    files: ["tico19_all.en-km.tmx.zip"],
    format: "tmx",
    lines: 3071,
    split: { train: 2000, holdout: 500, evalN: 128 }
  }
]

/** Pairs measured by tokstats per corpus (the tokenizer is the slow part). */
const TOKSTATS_PAIRS = 600

describe.skipIf(!present)("real data: ingest → clean → split → tokstats", () => {
  for (const c of CASES) {
    it.skipIf(!c.files.every((f) => fs.existsSync(path.join(DATA, f))))(c.name, async () => {
      const dir = tempDir("real")
      const ing = await runStage(ingest, corpusParams(c.corpus), {}, dir)
      const pairs = ing.outcome.rows["pairs"]
      const quarantined = ing.outcome.rows["ingest.quarantine"]
      expect(ing.outcome.metrics?.format).toBe(c.format)
      // every line/unit is accounted for: a pair or a quarantined row with a reason
      expect(pairs + quarantined).toBe(c.lines)
      expect(pairs).toBeGreaterThan(c.lines * 0.95)
      const byReason = (ing.outcome.metrics?.byReason ?? {}) as Record<string, number>
      expect(Object.values(byReason).reduce((a, b) => a + b, 0)).toBe(quarantined)

      const cl = await runStage(clean, cleanParams({}), { pairs: ing.outputs["pairs"] }, dir)
      const quality = JSON.parse(fs.readFileSync(cl.outputs["clean.quality"], "utf8"))
      expect(quality.rowsIn).toBe(pairs)
      expect(quality.kept + quality.rejected).toBe(pairs)
      expect(quality.kept).toBeGreaterThan(pairs * 0.95)
      expect(quality.normalisation.zeroWidthRemoved).toBeGreaterThan(0) // real Khmer text carries ZWSP
      expect(quality.truncated).toBeGreaterThan(0) // some Khmer sentences exceed 256 characters
      const kept = await rows(cl.outputs["clean"])
      expect(kept.every((r) => [...String(r.foreign)].length <= 256 && !String(r.foreign).includes("\u200B"))).toBe(true)

      const sp = await runStage(split, splitParams(c.split), { clean: cl.outputs["clean"] }, dir)
      expect(sp.outcome.rows).toEqual({ train: c.split.train, holdout: c.split.holdout, eval: c.split.evalN })

      const ts = await runStage(tokstats, tokstatsParams({ maxPairs: TOKSTATS_PAIRS }), { train: sp.outputs["train"] }, dir)
      const s = JSON.parse(fs.readFileSync(ts.outputs["tokstats"], "utf8"))
      expect(s.pairs).toBe(TOKSTATS_PAIRS)
      expect(s.foreign.tokensPerChar).toBeGreaterThan(s.english.tokensPerChar)
      expect(s.foreignToEnglishTokenRatio.ofTotals).toBeGreaterThan(1)
      console.log(
        `[real] ${c.name}: ${pairs} pairs, ${quarantined} quarantined ${JSON.stringify(byReason)}; clean kept ${quality.kept} ` +
          `(rejected ${JSON.stringify(quality.byReason)}, truncated ${quality.truncated}, ZWSP removed ${quality.normalisation.zeroWidthRemoved}, ` +
          `damaged-Khmer ${JSON.stringify(Object.fromEntries(Object.entries(quality.khmerDamage).map(([k, v]) => [k, (v as { rows: number }).rows])))}); ` +
          `Llama-3 tokens/char: Khmer ${s.foreign.tokensPerChar.toFixed(3)} vs English ${s.english.tokensPerChar.toFixed(3)}; ` +
          `tokens/sentence ${s.foreign.tokensPerSentence.mean.toFixed(1)} vs ${s.english.tokensPerSentence.mean.toFixed(1)} ` +
          `(ratio ${s.foreignToEnglishTokenRatio.ofTotals.toFixed(2)}×); K=8 slots save ${s.slots.savedPerSentence.mean.toFixed(1)} tokens/sentence`
      )
    })
  }
})
