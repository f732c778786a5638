/**
 * The `llink` command line: `llink run | status | dag | ...`. Run with `npx llink <command>` (bin/llink.mjs) or
 * `node src/cli/main.ts <command>`.
 *
 * Startup cost matters for a no-op `llink run` (everything cached): keep heavy modules (tfjs, model code) out of the
 * static import graph of this file — a stage or command that needs them should `await import(...)` inside its run.
 */
import { Effect } from "effect"
import { Command } from "effect/cli"
// Subpath imports: the package's barrel loads every Node module it wraps (HTTP, sockets, workers: ~0.5 s).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { TensorBackend } from "../backend/tensorBackend.ts"
import { stages } from "../nodes/index.ts"
import { toolInfo } from "../pipeline/manifest.ts"
import { clusterCommand, makeRunnerCommand } from "./cluster.ts"
import { compareCommand } from "./compare.ts"
import { makeDagCommand } from "./dag.ts"
import { makeDoctorCommand } from "./doctor.ts"
import { forwardCommand } from "./forward.ts"
import { initModelsCommand } from "./initModels.ts"
import { makeRunCommand } from "./run.ts"
import { makeStatusCommand } from "./status.ts"

// ---------------------------------------------------------------------------------------------------------------
// Subcommands. The pipeline commands are built over `stages` (src/nodes/index.ts).
// Model commands load tfjs and the model code inside their handlers only.
// ---------------------------------------------------------------------------------------------------------------
const subcommands = [
  makeRunCommand(stages),
  makeStatusCommand(stages),
  makeDagCommand(stages),
  makeRunnerCommand(stages),
  clusterCommand,
  compareCommand,
  initModelsCommand,
  forwardCommand,
  makeDoctorCommand(stages)
] as const

// Layers of the services the stages require (their Effect's R). The tensor backend starts on first use only, so a
// cached run or `llink status` never loads tfjs.
const stageLayers = TensorBackend.layer

export const llink = Command.make("llink").pipe(
  Command.withDescription("LLINK: languages as modalities, as a reproducible, content-addressed pipeline"),
  Command.withSubcommands(subcommands)
)

Command.run(llink, { version: toolInfo().llink }).pipe(
  Effect.provide(stageLayers),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
