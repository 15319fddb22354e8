import type { Env } from './env.js';
import type { MlpSpec } from '../nn/mlp.js';

/**
 * How a benchmark policy's output row is laid out: forward logits [0, A), backward logits
 * [A, A + Ab) (unused when P_B is fixed uniform), log-flow at A + Ab.
 */
export interface OutputLayout {
  nActions: number;
  nBack: number;
  flow: number; // column of log F
  width: number;
}

export function outputLayout(env: Env): OutputLayout {
  return {
    nActions: env.nActions,
    nBack: env.nBackActions,
    flow: env.nActions + env.nBackActions,
    width: env.nActions + env.nBackActions + 1,
  };
}

export function policySpec(env: Env, hidden: number[]): MlpSpec {
  return { inputDim: env.inputDim, nnz: env.nnz, hidden, outputDim: outputLayout(env).width };
}
