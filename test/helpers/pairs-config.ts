import { validate } from '../../src/finetune/config-loader.js';
import { trainConfigSchema, type TrainConfig } from '../../src/finetune/schema.js';

/**
 * An enumerable task on a tiny random model (341 Z over 4 tokens, |Z| ≤ 4, gold Z "cab"):
 * a training config whose fields `over` replaces (top level).
 */
export const pairsConfig = (modelDir: string, over: Record<string, unknown> = {}): TrainConfig =>
  validate(
    {
      objective: 'subtb',
      seed: 0,
      model: modelDir,
      task: { kind: 'pairs', pairs: [{ x: 'The cat', y: ' sat.', z: 'cab' }] },
      z: { maxLength: 4, allowed: ['a', 'b', 'c', 'd'] },
      reward: { prior: 'allowed', likelihoodWeight: 4 },
      head: { whitenRollouts: 16 },
      optim: { lr: 0.01 },
      train: { steps: 60, batchSize: 16 },
      ...over,
    },
    trainConfigSchema,
    'test',
  );
