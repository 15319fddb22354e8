import { tf } from '../../core/backend.js';
import { subTrajectoryBalance } from '../../gfn/losses.js';
import type { LossResult, TrajectoryBatch } from '../../gfn/trajectories.js';
import type { PolicyAdapter } from '../adapter.js';
import { disposeNodes, edgesToNodes, maxNodes, nodeLogPolicy, pick, stackNodes, trajectoryBatch } from '../nodes.js';
import type { ScoredRow } from '../score.js';
import type { TrainConfig } from '../schema.js';
import type { LmObjective, ObjectiveStep } from './objective.js';

/**
 * Modified SubTB (docs/design.md eq. (LM)): no flow network; log F(s_j) :=
 * log R(z_1..j ⊤) − log P_F(⊤ | s_j) from the prefix rewards, defined only where stop is
 * allowed (the flow mask), then SubTB(λ), eq. (S1). The gradient of log F(s_j) reaches
 * the stop log-probability with the opposite sign; one gradient tape, one adapter forward.
 */
export class SubTbObjective implements LmObjective {
  readonly temperature = 1;
  readonly policyLr = null;
  readonly prefixRewards = true;

  constructor(
    private readonly adapter: PolicyAdapter,
    private readonly cfg: TrainConfig,
    private readonly dims: { d: number; V: number; stopId: number },
  ) {}

  paramGroups() {
    return [];
  }

  loss(rows: ScoredRow[], o: { vars: tf.Variable[] }): ObjectiveStep {
    const { d, V, stopId } = this.dims;
    const n = stackNodes(rows, d, V, stopId);
    try {
      const T = maxNodes(n);
      let result: LossResult | undefined;
      let batch: TrajectoryBatch | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const logp = nodeLogPolicy(this.adapter, n);
        const lpChosen = pick(logp, n.chosen);
        const lpStop = pick(logp, n.stop);
        const ps = lpStop.dataSync();
        batch = trajectoryBatch(n, lpChosen.dataSync());
        batch.flowMask = new Uint8Array(rows.length * (T + 1));
        rows.forEach((r, b) => {
          // log F(s_j) := log R(z_1..j ⊤) − log P_F(⊤|s_j) exists only where stop is allowed
          for (let i = 0; i < r.nodes.length; i++) {
            if (!r.mask[i * V + stopId]) continue;
            batch!.logF[b * (T + 1) + i] = r.prefixLogR![i] - ps[n.first[b] + i];
            batch!.flowMask![b * (T + 1) + i] = 1;
          }
        });
        result = subTrajectoryBalance(batch, this.cfg.subtb.lambda);
        const gPF = edgesToNodes(n, result.dLogPF, T);
        const gStop = edgesToNodes(n, result.dLogF, T + 1, -1);
        return tf.add(tf.sum(tf.mul(lpChosen, tf.tensor1d(gPF))), tf.sum(tf.mul(lpStop, tf.tensor1d(gStop)))) as tf.Scalar;
      }, o.vars);
      value.dispose();
      // modified SubTB's estimate of log Z: log F(s_0), known only when Z may be empty
      let logZ = 0;
      rows.forEach((_, b) => (logZ += batch!.flowMask![b * (T + 1)] ? batch!.logF[b * (T + 1)] : NaN));
      return { loss: result!.loss, grads: new Map(o.vars.map((v) => [v, grads[v.name]])), logZ: logZ / rows.length };
    } finally {
      disposeNodes(n);
    }
  }

  afterStep(): void {}
  save(): void {}
  restore(): void {}
}
