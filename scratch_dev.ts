// R@1 of a run's projector on holdout rows [200, 400): the slice NOT used as the eval, for choosing settings
import { Effect } from "effect"
import * as Projector from "./src/models/projector.ts"
import { loadProjectorDir } from "./src/artifacts/projector.ts"
import { readMatrixHead } from "./src/artifacts/matrixHead.ts"
import { projectRows } from "./src/metrics/projectorRetrieval.ts"
import { goldRanks } from "./src/metrics/retrieval.ts"
import { matMulABtJs } from "./src/train/hostMath.ts"
for (const dir of process.argv.slice(2)) {
  const { config, host } = await Effect.runPromise(loadProjectorDir(`${dir}/artifacts/projector`))
  const z = await Effect.runPromise(readMatrixHead(`${dir}/artifacts/zF.holdout.arrow`, 1e9))
  const h = await Effect.runPromise(readMatrixHead(`${dir}/artifacts/hE.holdout.arrow`, 1e9))
  const proj = Projector.fromHost(config, host, { trainable: false })
  const p = await projectRows(proj, z, z.rows)
  const d = h.dim
  const r = (a: number, b: number) => {
    const ranks = goldRanks(p.subarray(a * d, b * d), h.data.subarray(a * d, b * d), d, { matmul: matMulABtJs, normalize: true })
    return ranks.filter((x) => x === 1).length / (b - a)
  }
  console.log(`${dir}: dev [200,400) R@1 ${r(200, 400).toFixed(3)}  eval [0,200) R@1 ${r(0, 200).toFixed(3)}`)
}
