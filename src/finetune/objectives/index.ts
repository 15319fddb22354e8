/**
 * The LM objectives by config name: tb (tb.ts), subtb (subtb.ts), softdqn and mdqn
 * (soft-q.ts). The one place that maps `objective:` to code.
 */
import { softTemperature } from '../../core/math.js';
import type { PolicyAdapter } from '../adapter.js';
import type { TrainConfig } from '../schema.js';
import type { LmObjective } from './objective.js';
import { TbObjective } from './tb.js';
import { SubTbObjective } from './subtb.js';
import { SoftQObjective } from './soft-q.js';

export type { LmObjective, ObjectiveStep } from './objective.js';

export function createObjective(cfg: TrainConfig, adapter: PolicyAdapter, dims: { d: number; V: number; stopId: number }): LmObjective {
  switch (cfg.objective) {
    case 'tb':
      return new TbObjective(adapter, cfg, dims);
    case 'subtb':
      return new SubTbObjective(adapter, cfg, dims);
    case 'softdqn':
      return new SoftQObjective(adapter, cfg, dims, false);
    case 'mdqn':
      return new SoftQObjective(adapter, cfg, dims, true);
  }
}

/** The sampling temperature τ of a trained run's policy, softmax(logits/τ): 1/(1 − α) for M-DQN (eq. (MQ)), 1 otherwise. */
export function samplingTemperature(cfg: TrainConfig): number {
  return cfg.objective === 'mdqn' ? softTemperature(cfg.dqn.munchausenAlpha) : 1;
}
