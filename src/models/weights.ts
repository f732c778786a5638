/**
 * Small helpers shared by the architecture files for turning a Hugging Face checkpoint into tfjs tensors:
 * listing the tensor names a snapshot holds (without reading any data), checking names and shapes up front with
 * errors that name the tensor and the checkpoint directory, and uploading host tensors.
 */
import * as tf from "@tensorflow/tfjs"
import { readFloat32 } from "../backend/read.ts"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { CheckpointError } from "./errors.ts"
import type { HostTensor } from "./safetensors.ts"
import { INDEX_FILE, readSafetensorsHeader, SINGLE_FILE } from "./safetensors.ts"
import { describeError } from "../errors/describe.ts"

/** The names of every tensor in a snapshot folder (`model.safetensors` header, or the shard index's weight_map). */
export const checkpointTensorNames = (dir: string): Effect.Effect<ReadonlySet<string>, CheckpointError> =>
  Effect.gen(function*() {
    const single = path.join(dir, SINGLE_FILE)
    if (fs.existsSync(single)) {
      const header = yield* readSafetensorsHeader(single)
      return new Set(header.entries.map((e) => e.name))
    }
    const indexPath = path.join(dir, INDEX_FILE)
    if (!fs.existsSync(indexPath)) {
      return yield* new CheckpointError({
        file: dir,
        message: `no checkpoint in ${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} exists`
      })
    }
    const parsed = yield* Effect.try({
      try: (): unknown => JSON.parse(fs.readFileSync(indexPath, "utf8")),
      catch: (e) =>
        new CheckpointError({ file: indexPath, message: `cannot read the shard index: ${describeError(e)}` })
    })
    const map = parsed !== null && typeof parsed === "object" ? (parsed as { weight_map?: unknown }).weight_map : undefined
    if (map === null || typeof map !== "object" || Array.isArray(map)) {
      return yield* new CheckpointError({ file: indexPath, message: "the shard index has no weight_map object" })
    }
    return new Set(Object.keys(map))
  })

/** An expected tensor: its name and shape. */
export type TensorSpec = readonly [name: string, shape: ReadonlyArray<number>]

/**
 * Checks that every spec is in `weights` with its shape; fails with a `CheckpointError` naming the first missing
 * or mis-shaped tensor and `source`.
 */
export const checkTensors = (
  weights: ReadonlyMap<string, HostTensor>,
  specs: ReadonlyArray<TensorSpec>,
  source: string
): Effect.Effect<void, CheckpointError> =>
  Effect.gen(function*() {
    for (const [name, shape] of specs) {
      const t = weights.get(name)
      if (t === undefined) {
        return yield* new CheckpointError({ file: source, tensor: name, message: `checkpoint ${source} has no tensor ${name}` })
      }
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        return yield* new CheckpointError({
          file: source,
          tensor: name,
          message: `tensor ${name} in ${source} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`
        })
      }
      if (t.data.length !== shape.reduce((a, b) => a * b, 1)) {
        return yield* new CheckpointError({
          file: source,
          tensor: name,
          message: `tensor ${name} in ${source} holds ${t.data.length} values for shape [${shape.join(", ")}]`
        })
      }
    }
  })

/** Uploads a host tensor (float32). The tfjs tensor may share `data`'s buffer: do not mutate it afterwards. */
export const toTensor = (t: HostTensor): tf.Tensor => tf.tensor(t.data, [...t.shape], "float32")

/** Downloads a tensor into a host tensor (a copy; async, as every backend can). */
export const toHost = async (t: tf.Tensor): Promise<HostTensor> => ({ shape: [...t.shape], data: await readFloat32(t) })
