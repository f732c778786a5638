// The embedded default, smaller (`--set` pairs): every stage still runs, resumable ones checkpoint every few steps,
// a whole run takes well under a minute. For the crash soak and the whole-DAG cluster test.
export const SMALL_DEFAULT: ReadonlyArray<string> = [
  "split.train=96", "split.holdout=32", "split.evalN=16",
  "stageA.steps=24", "stageA.checkpointEvery=6", "stageA.evalEvery=12", "stageA.warmupSteps=4", "stageA.microBatch=16",
  "stageA.hardNegatives=16", "stageA.queueSize=64",
  "synth.train=32", "synth.val=8", "synth.evalPerBucket=2",
  "stageB.maxSteps=8", "stageB.evalEvery=4", "stageB.checkpointEvery=2", "stageB.valMaxRows=8",
  "finetune.maxSteps=6", "finetune.evalEvery=3", "finetune.checkpointEvery=2", "finetune.valMaxRows=8",
  // The test-size models without pretraining, and the SFT batches and peer budgets the default had before it became
  // the miniature.
  "models.tinySize=test", "models.pretrain.decoderSteps=0", "models.pretrain.encoderSteps=0",
  "stageB.microBatch=8", "finetune.microBatch=8",
  "langbridge.maxSteps=20", "langbridge.evalEvery=10", "langbridge.checkpointEvery=10", "langbridge.microBatch=8",
  "mindmerger.maxSteps=15", "mindmerger.evalEvery=15", "mindmerger.checkpointEvery=10", "mindmerger.microBatch=8"
]

// The embedded default as it was before it became the pretrained miniature (test-size random models on the 600-line
// sample, 300 Stage A steps with its learning rate, temperatures and batch): for the backend tests that compare `llink run --until retrieval` across backends,
// which check arithmetic, not learning.
export const testSizeDefault = (repoRoot: string): ReadonlyArray<string> => [
  `corpus.path=${repoRoot}/datasets/km-en-sample/km-en.sample.tsv`,
  "split.train=400", "split.holdout=120", "split.evalN=100",
  "models.tinySize=test", "models.pretrain.decoderSteps=0", "models.pretrain.encoderSteps=0",
  "stageA.steps=300", "stageA.warmupSteps=30", "stageA.checkpointEvery=100", "stageA.evalEvery=50",
  "stageA.microBatch=32", "stageA.lr=0.001", "stageA.tauStart=0.17", "stageA.tauEnd=0.08"
]
