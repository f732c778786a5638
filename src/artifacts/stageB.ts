/**
 * The `stageB` and `finetune` artifacts, and how later stages (generation, retrieval) load them.
 *
 * `stageB` is a folder:
 *   slots.safetensors   ForeignScale scalar, gated adapter, expander (stable names, see src/models/slots.ts)
 *   adapter/            the LoRA adapter in the PEFT layout (adapter_model.safetensors + adapter_config.json)
 *   config.json         { format: "llink-stageB", version: 1, slots, slotPolicy?, slotTokens, addedTokens,
 *                         embeddingInit, embeddingSeed, slotConfig, lora, prompt: { instruction, appendEos, maxSeqLen,
 *                         numbers? }, steps } (slotPolicy only under a length policy, numbers only when "copy")
 * `finetune` is a folder: the LoRA adapter files at its root plus `llink-finetune.json`
 *   { format: "llink-finetune", version: 1, addedTokens, embeddingInit, embeddingSeed, lora,
 *     prompt: { instruction, appendEos, maxSeqLen, maxForeignChars }, steps }.
 *
 * To rebuild the trained Stage B model: `loadDecoder(decoderDir, { addedTokens, embeddingInit, embeddingSeed,
 * lora: { dir: <stageB>/adapter } })`, `slotsFromHost(slotConfig, host)` with the host tensors of
 * `readStageBDir`, the frozen projector, and prompts from `slotPrompt` (src/prompts/slots.ts).
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { SlotConfig } from "../models/slots.ts"
import { loadSlotHost, SLOTS_FILE } from "../models/slots.ts"
import type { HostTensor } from "../models/safetensors.ts"
import { ArtifactError } from "../pipeline/errors.ts"
import { lengthChooser, type SlotChooser, type SlotPolicy } from "../prompts/slotPolicy.ts"
import { loadTokenizer } from "../models/tokenizer.ts"
import type { CheckpointError } from "../models/errors.ts"

export { STAGEB_FORMAT, FINETUNE_FORMAT, STAGEB_CONFIG, STAGEB_ADAPTER, FINETUNE_CONFIG, StageBDoc, FinetuneDoc } from "../schemas/stageB.ts"
import { STAGEB_CONFIG, STAGEB_ADAPTER, FINETUNE_CONFIG, StageBDoc, FinetuneDoc } from "../schemas/stageB.ts"
import { describeError } from "../errors/describe.ts"
export { SLOTS_FILE }

const describe = (cause: unknown): string => describeError(cause)

/** Writes a JSON document (pretty, trailing newline). */
export const writeJson = (file: string, value: unknown): Effect.Effect<void, ArtifactError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`)
    },
    catch: (cause) => new ArtifactError({ path: file, message: `cannot write: ${describe(cause)}`, cause })
  })

const readDoc = <S extends Schema.Top>(file: string, schema: S, what: string): Effect.Effect<S["Type"], ArtifactError, S["DecodingServices"]> =>
  Effect.gen(function*() {
    const raw = yield* Effect.try({
      try: (): unknown => JSON.parse(fs.readFileSync(file, "utf8")),
      catch: (cause) => new ArtifactError({ path: file, message: `cannot read the ${what}: ${describe(cause)}`, cause })
    })
    return yield* Schema.decodeUnknownEffect(schema)(raw).pipe(
      Effect.mapError((cause) => new ArtifactError({ path: file, message: `not a ${what}: ${cause.message}`, cause }))
    )
  })

export interface StageBDir {
  readonly doc: StageBDoc
  readonly slotConfig: SlotConfig
  /** Slot module parameters (checked against `slotConfig`). */
  readonly slotHost: Map<string, HostTensor>
  /** The PEFT adapter folder, for `loadDecoder(…, { lora: { dir } })`. */
  readonly adapterDir: string
}

/** Reads the `config.json` of a `stageB` folder alone (no weights). */
export const readStageBDoc = (dir: string): Effect.Effect<StageBDoc, ArtifactError> =>
  readDoc(path.join(dir, STAGEB_CONFIG), StageBDoc, "Stage B config")

/** Reads a `stageB` folder. */
export const readStageBDir = (dir: string): Effect.Effect<StageBDir, ArtifactError> =>
  Effect.gen(function*() {
    const doc = yield* readStageBDoc(dir)
    const slotConfig: SlotConfig = { ...doc.slotConfig }
    const file = path.join(dir, SLOTS_FILE)
    const slotHost = yield* loadSlotHost(file, slotConfig).pipe(
      Effect.mapError((e) => new ArtifactError({ path: e.file, message: e.message, cause: e }))
    )
    const adapterDir = path.join(dir, STAGEB_ADAPTER)
    if (!fs.existsSync(adapterDir)) return yield* new ArtifactError({ path: adapterDir, message: "the Stage B folder has no adapter/" })
    return { doc, slotConfig, slotHost, adapterDir }
  })

/** Reads the `llink-finetune.json` of a `finetune` folder (the adapter files are the folder itself). */
export const readFinetuneDir = (dir: string): Effect.Effect<FinetuneDoc, ArtifactError> =>
  readDoc(path.join(dir, FINETUNE_CONFIG), FinetuneDoc, "fine-tune config")

/**
 * The per-example slot count of a policy: undefined (every example uses all K) unless it is `byLength`, whose count
 * comes from the encoder tokenizer in `encoderDir` (special tokens excluded).
 */
export const slotChooserOf = (policy: SlotPolicy | undefined, encoderDir: string): Effect.Effect<SlotChooser | undefined, CheckpointError> =>
  policy === undefined || !("byLength" in policy)
    ? Effect.succeed(undefined)
    : Effect.map(loadTokenizer(encoderDir), (tok) => lengthChooser(policy.byLength, (text) => tok.encode(text, { addSpecialTokens: false }).length))
