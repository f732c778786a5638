/**
 * The order vitest starts test files in: the suite's longest files first, longest first (as measured on CI), then the
 * rest in vitest's own order. With two workers, a long file started last finishes alone while the other worker
 * idles; started first, it runs beside the many short files (longest-processing-time-first scheduling).
 */
import { BaseSequencer, type TestSpecification } from "vitest/node"

/** CI seconds (clean clone at 46969d4): 1,352, 332, 241, 192, 171. */
const LONGEST = [
  "test/cli/defaultRun.test.ts",
  "test/artifacts/runExamples.test.ts",
  "test/cluster/cluster.test.ts",
  "test/cli/soak.test.ts",
  "test/cluster/operator.test.ts"
]

const rank = (file: TestSpecification): number => {
  const i = LONGEST.findIndex((name) => file.moduleId.replaceAll("\\", "/").endsWith(name))
  return i < 0 ? LONGEST.length : i
}

export default class LongestFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    return sorted.map((file, at) => ({ file, at })).sort((a, b) => rank(a.file) - rank(b.file) || a.at - b.at).map((x) => x.file)
  }
}
