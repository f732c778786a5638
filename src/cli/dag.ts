/**
 * `llink dag`: prints the pipeline DAG as a Mermaid flowchart (`graph TD`, edges labelled with artifact names), ready
 * to paste into Markdown.
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { buildDag, toMermaid, type AnyStage } from "../pipeline/dag.ts"
import { reportCommandError } from "./kit.ts"

/** The `dag` subcommand over `stages`. */
export const makeDagCommand = <R>(stages: ReadonlyArray<AnyStage<R>>) =>
  Command.make("dag", {}, () =>
    Effect.gen(function*() {
      const dag = yield* buildDag(stages)
      yield* Console.log(toMermaid(dag))
    }).pipe(reportCommandError)).pipe(Command.withDescription("Print the stage DAG as Mermaid"))
