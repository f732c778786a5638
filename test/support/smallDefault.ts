// The embedded default, smaller (`--set` pairs): every stage still runs, resumable ones checkpoint every few steps,
// a whole run takes well under a minute. For the crash soak and the whole-DAG cluster test.
export const SMALL_DEFAULT: ReadonlyArray<string> = [
  "split.train=96", "split.holdout=32", "split.evalN=16",
  "stageA.steps=24", "stageA.checkpointEvery=6", "stageA.evalEvery=12", "stageA.warmupSteps=4", "stageA.microBatch=16",
  "stageA.hardNegatives=16", "stageA.queueSize=64",
  "synth.train=32", "synth.val=8", "synth.evalPerBucket=2",
  "stageB.maxSteps=8", "stageB.evalEvery=4", "stageB.checkpointEvery=2", "stageB.valMaxRows=8",
  "finetune.maxSteps=6", "finetune.evalEvery=3", "finetune.checkpointEvery=2", "finetune.valMaxRows=8"
]
