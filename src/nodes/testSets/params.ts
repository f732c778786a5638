/**
 * Config section `eval`: named test sets, extra parallel corpora on which Stage A's retrieval is reported beside the
 * holdout's (`eval.testSets`). Each is a corpus in any format `ingest` reads (`src/corpus/spec.ts`; ready specs in
 * `datasets/specs/`: FLORES-200 devtest, Tatoeba), for example
 * `{ "name": "flores200", "corpus": { "path": "…/flores200_devtest.eng_Latn", "pairPath": "…/flores200_devtest.khm_Khmr", "format": "moses" } }`.
 * The `testSets` stage also selects the cuts and prompts of `clean`, `encode`, `teacher` and `retrieval`, so a test
 * set meets the models exactly as the holdout does.
 */
import { Schema } from "effect"
import { CorpusConfig } from "../../corpus/spec.ts"
import { TeacherPromptFields } from "../../prompts/teacher.ts"
import { BootstrapConfig } from "../../schemas/bootstrap.ts"
import { Count, dflt, Size } from "../../schemas/fields.ts"

export const TestSetSpec = Schema.Struct({
  /** The set's name in the report and `results.json` (letters, digits, `-`, `_`, `.`). */
  name: Schema.String.check(
    Schema.makeFilter((s) => (/^[A-Za-z0-9_.-]{1,64}$/.test(s) ? undefined : `Expected a name of letters, digits, "-", "_" or "." (1–64 characters), got ${JSON.stringify(s)}`))
  ),
  /** The corpus, as the `corpus` section (path, pairPath, format, languages, columns …). */
  corpus: CorpusConfig,
  /** Pairs evaluated: the first n usable pairs in file order; 0 = all. */
  maxPairs: dflt(Count, 0)
})
export type TestSetSpec = typeof TestSetSpec.Type

export const EvalConfig = Schema.Struct({
  testSets: dflt(
    Schema.Array(TestSetSpec).check(
      Schema.makeFilter((sets) => {
        const seen = new Set<string>()
        for (const s of sets) {
          if (seen.has(s.name)) return `Expected distinct test-set names, got "${s.name}" twice`
          seen.add(s.name)
        }
        return undefined
      })
    ),
    []
  )
})

/** What the stage depends on: the test sets and the cuts, prompts and scoring the holdout went through. */
export const TestSetsParams = Schema.Struct({
  ...EvalConfig.fields,
  clean: Schema.Struct({ removeZeroWidth: Schema.Boolean, maxForeignChars: Size }),
  encode: Schema.Struct({ batchSize: Size, maxChars: Size, maxTokens: Size }),
  teacher: Schema.Struct({ ...TeacherPromptFields, batchSize: Size }),
  pools: Schema.Array(Size),
  bootstrap: BootstrapConfig
})
export type TestSetsParams = typeof TestSetsParams.Type
