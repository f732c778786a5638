/**
 * A decoder pretraining worker thread (`DecoderWorkers`): the compact decoder and the examples from `workerData`;
 * for each part it is sent, the published weights into its variables, then the part's gradients, flat, back.
 */
import * as tf from "@tensorflow/tfjs"
import { parentPort, workerData } from "node:worker_threads"
import { initBackend } from "../backend/select.ts"
import { describeError } from "../errors/describe.ts"
import type { HostTensor } from "../models/safetensors.ts"
import { type DecoderWorkerData, type PartReply, type PartRequest, sizeOf } from "./decoderWorkers.ts"
import { compactDecoderOnVariables, microBatchLoss, VariableSet } from "./pretrain.ts"

const data = workerData as DecoderWorkerData
const port = parentPort!
const params = new Float32Array(data.params)

/** The published weights as host tensors (copies: the shared buffer changes between steps). */
const published = (): Map<string, HostTensor> => {
  const out = new Map<string, HostTensor>()
  let at = 0
  data.names.forEach((name, i) => {
    const n = sizeOf(data.shapes[i])
    out.set(name, { shape: [...data.shapes[i]], data: params.slice(at, at + n) })
    at += n
  })
  return out
}

await initBackend(data.backend)
const vars = new VariableSet()
const model = compactDecoderOnVariables(data.config, vars, published(), data.zeroCount)
const list = data.names.map((name) => vars.vars.get(name)!)

port.on("message", (req: PartRequest) => {
  try {
    const weights = published()
    list.forEach((v, i) => {
      const t = tf.tensor(weights.get(data.names[i])!.data, [...data.shapes[i]], "float32")
      v.assign(t)
      t.dispose()
    })
    const rows = req.indices.map((i) => data.examples[i])
    const { value, grads } = tf.variableGrads(() => microBatchLoss(model, rows, req.total), list)
    const loss = value.dataSync()[0]
    const flat = new Float32Array(data.params.byteLength / 4)
    let at = 0
    for (const v of list) {
      const g = grads[v.name].dataSync() as Float32Array
      flat.set(g, at)
      at += g.length
    }
    tf.dispose([value, ...Object.values(grads)])
    port.postMessage({ id: req.id, loss, grads: flat } satisfies PartReply, [flat.buffer])
  } catch (cause) {
    port.postMessage({ id: req.id, error: describeError(cause) } satisfies PartReply)
  }
})
port.postMessage({ ready: true } satisfies PartReply)
