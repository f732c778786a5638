/**
 * A corpus's pre-flight (`ingest`'s and each test set's): the corpus files exist and can be read, and the corpus resolves to a format the
 * way `ingest` will resolve it (magic bytes, names, first line; Moses pair and score files found), without reading
 * the corpus itself. A plain (uncompressed) TSV must also show a tab in its first line.
 */
import * as path from "node:path"
import { Effect } from "effect"
import type { PreflightProblem } from "../pipeline/stage.ts"
import { readHead } from "./bytes.ts"
import { resolveCorpus } from "./corpus.ts"
import type { CorpusParams } from "./spec.ts"

/** The config field that names `file` (the corpus's main file, its pair, its scores). */
const fieldOf = (p: CorpusParams, file: string, at: string): string =>
  p.pairPath !== undefined && path.resolve(p.pairPath) === file
    ? `${at}.pairPath`
    : p.scorePath !== undefined && path.resolve(p.scorePath) === file
    ? `${at}.scorePath`
    : `${at}.path`

/** The problems of the corpus `p`, each naming its config field under `at` (`corpus`, `eval.testSets[0]`). */
export const corpusPreflight = Effect.fn("Corpus.preflight")(function*(p: CorpusParams, at = "corpus") {
  const plan = yield* Effect.result(resolveCorpus(p))
  if (plan._tag === "Failure") {
    const e = plan.failure
    const message = e.message.includes(e.file) ? e.message : `${e.file}: ${e.message}`
    return [{ field: fieldOf(p, e.file, at), message }] satisfies Array<PreflightProblem>
  }
  const resolved = plan.success
  if ((resolved.format === "tsv" || resolved.format === "wmt20") && !/\.(gz|xz)$/i.test(p.path)) {
    const file = path.resolve(p.path)
    const head = yield* Effect.result(readHead(file, 64 * 1024))
    if (head._tag === "Failure") return [{ field: `${at}.path`, message: `${file}: ${head.failure.message}` }]
    const text = new TextDecoder().decode(head.success)
    const first = text.split("\n").find((l) => l.trim() !== "")
    if (first !== undefined && !first.includes("\t")) {
      return [{ field: `${at}.format`, message: `${file}: read as TSV, but its first line has no tab: ${JSON.stringify(first.slice(0, 60))}` }]
    }
  }
  return []
})
