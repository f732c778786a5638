/**
 * The pipeline DAG, built from the stages' declarations alone: an edge `producer → consumer` for every artifact a
 * stage reads, labelled with the artifact's name (an effect `Graph`).
 *
 * `buildDag` rejects, with tagged errors: two stages with one name, two producers of one artifact, an input no stage
 * produces, and cycles (naming the stages on the cycle). The result carries a topological order (Kahn's algorithm,
 * `Graph.topo`) and the lookups the runner and `llink status` need (producer of an artifact, ancestors, ...).
 */
import { Effect, Graph, Option } from "effect"
import type { Schema } from "effect"
import type { StageError } from "./errors.ts"
import { DagCycleError, DuplicateProducerError, MissingProducerError, UnknownStageError } from "./errors.ts"
import type { ArtifactDecl, PreflightEnv, PreflightProblem, Stage, StageContext, StageOutcome } from "./stage.ts"

/**
 * A stage whose parameter type is erased, so stages with different parameter types fit in one list. `run` and
 * `externalInputs` are declared as methods, which TypeScript checks bivariantly: any `Stage<P, R>` is an
 * `AnyStage<R>`, and the runner only ever calls them with the value the stage's own `params` Schema decoded.
 */
export interface AnyStage<R = never> extends Omit<Stage<unknown, R>, "run" | "externalInputs" | "params"> {
  readonly params: Schema.Codec<unknown, unknown>
  run(ctx: StageContext<unknown>): Effect.Effect<StageOutcome, StageError, R>
  externalInputs?(params: unknown): ReadonlyArray<string>
  preflight?(params: unknown, env: PreflightEnv): Effect.Effect<ReadonlyArray<PreflightProblem>>
}

/** A stage's required inputs, then its optional ones (both are DAG edges). */
export const allInputs = (stage: Pick<Stage, "inputs" | "optionalInputs">): ReadonlyArray<string> => [
  ...stage.inputs,
  ...(stage.optionalInputs ?? [])
]

/** Errors `buildDag` can fail with. */
export type DagError = DagCycleError | MissingProducerError | DuplicateProducerError

/** An output artifact together with the stage that produces it. */
export interface ProducedArtifact {
  readonly stage: string
  readonly decl: ArtifactDecl
  /** Name of its link in `<run-dir>/artifacts/`: the file name, prefixed with `<stage>.` if two stages share it. */
  readonly linkName: string
}

export interface Dag<R = never> {
  /** Stage name → node data is the stage name; edge data is the artifact name. */
  readonly graph: Graph.DirectedGraph<string, string>
  /** Stages in topological order (every producer before its consumers). */
  readonly order: ReadonlyArray<string>
  readonly stage: (name: string) => AnyStage<R>
  readonly has: (name: string) => boolean
  /** Artifact name → its producer and declaration. */
  readonly artifacts: ReadonlyMap<string, ProducedArtifact>
  /** Direct upstream stages (producers of the stage's inputs, optional ones too), in input order, no duplicates. */
  readonly upstream: (name: string) => ReadonlyArray<string>
  /** Producers of the stage's required inputs only. */
  readonly requiredUpstream: (name: string) => ReadonlyArray<string>
  /** All stages the named stage transitively depends on (not itself), in topological order. */
  readonly ancestors: (name: string) => ReadonlyArray<string>
  /** All stages that transitively depend on the named stage (not itself), in topological order. */
  readonly descendants: (name: string) => ReadonlyArray<string>
}

/** Builds and checks the DAG of `stages`. */
export const buildDag = <R>(stages: ReadonlyArray<AnyStage<R>>): Effect.Effect<Dag<R>, DagError> =>
  Effect.gen(function*() {
    const byName = new Map<string, AnyStage<R>>()
    for (const stage of stages) {
      if (byName.has(stage.name)) {
        return yield* new DuplicateProducerError({
          artifact: "",
          stages: [stage.name, stage.name],
          message: `two stages are named "${stage.name}"`
        })
      }
      byName.set(stage.name, stage)
    }

    const fileCount = new Map<string, number>()
    for (const stage of stages) for (const o of stage.outputs) fileCount.set(o.file, (fileCount.get(o.file) ?? 0) + 1)
    const artifacts = new Map<string, ProducedArtifact>()
    for (const stage of stages) {
      for (const decl of stage.outputs) {
        const existing = artifacts.get(decl.name)
        if (existing !== undefined) {
          return yield* new DuplicateProducerError({
            artifact: decl.name,
            stages: [existing.stage, stage.name],
            message: `artifact "${decl.name}" is produced by two stages: ${existing.stage} and ${stage.name}`
          })
        }
        const linkName = (fileCount.get(decl.file) ?? 0) > 1 ? `${stage.name}.${decl.file}` : decl.file
        artifacts.set(decl.name, { stage: stage.name, decl, linkName })
      }
    }
    for (const stage of stages) {
      for (const input of allInputs(stage)) {
        if (!artifacts.has(input)) {
          return yield* new MissingProducerError({
            artifact: input,
            consumer: stage.name,
            message: `stage ${stage.name} reads artifact "${input}", which no stage produces`
          })
        }
      }
    }

    const index = new Map<string, Graph.NodeIndex>()
    const graph = Graph.directed<string, string>((g) => {
      for (const stage of stages) index.set(stage.name, Graph.addNode(g, stage.name))
      for (const stage of stages) {
        for (const input of allInputs(stage)) {
          const producer = artifacts.get(input)
          if (producer !== undefined) Graph.addEdge(g, index.get(producer.stage)!, index.get(stage.name)!, input)
        }
      }
    })

    const cycle = Graph.findCycle(graph)
    if (Option.isSome(cycle) || !Graph.isAcyclic(graph)) {
      const names = Option.isSome(cycle)
        ? cycle.value.path.map((i) => Graph.getNode(graph, i).pipe(Option.getOrElse(() => `#${i}`)))
        : []
      return yield* new DagCycleError({
        stages: names,
        message: `the stages form a cycle: ${names.length > 0 ? names.join(" → ") : "(unknown)"}`
      })
    }

    const order = Array.from(Graph.values(Graph.topo(graph)))
    const position = new Map(order.map((name, i) => [name, i] as const))
    const byPosition = (a: string, b: string) => position.get(a)! - position.get(b)!

    const upstreamOf = new Map<string, ReadonlyArray<string>>()
    const requiredOf = new Map<string, ReadonlyArray<string>>()
    const producersOf = (inputs: ReadonlyArray<string>): Array<string> => {
      const ups: Array<string> = []
      for (const input of inputs) {
        const producer = artifacts.get(input)!.stage
        if (!ups.includes(producer)) ups.push(producer)
      }
      return ups
    }
    for (const stage of stages) {
      upstreamOf.set(stage.name, producersOf(allInputs(stage)))
      requiredOf.set(stage.name, producersOf(stage.inputs))
    }
    const reach = (start: string, direction: "incoming" | "outgoing"): ReadonlyArray<string> => {
      const found = new Set<string>()
      const stack = [start]
      while (stack.length > 0) {
        const node = index.get(stack.pop()!)!
        const next = direction === "incoming" ? Graph.predecessors(graph, node) : Graph.successors(graph, node)
        for (const i of next) {
          const name = Graph.getNode(graph, i).pipe(Option.getOrThrow)
          if (!found.has(name)) {
            found.add(name)
            stack.push(name)
          }
        }
      }
      return Array.from(found).sort(byPosition)
    }

    const dag: Dag<R> = {
      graph,
      order,
      stage: (name) => {
        const stage = byName.get(name)
        if (stage === undefined) throw new Error(`Dag.stage: unknown stage ${name}`)
        return stage
      },
      has: (name) => byName.has(name),
      artifacts,
      upstream: (name) => upstreamOf.get(name) ?? [],
      requiredUpstream: (name) => requiredOf.get(name) ?? [],
      ancestors: (name) => reach(name, "incoming"),
      descendants: (name) => reach(name, "outgoing")
    }
    return dag
  }).pipe(Effect.withSpan("Dag.build"))

/** Fails with `UnknownStageError` unless `name` is a stage of the DAG (`flag` names the option, for the message). */
export const requireStage = <R>(dag: Dag<R>, name: string, flag: string): Effect.Effect<string, UnknownStageError> =>
  dag.has(name)
    ? Effect.succeed(name)
    : Effect.fail(
      new UnknownStageError({
        stage: name,
        known: [...dag.order],
        message: `${flag} ${name}: no such stage (stages: ${dag.order.join(", ")})`
      })
    )

/** A Mermaid identifier for a stage name (letters, digits and `_` kept; anything else becomes `_`). */
const mermaidId = (name: string): string => `${/^[A-Za-z_]/.test(name) ? "" : "s_"}${name.replace(/[^\w]/g, "_")}`

/**
 * The DAG as a Mermaid flowchart (`graph TD`): one node per stage, one edge per producer → consumer pair, labelled
 * with the artifact names it carries.
 */
export const toMermaid = <R>(dag: Dag<R>): string => {
  const lines = ["graph TD"]
  for (const name of dag.order) lines.push(`  ${mermaidId(name)}["${name.replace(/"/g, "#quot;")}"]`)
  for (const consumer of dag.order) {
    const labels = new Map<string, Array<string>>()
    for (const input of allInputs(dag.stage(consumer))) {
      const producer = dag.artifacts.get(input)!.stage
      const list = labels.get(producer) ?? []
      if (!list.includes(input)) list.push(input)
      labels.set(producer, list)
    }
    for (const [producer, names] of labels) {
      lines.push(`  ${mermaidId(producer)} -->|"${names.join(", ").replace(/"/g, "#quot;")}"| ${mermaidId(consumer)}`)
    }
  }
  return lines.join("\n")
}
