/**
 * Checking a stage's outputs against the shapes it declares (`ArtifactDecl`), before the runner publishes them:
 *
 * - `parquet`: the file's columns (names, types, nullability, in order) equal the declared `columns`;
 * - `json`: the document decodes with the declared `schema` (extra keys are errors, as when it was written);
 * - `dir` with a `document`: that file exists in the folder and decodes with its Schema;
 * - `arrow`: the file exists (its width is only known at run time).
 *
 * A mismatch fails the stage with a `StageError` naming the artifact, the file and the field, so a consumer never
 * reads a shape its producer did not promise.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { StageError } from "./errors.ts"
import { describeSchemaError } from "./schemaIssues.ts"
import type { ArtifactDecl, DocSchema } from "./stage.ts"
import { type Column, tableColumns } from "../formats/parquet/table.ts"
import { describeError } from "../errors/describe.ts"

const describeColumn = (c: Column): string => `${c.name}: ${c.type}${c.nullable === true ? " (nullable)" : ""}`

const checkDoc = (stage: string, artifact: string, schema: DocSchema, file: string): Effect.Effect<void, StageError> =>
  Effect.gen(function*() {
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(fs.readFileSync(file, "utf8")),
      catch: (cause) =>
        new StageError({ stage, file, message: `output ${artifact} is not readable JSON: ${describeError(cause)}`, cause })
    })
    yield* Schema.decodeUnknownEffect(schema)(json, { onExcessProperty: "error", errors: "all" }).pipe(
      Effect.mapError((cause) =>
        new StageError({ stage, file, message: `output ${artifact} does not match its declared schema: ${describeSchemaError(cause, { value: json })}`, cause })
      )
    )
  })

/** Fails unless the output written at `file` has the shape `decl` promises. */
export const checkOutput = (stage: string, decl: ArtifactDecl, file: string): Effect.Effect<void, StageError> =>
  Effect.gen(function*() {
    if (!fs.existsSync(file)) return yield* new StageError({ stage, file, message: `output ${decl.name} was not written` })
    switch (decl.kind) {
      case "json":
        return yield* checkDoc(stage, decl.name, decl.schema, file)
      case "dir": {
        if (decl.document === undefined) return
        const doc = path.join(file, decl.document.file)
        if (!fs.existsSync(doc)) return yield* new StageError({ stage, file: doc, message: `output ${decl.name} lacks ${decl.document.file}` })
        return yield* checkDoc(stage, decl.name, decl.document.schema, doc)
      }
      case "parquet": {
        const columns = yield* tableColumns(file).pipe(
          Effect.mapError((e) => new StageError({ stage, file, message: `output ${decl.name}: ${e.message}`, cause: e }))
        )
        const got = columns.map(describeColumn).join(", ")
        const want = decl.columns.map(describeColumn).join(", ")
        if (got !== want) {
          return yield* new StageError({ stage, file, message: `output ${decl.name} has columns [${got}], but its declaration says [${want}]` })
        }
        return
      }
      case "arrow":
        return
    }
  })
