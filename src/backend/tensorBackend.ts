/**
 * The `TensorBackend` service: the tensorflow.js backend the model stages compute on.
 *
 * Guarantees:
 * - Lazy: building the layer loads nothing; the first `ready` imports tfjs and selects and starts the backend
 *   (`initBackend` in `./select.ts`: `LLINK_BACKEND` when set, else the best available). A fully cached run or
 *   `llink status` never loads tfjs.
 * - Once: every later `ready` of the same layer returns the same backend (tfjs's backend is process-wide).
 * - Honest: a forced backend that cannot run is a `BackendUnavailableError`, never a silent fallback; a backend
 *   much slower than this machine could have (wasm or stock cpu, no OpenBLAS) says so once, in one line with the
 *   command that fixes it (`notice`, default: stderr).
 *
 * Layers: `TensorBackend.layer` (what the CLI provides: `LLINK_BACKEND` or auto), `TensorBackend.layerFor(choice)`
 * (tests, benches and commands that want one backend). Stages call `startBackend(stage)`, which maps the failure to
 * the stage's `StageError`.
 */
import type * as tfNamespace from "@tensorflow/tfjs"
import { Context, Effect, Layer } from "effect"
import { StageError } from "../pipeline/errors.ts"
import { BackendUnavailableError } from "./errors.ts"
import type { BackendChoice, BackendInfo } from "./select.ts"
import { describeError } from "../errors/describe.ts"

/** A started backend: what was chosen and why, and the tfjs namespace switched to it. */
export interface StartedBackend extends BackendInfo {
  readonly tf: typeof tfNamespace
}

export interface TensorBackendShape {
  /** Starts the backend on first use (later calls return the same one). */
  readonly ready: Effect.Effect<StartedBackend, BackendUnavailableError>
}

const toBackendError = (requested: string, cause: unknown): BackendUnavailableError =>
  cause instanceof BackendUnavailableError
    ? cause
    : new BackendUnavailableError({
      requested,
      message: `backend selection failed: ${describeError(cause)}`,
      cause
    })

export class TensorBackend extends Context.Service<TensorBackend, TensorBackendShape>()("llink/TensorBackend") {
  /** One explicit choice (`auto` or undefined: `LLINK_BACKEND`, else the best available). */
  static readonly layerFor = (
    choice?: BackendChoice | "auto",
    options?: { readonly notice?: (line: string) => void }
  ): Layer.Layer<TensorBackend> =>
    Layer.sync(TensorBackend, () => {
      let started: Promise<StartedBackend> | undefined
      const notice = options?.notice ?? ((line: string) => process.stderr.write(`notice: ${line}\n`))
      const start = async (): Promise<StartedBackend> => {
        const service = await import("./select.ts")
        const info = await service.initBackend(choice)
        if (info.notice !== undefined) notice(info.notice)
        return { ...info, tf: service.tf }
      }
      return {
        ready: Effect.tryPromise({
          try: () => (started ??= start()),
          catch: (cause) => toBackendError(choice ?? process.env.LLINK_BACKEND ?? "auto", cause)
        })
      }
    })

  /** `LLINK_BACKEND` when set, else automatic selection. */
  static readonly layer: Layer.Layer<TensorBackend> = TensorBackend.layerFor()
}

/** The started backend for a stage's work; a backend that cannot start fails the stage. */
export const startBackend = (stage: string): Effect.Effect<StartedBackend, StageError, TensorBackend> =>
  TensorBackend.use((backend) => backend.ready).pipe(
    Effect.mapError((e) => new StageError({ stage, message: `no tensor backend could start: ${e.message}`, cause: e }))
  )
