// The child script of the toy pipeline (test/pipeline/childStage.test.ts): serves one toy stage request, as
// src/cli/stageChild.ts does for the real stages. `TOY_FAIL_DOUBLE` makes `double` fail with that message.
import { Effect } from "effect"
import { readStdinText } from "../../src/pipeline/childProcess.ts"
import { serveStageRequest } from "../../src/pipeline/childStage.ts"
import { makeToyStages } from "./toy.ts"

const stages = makeToyStages({ calls: {}, failDouble: process.env.TOY_FAIL_DOUBLE })
const reply = await Effect.runPromise(Effect.flatMap(readStdinText, (text) => serveStageRequest(stages, text)))
process.stdout.write(`${reply}\n`)
