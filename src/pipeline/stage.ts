/**
 * The stage contract. A stage is a typed value: what it reads, what it writes, which parameters it depends on,
 * a version, and an Effect that does the work. Stages never import each other; they meet only through named
 * artifacts, and the runner (`Runner.ts`) wires them into a DAG from these declarations.
 *
 * A stage's run:
 * - reads its inputs from `ctx.inputs[name]` (absolute paths of published, immutable artifact files),
 * - writes each declared output to `ctx.outputs[name]` (paths inside a private temporary directory: the runner
 *   digests and publishes them atomically only after `run` succeeds, so a crash never leaves a half artifact),
 * - may keep resumable state (checkpoints, finished batches) in `ctx.scratchDir`, which survives a crash and is
 *   keyed by the same content key, so a rerun of the same work resumes there,
 * - returns row counts per output and any counters worth recording in the manifest.
 */
import type { Effect, Schema } from "effect"
import type { StageError } from "./errors.ts"
import type { Column } from "../formats/parquet/table.ts"

/** How an artifact is stored. `parquet`: row table (ZSTD). `arrow`: dense float matrix (Arrow IPC, vectors as
 *  FixedSizeList<Float32>). `json`: a small JSON document. `dir`: a folder (e.g. a checkpoint). */
export type ArtifactKind = "parquet" | "arrow" | "json" | "dir"

/** A JSON document's Schema (decodable without services): what the file must hold. */
export type DocSchema = Schema.Codec<unknown, unknown>

interface DeclBase {
  /** Globally unique artifact name, e.g. `pairs`, `train`, `zF.train`. The DAG edge is producer → consumer. */
  readonly name: string
  /** File (or folder) name inside the stage's output directory, e.g. `pairs.parquet`. */
  readonly file: string
  readonly description: string
  /**
   * Human-facing copies in the run directory, made whenever the stage is published or found cached: `"file"` copies
   * the output to `<run-dir>/<file>`, `"contents"` copies a folder's files into `<run-dir>/`.
   */
  readonly runCopy?: "file" | "contents"
}

/**
 * A declared output. The producer owns its shape: a Parquet table declares its columns, a JSON document its Schema,
 * a folder the Schema of the document inside it that readers start from. The producer writes with them, every
 * consumer reads with the same ones (they live in a library both import, never in a stage), and the runner checks
 * each output against its declaration before publishing it.
 */
export type ArtifactDecl =
  | (DeclBase & { readonly kind: "parquet"; readonly columns: ReadonlyArray<Column> })
  | (DeclBase & { readonly kind: "json"; readonly schema: DocSchema })
  | (DeclBase & { readonly kind: "arrow" })
  | (DeclBase & {
    readonly kind: "dir"
    /** The folder's index document (`config.json`, `models.json`, …) and its Schema, when it has one. */
    readonly document?: { readonly file: string; readonly schema: DocSchema }
  })

/** A progress reporter for long work; quiet when stderr is not a TTY. */
export interface Progress {
  readonly advance: (n?: number) => void
  readonly setTotal: (total: number) => void
  readonly done: () => void
}

export interface StageContext<P> {
  /** The stage's own parameters (decoded with its `params` Schema, selected from the config). */
  readonly params: P
  /** Artifact name → absolute path of the published input file/folder. */
  readonly inputs: Readonly<Record<string, string>>
  /** Artifact name → absolute path the stage must write (inside a temporary directory). */
  readonly outputs: Readonly<Record<string, string>>
  /** Persistent, key-specific scratch directory for resumable work; removed once the stage is published. */
  readonly scratchDir: string
  /** The run directory (for human-facing files such as plots, written by the report stage). */
  readonly runDir: string
  /** Start a progress bar for `label` with an optional total. */
  readonly progress: (label: string, total?: number) => Progress
  /** One line of log output (to stderr, prefixed with the stage name). */
  readonly log: (message: string) => void
}

export interface StageOutcome {
  /** Row count of each row-shaped output (by artifact name). */
  readonly rows: Readonly<Record<string, number>>
  /** Counters recorded in the manifest (e.g. `{ quarantined: 12, byReason: {...} }`). */
  readonly metrics?: Readonly<Record<string, unknown>>
}

export interface Stage<P = unknown, R = never> {
  readonly name: string
  /**
   * The declaration's own module (`import.meta.url`). Every source file under `src/` that it reaches through
   * imports — its lazily imported work module and everything that imports, included — enters the cache key, so an
   * edit to any of them reruns the stage (`src/pipeline/sourceGraph.ts`). Without it only `version` tracks code.
   */
  readonly source?: string
  /** A manual override on top of the code digest: bump it to rerun the stage without editing its code. */
  readonly version: string
  readonly description: string
  /** Names of artifacts this stage reads (each produced by exactly one other stage). */
  readonly inputs: ReadonlyArray<string>
  /**
   * Artifacts this stage reads when they are available: with `--until`, or when their producer failed, the stage
   * still runs (after the selected stages) with these absent from `ctx.inputs`. For summaries such as the report.
   */
  readonly optionalInputs?: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<ArtifactDecl>
  /** Schema of the stage's parameters; the canonical JSON of the decoded value enters the cache key. */
  readonly params: Schema.Codec<P, unknown>
  /** Picks this stage's parameters out of the whole config (only these enter the key). */
  readonly selectParams: (config: unknown) => unknown
  /** Files or folders outside the cache whose *content* enters the key (a corpus file, a model snapshot). */
  readonly externalInputs?: (params: P) => ReadonlyArray<string>
  readonly run: (ctx: StageContext<P>) => Effect.Effect<StageOutcome, StageError, R>
  /**
   * Checks of what the stage needs from outside the cache (files, snapshot folders, endpoints), run by the
   * pre-flight of `llink run` and `llink doctor --config` before any stage, when this stage will run. Reads only
   * small files and headers, asks an endpoint one cheap question; never fails: it returns the problems.
   */
  readonly preflight?: (params: P, env: PreflightEnv) => Effect.Effect<ReadonlyArray<PreflightProblem>>
  /**
   * Present on stages whose heavy work splits into independent row ranges of their input tables (`shards.ts`).
   * The runner then calls `plan`, runs every shard that is not already published under the stage key (in this
   * process, or on cluster runners), and calls `merge`; `run` is not called. The merged outputs must not depend on
   * where or in which order shards ran.
   */
  readonly sharding?: StageSharding<P, R>
  /**
   * The stage computes for long on the JavaScript thread (model training, forward passes, tokenizing a corpus). When
   * the runner is given a child script (`RunOptions.childScript`), it runs such a stage in a child process
   * (`childStage.ts`), so two of them compute on two cores instead of taking turns on one.
   */
  readonly heavy?: boolean
  /**
   * About how many seconds the stage takes on the embedded default (absent: 1). The runner weighs the paths through
   * a stage by these when it hands out a freed run slot (`stagePriorities`), so a long baseline starts before a short
   * one that the same final stage waits for. A hint for the order only: no result depends on it.
   */
  readonly cost?: number
}

/** One problem a stage's pre-flight found: the config field to edit (dotted, from the config's root) and why. */
export interface PreflightProblem {
  readonly field: string
  readonly message: string
}

/** What a pre-flight check may read besides its parameters: the environment (endpoint keys, base URLs). */
export interface PreflightEnv {
  readonly env: Readonly<Record<string, string | undefined>>
}

/** Rows `[start, end)` of the input table `table` (an artifact name): the unit of work of a sharded stage. */
export interface ShardRange {
  readonly table: string
  readonly start: number
  readonly end: number
}

/** What a shard's run gets: the stage's parameters and inputs, its range, and a private folder to write into. */
export interface ShardContext<P> {
  readonly params: P
  readonly inputs: Readonly<Record<string, string>>
  readonly range: ShardRange
  /** The artifact store root, as every runner sees it (`<root>/requests` is the shared endpoint request cache). */
  readonly root: string
  /** A temporary folder: everything written here is digested and published as the shard's output. */
  readonly outDir: string
  /**
   * Resumable state of this shard (e.g. finished batches), kept across attempts of it, by any runner, until it is
   * published (`shardScratchDir`). Whatever is there must be checked before reuse: an attempt may have died mid-write.
   */
  readonly scratchDir: string
  readonly progress: (label: string, total?: number) => Progress
  readonly log: (message: string) => void
}

/** What a shard reports: rows computed and counters (kept in the shard's `_shard.json`). */
export interface ShardOutcome {
  readonly rows: number
  readonly metrics?: Readonly<Record<string, unknown>>
}

/** A published shard, as `merge` sees it. */
export interface FinishedShard {
  readonly range: ShardRange
  /** The shard's published folder (read-only). */
  readonly dir: string
  readonly rows: number
  readonly metrics: Readonly<Record<string, unknown>>
}

/** Declared with methods, so that a `Stage<P, R>` stays an `AnyStage<R>` (methods are checked bivariantly). */
export interface StageSharding<P, R> {
  /**
   * The shard's work waits on I/O (endpoint requests) rather than computing: a cluster runner runs it in its own
   * process. Otherwise (model code, whose long synchronous stretches would stall the runner's lease heartbeat) each
   * shard runs in a child process of the runner.
   */
  readonly inline?: boolean
  /**
   * The shards, in merge order. They must depend only on the parameters and the inputs' content (never on the
   * number of runners): a shard's range is part of its key, and the merge must reproduce the single-process bytes.
   */
  plan(ctx: { readonly params: P; readonly inputs: Readonly<Record<string, string>> }): Effect.Effect<
    ReadonlyArray<ShardRange>,
    StageError
  >
  runShard(ctx: ShardContext<P>): Effect.Effect<ShardOutcome, StageError, R>
  /** Writes the stage's declared outputs (`ctx.outputs`) from the finished shards, given in `plan` order. */
  merge(ctx: StageContext<P>, shards: ReadonlyArray<FinishedShard>): Effect.Effect<StageOutcome, StageError, R>
}

/** Helper that keeps the generic parameter when declaring a stage. */
export const defineStage = <P, R = never>(stage: Stage<P, R>): Stage<P, R> => stage
