import type { Env } from './env.js';
import type { Rng } from '../core/rng.js';
import { ScalarAdam } from '../core/adam.js';
import { sampleTrajectories, outputGradients, type ExploreOptions } from './rollout.js';
import { detailedBalance, subTrajectoryBalance, trajectoryBalance } from './losses.js';
import type { LossResult } from './trajectories.js';
import { isTwoStage, sampleTwoStage, twoStageGradients, twoStageUpdate, type PolicyNet } from './two-stage.js';

export type GfnObjective = 'tb' | 'db' | 'subtb';

export interface GfnTrainerOptions {
  objective: GfnObjective;
  batchSize: number;
  lr: number;
  logZLr: number;
  subtbLambda: number;
  learnedPB: boolean;
  explore: ExploreOptions;
}

export interface StepResult {
  loss: number;
  terminals: Int32Array; // [B × D] objects sampled this step
  logR: Float64Array;
  trajectories: number;
}

/**
 * One class for the three GFlowNet objectives: sample a batch (its forward pass is kept on
 * the network's tape), evaluate the pure loss, backpropagate through the same activations,
 * step Adam. TB's log Z is a separate scalar with its own learning rate (docs/design.md §5).
 * The policy is one network over all joint actions or the two-stage (slot, word) pair of
 * two-stage.ts; the losses see the same trajectory batch either way.
 */
export class GfnTrainer {
  readonly logZ = new Float64Array(1);
  private readonly logZOpt: ScalarAdam;

  constructor(
    private readonly env: Env,
    readonly net: PolicyNet,
    private readonly rng: Rng,
    readonly opts: GfnTrainerOptions,
  ) {
    this.logZOpt = new ScalarAdam(1, opts.logZLr);
  }

  step(): StepResult {
    const { env, net, opts } = this;
    if (isTwoStage(net)) {
      const ro = sampleTwoStage(net, opts.batchSize, this.rng, opts.explore, { record: true, learnedPB: opts.learnedPB });
      const g = this.loss(ro.batch);
      twoStageUpdate(net, ro, twoStageGradients(net, ro, g, { learnedPB: opts.learnedPB, useFlow: opts.objective !== 'tb' }), opts.lr);
      this.stepLogZ(g);
      return { loss: g.loss, terminals: ro.terminals, logR: ro.batch.logR, trajectories: opts.batchSize };
    }
    const ro = sampleTrajectories(env, net, opts.batchSize, this.rng, opts.explore, { record: true, learnedPB: opts.learnedPB });
    const g = this.loss(ro.batch);
    const dOut = outputGradients(env, ro, g, { learnedPB: opts.learnedPB, useFlow: opts.objective !== 'tb' });
    net.zeroGrad();
    net.backward(0, ro.numRows, dOut);
    net.adamStep(opts.lr);
    this.stepLogZ(g);
    return { loss: g.loss, terminals: ro.terminals, logR: ro.batch.logR, trajectories: opts.batchSize };
  }

  private stepLogZ(g: LossResult): void {
    if (this.opts.objective !== 'tb') return;
    let dZ = 0;
    for (const d of g.dLogZ) dZ += d;
    this.logZOpt.step(this.logZ, [dZ]);
  }

  private loss(batch: Parameters<typeof trajectoryBalance>[0]): LossResult {
    switch (this.opts.objective) {
      case 'tb':
        return trajectoryBalance(batch, new Float64Array(batch.size).fill(this.logZ[0]));
      case 'db':
        return detailedBalance(batch);
      case 'subtb':
        return subTrajectoryBalance(batch, this.opts.subtbLambda);
    }
  }
}
