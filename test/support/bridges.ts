/**
 * Peer-bridge folders for tests: a `langbridge` / `mindmerger` folder (weights + `bridge.json`) as the peer stages
 * write it, holding a random bridge trained with the given models artifact's added tokens, and a switched-off one.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { writeJsonDoc } from "../../src/artifacts/json.ts"
import type { ResolvedModels } from "../../src/artifacts/models.ts"
import { bridgeFromHost, type BridgeConfig, BRIDGE_FILE, disposeBridge, initBridgeHost, saveBridge } from "../../src/models/bridge.ts"
import { makeRng } from "../../src/models/rng.ts"
import type { HostTensor } from "../../src/models/safetensors.ts"
import { BRIDGE_CONFIG, BridgeDoc } from "../../src/schemas/bridge.ts"
import type { PeerName } from "../../src/schemas/sft.ts"

/** Every parameter random (end vectors included, so they are checked), scaled like small embeddings. */
export const randomBridgeHost = (c: BridgeConfig, seed: number): Map<string, HostTensor> => {
  const host = initBridgeHost(c, seed)
  const rng = makeRng(seed + 1)
  for (const [name, t] of host) host.set(name, { shape: t.shape, data: Float32Array.from(t.data, () => rng.normal() * 0.3) })
  return host
}

/** Writes a trained peer's folder: the bridge `host` and a document recording `models`' added tokens and `cut`. */
export const writeBridgeDir = async (
  dir: string,
  c: BridgeConfig,
  host: Map<string, HostTensor>,
  models: ResolvedModels,
  cut: { readonly maxChars: number; readonly maxTokens: number }
): Promise<string> => {
  fs.mkdirSync(dir, { recursive: true })
  const m = bridgeFromHost(c, host, { trainable: false })
  await Effect.runPromise(saveBridge(path.join(dir, BRIDGE_FILE), m))
  disposeBridge(m)
  const doc: BridgeDoc = {
    format: "llink-bridge",
    version: 1,
    kind: c.kind,
    enabled: true,
    trained: {
      bridge: { ...c },
      addedTokens: [...models.doc.addedTokens],
      embeddingInit: models.doc.embeddingInit,
      embeddingSeed: models.doc.embeddingSeed,
      prompt: { instruction: "input", appendEos: true, maxSeqLen: 768 },
      encoder: cut,
      steps: { task: 0 }
    }
  }
  await Effect.runPromise(writeJsonDoc(BridgeDoc, path.join(dir, BRIDGE_CONFIG), doc))
  return dir
}

/** A switched-off peer's folder: only `enabled: false`. */
export const writeBridgeOffDir = async (dir: string, kind: PeerName): Promise<string> => {
  fs.mkdirSync(dir, { recursive: true })
  await Effect.runPromise(writeJsonDoc(BridgeDoc, path.join(dir, BRIDGE_CONFIG), { format: "llink-bridge", version: 1, kind, enabled: false, trained: null }))
  return dir
}
