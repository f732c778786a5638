/**
 * A pre-flight check of a Hugging Face snapshot folder, reading only small files and safetensors headers: a
 * config.json of the expected architecture, a tokenizer.json, and a checkpoint whose headers name every tensor the
 * loader will read (with or without XLM-R's `roberta.` prefix). Each problem is one line; none means the loaders
 * (`loadEncoder`, `loadDecoder`) will find what they need.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { loadModelConfig } from "./hfconfig.ts"
import { llamaTensorSpecs } from "./llama.ts"
import { checkpointTensorNames } from "./weights.ts"
import { xlmrTensorNames } from "./xlmr.ts"

export type SnapshotKind = "xlmr" | "llama"

const KIND_NAME: Record<SnapshotKind, string> = { xlmr: "an XLM-RoBERTa encoder", llama: "a Llama decoder" }

/** The problems of `dir` as a snapshot of `want` (empty: fine). */
export const snapshotProblems = Effect.fn("Snapshot.problems")(function*(dir: string, want: SnapshotKind) {
  if (!fs.existsSync(dir)) return [`${dir}: folder not found`]
  if (!fs.statSync(dir).isDirectory()) return [`${dir}: not a folder (a Hugging Face snapshot folder is expected)`]
  const problems: Array<string> = []
  if (!fs.existsSync(path.join(dir, "tokenizer.json"))) problems.push(`${dir}: no tokenizer.json`)
  const loaded = yield* Effect.result(loadModelConfig(dir))
  if (loaded._tag === "Failure") return [...problems, `${loaded.failure.file}: ${loaded.failure.message}`]
  const mc = loaded.success
  if (mc.kind !== want) return [...problems, `${dir}: config.json describes ${KIND_NAME[mc.kind]}, not ${KIND_NAME[want]}`]
  const present = yield* Effect.result(checkpointTensorNames(dir))
  if (present._tag === "Failure") return [...problems, `${present.failure.file}: ${present.failure.message}`]
  const names = mc.kind === "llama" ? llamaTensorSpecs(mc.config).map(([n]) => n) : xlmrTensorNames(mc.config)
  const prefix = mc.kind === "xlmr" && present.success.has("roberta.embeddings.word_embeddings.weight") ? "roberta." : ""
  const missing = names.filter((n) => !present.success.has(prefix + n))
  if (missing.length > 0) {
    const shown = missing.slice(0, 3).map((n) => prefix + n).join(", ")
    problems.push(`${dir}: the checkpoint lacks ${missing.length} tensor${missing.length === 1 ? "" : "s"} config.json implies (${shown}${missing.length > 3 ? ", …" : ""})`)
  }
  return problems
})
