/**
 * JSON document artifacts, written and read with the Schema their producer declares (`ArtifactDecl.schema`).
 *
 * - `writeJsonDoc(schema, file, value)`: checks `value` against the Schema first (extra keys are errors, so the
 *   Schema is the whole shape), then writes it as indented JSON with a final newline.
 * - `readJsonDoc(schema, file)`: parses and decodes with the same rule.
 * - `checkJsonDoc(schema, file)`: what the runner runs on every JSON output before publishing it.
 *
 * Failures are `ArtifactError`s naming the file and the offending field.
 */
import * as fs from "node:fs"
import { Effect, Schema } from "effect"
import { ArtifactError } from "../pipeline/errors.ts"
import { describeSchemaError } from "../pipeline/schemaIssues.ts"
import type { DocSchema } from "../pipeline/stage.ts"
import { describeError } from "../errors/describe.ts"

const STRICT = { onExcessProperty: "error", errors: "all" } as const

const shapeError = (file: string, what: string, value: unknown) => (cause: Schema.SchemaError) =>
  new ArtifactError({ path: file, message: `${what} does not match its declared schema: ${describeSchemaError(cause, { value })}`, cause })

/** Writes `value` (checked against `schema`) to `file` as JSON. */
export const writeJsonDoc = <S extends DocSchema>(schema: S, file: string, value: S["Type"]): Effect.Effect<void, ArtifactError> =>
  Schema.encodeUnknownEffect(schema)(value, STRICT).pipe(
    Effect.mapError(shapeError(file, "the document to write", value)),
    Effect.flatMap(() =>
      Effect.try({
        try: () => fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`),
        catch: (cause) => new ArtifactError({ path: file, message: `cannot write ${file}: ${String(cause)}`, cause })
      })
    )
  )

/** Reads and decodes `file` with `schema`. */
export const readJsonDoc = <S extends DocSchema>(schema: S, file: string): Effect.Effect<S["Type"], ArtifactError> =>
  Effect.try({
    try: (): unknown => JSON.parse(fs.readFileSync(file, "utf8")),
    catch: (cause) =>
      new ArtifactError({ path: file, message: `cannot read JSON: ${describeError(cause)}`, cause })
  }).pipe(
    Effect.flatMap((json) => Schema.decodeUnknownEffect(schema)(json, STRICT).pipe(Effect.mapError(shapeError(file, file, json)))),
    Effect.map((decoded) => decoded as S["Type"])
  )

/** Fails unless `file` holds a document of `schema`. */
export const checkJsonDoc = (schema: DocSchema, file: string): Effect.Effect<void, ArtifactError> =>
  Effect.asVoid(readJsonDoc(schema, file))
