/**
 * A table's row shape, declared once: each field names its column type, and from that come
 *
 * - `schema`: the Effect Schema of a row as the program sees it (its `Type` is the row type);
 * - `columns`: the column list the writer puts on disk (names in field order, types, nullability);
 * - `read`: a cell-by-cell reader for rows read back, which returns the typed row or a description of the first bad
 *   cell (cheaper than a Schema decode on the million-row paths of ingest and clean).
 *
 * Adding a column is one line in the shape; the three can never disagree.
 */
import { Schema } from "effect"
import type { Column, ColumnType, Row } from "./table.ts"

export interface Field<S extends Schema.Top> {
  readonly type: ColumnType
  readonly nullable: boolean
  readonly schema: S
  /** What a cell must hold, for error messages ("a string", `"content" or "qa"`). */
  readonly expected: string
  readonly accepts: (cell: unknown) => boolean
}

const field = <S extends Schema.Top>(type: ColumnType, schema: S, expected: string, accepts: (cell: unknown) => boolean): Field<S> => ({
  type,
  nullable: false,
  schema,
  expected,
  accepts
})

const isNumber = (v: unknown): boolean => typeof v === "number"

export const int32 = field("int32", Schema.Number, "a number", isNumber)
export const float32 = field("float32", Schema.Number, "a number", isNumber)
export const float64 = field("float64", Schema.Number, "a number", isNumber)
export const utf8 = field("utf8", Schema.String, "a string", (v) => typeof v === "string")
export const bool = field("bool", Schema.Boolean, "a boolean", (v) => typeof v === "boolean")

/** A utf8 column holding one of `values`. */
export const oneOf = <const L extends ReadonlyArray<string>>(values: L) =>
  field("utf8", Schema.Literals(values), values.map((v) => JSON.stringify(v)).join(" or "), (v) => typeof v === "string" && values.includes(v))

/** The same column, nullable (an absent cell reads as null). */
export const nullable = <S extends Schema.Top>(f: Field<S>): Field<Schema.NullOr<S>> => ({
  type: f.type,
  nullable: true,
  schema: Schema.NullOr(f.schema),
  expected: `${f.expected} or null`,
  accepts: (v) => v === null || v === undefined || f.accepts(v)
})

type Fields = Readonly<Record<string, Field<Schema.Top>>>
type SchemaFields<F extends Fields> = { readonly [K in keyof F]: F[K]["schema"] }

export interface TableShape<F extends Fields> {
  readonly fields: F
  readonly schema: Schema.Struct<SchemaFields<F>>
  readonly columns: ReadonlyArray<Column>
  /** The row, or what is wrong with it (prefixed with the row's label). */
  readonly read: (row: Row) => Schema.Struct<SchemaFields<F>>["Type"] | string
}

export interface ShapeOptions<F extends Fields> {
  /** How an error names the row (default: `row id <id>` when the row has a numeric `id`). */
  readonly label?: (row: Row) => string | undefined
  /** A rule across cells (e.g. two columns set together); a message when the row breaks it. */
  readonly check?: (row: Schema.Struct<SchemaFields<F>>["Type"]) => string | undefined
}

const defaultLabel = (row: Row): string | undefined => (typeof row["id"] === "number" ? `row id ${row["id"]}` : undefined)

export const tableShape = <const F extends Fields>(fields: F, options: ShapeOptions<F> = {}): TableShape<F> => {
  const entries = Object.entries(fields)
  const schemaFields: Record<string, Schema.Top> = {}
  for (const [name, f] of entries) schemaFields[name] = f.schema
  const schema = Schema.Struct(schemaFields as SchemaFields<F>)
  const columns: ReadonlyArray<Column> = entries.map(([name, f]) => (f.nullable ? { name, type: f.type, nullable: true } : { name, type: f.type }))
  const label = options.label ?? defaultLabel
  type T = Schema.Struct<SchemaFields<F>>["Type"]
  const read = (row: Row): T | string => {
    const out: Record<string, unknown> = {}
    for (const [name, f] of entries) {
      const v = row[name]
      if (!f.accepts(v)) {
        const where = label(row)
        return `${where === undefined ? "" : `${where}: `}column "${name}" should be ${f.expected}, got ${v === undefined ? "nothing" : JSON.stringify(v)}`
      }
      out[name] = v === undefined ? null : v
    }
    const typed = out as T
    const broken = options.check?.(typed)
    if (broken !== undefined) {
      const where = label(row)
      return `${where === undefined ? "" : `${where}: `}${broken}`
    }
    return typed
  }
  return { fields, schema, columns, read }
}
