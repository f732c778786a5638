/**
 * The `projector` artifact: a folder with `projector.safetensors` (float32 tensors under the PyTorch names
 * `fc1.weight` [dHidden, dIn], `fc1.bias`, `fc2.weight` [dOut, dHidden], `fc2.bias`, `ln.weight`, `ln.bias`) and
 * `config.json` ({ format: "llink-projector", version: 1, dIn, dHidden, dOut, dropout, lnEps, steps }).
 *
 * `loadProjectorDir` is what later stages (retrieval, Stage B) call; it checks every tensor against the config.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { checkHost, PARAM_NAMES } from "../models/projector.ts"
import type { ProjectorConfig } from "../models/projector.ts"
import type { HostTensor } from "../models/safetensors.ts"
import { readSafetensorsFile, writeSafetensorsFile } from "../models/safetensors.ts"
import { ArtifactError } from "../pipeline/errors.ts"

export { PROJECTOR_CONFIG, PROJECTOR_WEIGHTS, ProjectorConfigFile } from "../schemas/projector.ts"
import { PROJECTOR_CONFIG, PROJECTOR_WEIGHTS, ProjectorConfigFile } from "../schemas/projector.ts"
import { describeError } from "../errors/describe.ts"

const describe = (cause: unknown): string => describeError(cause)

/** Writes the projector folder `dir` (created if needed). */
export const saveProjectorDir = (
  dir: string,
  config: ProjectorConfig,
  host: ReadonlyMap<string, HostTensor>,
  steps: number
): Effect.Effect<void, ArtifactError> =>
  Effect.gen(function*() {
    yield* Effect.try({
      try: () => {
        checkHost(config, host)
        fs.mkdirSync(dir, { recursive: true })
      },
      catch: (cause) => new ArtifactError({ path: dir, message: `cannot write the projector: ${describe(cause)}`, cause })
    })
    const ordered = new Map<string, HostTensor>()
    for (const name of PARAM_NAMES) {
      const t = host.get(name)
      if (t !== undefined) ordered.set(name, t)
    }
    yield* writeSafetensorsFile(path.join(dir, PROJECTOR_WEIGHTS), ordered, { metadata: { format: "pt", llink: "projector" } }).pipe(
      Effect.mapError((e) => new ArtifactError({ path: e.file, message: e.message, cause: e }))
    )
    const file: ProjectorConfigFile = {
      format: "llink-projector",
      version: 1,
      dIn: config.dIn,
      dHidden: config.dHidden,
      dOut: config.dOut,
      dropout: config.dropout,
      lnEps: config.lnEps,
      steps
    }
    yield* Effect.try({
      try: () => fs.writeFileSync(path.join(dir, PROJECTOR_CONFIG), `${JSON.stringify(file, null, 2)}\n`),
      catch: (cause) => new ArtifactError({ path: path.join(dir, PROJECTOR_CONFIG), message: `cannot write: ${describe(cause)}`, cause })
    })
  })

/** Reads a projector folder: its config and weights (checked against each other). */
export const loadProjectorDir = (
  dir: string
): Effect.Effect<{ readonly config: ProjectorConfig; readonly file: ProjectorConfigFile; readonly host: Map<string, HostTensor> }, ArtifactError> =>
  Effect.gen(function*() {
    const configPath = path.join(dir, PROJECTOR_CONFIG)
    const raw = yield* Effect.try({
      try: (): unknown => JSON.parse(fs.readFileSync(configPath, "utf8")),
      catch: (cause) => new ArtifactError({ path: configPath, message: `cannot read the projector config: ${describe(cause)}`, cause })
    })
    const file = yield* Schema.decodeUnknownEffect(ProjectorConfigFile)(raw).pipe(
      Effect.mapError((cause) => new ArtifactError({ path: configPath, message: `not a projector config: ${cause.message}`, cause }))
    )
    const config: ProjectorConfig = { dIn: file.dIn, dHidden: file.dHidden, dOut: file.dOut, dropout: file.dropout, lnEps: file.lnEps }
    const weightsPath = path.join(dir, PROJECTOR_WEIGHTS)
    const host = yield* readSafetensorsFile(weightsPath).pipe(
      Effect.mapError((e) => new ArtifactError({ path: e.file, message: e.message, cause: e }))
    )
    yield* Effect.try({
      try: () => checkHost(config, host),
      catch: (cause) => new ArtifactError({ path: weightsPath, message: describe(cause), cause })
    })
    return { config, file, host }
  })
