/** Public API of the language-model engine (see src/lm/README.md). */
export { type GptConfig, type GptWeights, initWeights, paramCount } from './gpt.js';
export { buildGptOnnx, gptOnnxBytes, type WriteOptions } from './onnx-writer.js';
export { writeModelFolder, readConfig, readOnnx, graphIo, type ModelFacts } from './folder.js';
export { resolveModelDir } from './resolve.js';
export { LmSession, type KvCache, type ForwardInput, type ForwardOutput, type SessionOptions } from './session.js';
export { sample, sequences, type SampleOptions, type SampleResult, type PolicyHook } from './sampler.js';
export { scoreBatch, prefixRewards, naivePrefixRewards, statesOf, type PrefixRewards, type StatesOf } from './scorer.js';
export { LmHead, headConfig, type HeadConfig, type HeadManifest } from './head.js';
export { exposeHiddenState, findLmHeadInput } from './surgery.js';
export { CharTokenizer, loadHfTokenizer, type Tokenizer } from './tokenizer.js';
export { packLeft, logSoftmaxAt, type Packed } from './batch.js';
export { referenceForward, toTfParams, fromTfParams } from './reference.js';
export { inspectModel, formatInspect } from './inspect.js';
