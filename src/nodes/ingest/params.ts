/** Config section `corpus`: what `ingest` reads and how. The shape is the corpus library's (`src/corpus/spec.ts`),
 *  shared with the named test sets of `eval.testSets`. */
export { CorpusConfig, CorpusFormat, type CorpusParams } from "../../corpus/spec.ts"
