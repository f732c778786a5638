/**
 * The `langbridge` and `mindmerger` artifacts: a folder with `bridge.safetensors` (the bridge's parameters, stable
 * names, src/models/bridge.ts) and `config.json` (src/schemas/bridge.ts). A switched-off peer's folder holds only
 * the document (`enabled: false`).
 */
import { Effect } from "effect"
import * as path from "node:path"
import type { BridgeConfig } from "../models/bridge.ts"
import { BRIDGE_FILE, loadBridgeHost } from "../models/bridge.ts"
import type { HostTensor } from "../models/safetensors.ts"
import { ArtifactError } from "../pipeline/errors.ts"
import { readJsonDoc } from "./json.ts"
import { BRIDGE_CONFIG, BridgeDoc } from "../schemas/bridge.ts"

export { BRIDGE_CONFIG, BRIDGE_FORMAT, BridgeDoc } from "../schemas/bridge.ts"
export { BRIDGE_FILE }

export interface BridgeDir {
  readonly doc: BridgeDoc
  /** Null when the peer is switched off. */
  readonly trained: { readonly config: BridgeConfig; readonly host: Map<string, HostTensor> } | null
}

/** Reads a `langbridge` / `mindmerger` folder. */
export const readBridgeDir = (dir: string): Effect.Effect<BridgeDir, ArtifactError> =>
  Effect.gen(function*() {
    const doc = yield* readJsonDoc(BridgeDoc, path.join(dir, BRIDGE_CONFIG))
    if (doc.trained === null) return { doc, trained: null }
    const config: BridgeConfig = { ...doc.trained.bridge }
    const host = yield* loadBridgeHost(path.join(dir, BRIDGE_FILE), config).pipe(
      Effect.mapError((e) => new ArtifactError({ path: e.file, message: e.message, cause: e }))
    )
    return { doc, trained: { config, host } }
  })
