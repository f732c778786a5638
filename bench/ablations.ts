/**
 * `npm run bench -- ablations`: the embedded default beside its ablations (issue "The method, visible"): usage
 * contrast off, and the authors' code's inverted sign; K ∈ {1, 4, 16} (8 is the default); Stage B on an untrained
 * (random) projector; slots zeroed at inference. One run each in one shared cache, then the tables of
 * `bench/variants.ts`. `BENCH_ABLATIONS=name,name` runs a subset; `BENCH_ABLATIONS_DIR` keeps the cache between calls
 * (default: a fresh temporary folder).
 */
import { runVariants, type Variant } from "./variants.ts"

const ABLATIONS: ReadonlyArray<Variant> = [
  ["default", []],
  ["contrast off", ["stageB.contrastWeight=0"]],
  ["contrast: code's sign", ["stageB.contrastSign=code"]],
  ["K = 1", ["models.slots=1"]],
  ["K = 4", ["models.slots=4"]],
  ["K = 16", ["models.slots=16"]],
  ["random projector", ["stageA.ablation=untrained"]],
  ["slots zeroed at inference", ["generate.slots=zeroed"]]
]

runVariants(ABLATIONS, {
  label: "ablations",
  dir: process.env.BENCH_ABLATIONS_DIR,
  only: process.env.BENCH_ABLATIONS?.split(",").map((s) => s.trim())
})
