import { tf } from '../../core/backend.js';
import { logSumExp } from '../../core/math.js';
import { trajectoryBalance } from '../../gfn/losses.js';
import type { LossResult } from '../../gfn/trajectories.js';
import type { PolicyAdapter } from '../adapter.js';
import { disposeNodes, edgesToNodes, maxNodes, nodeLogPolicy, pick, stackNodes, trajectoryBatch, type NodeTensors } from '../nodes.js';
import type { ScoredRow } from '../score.js';
import type { TrainConfig } from '../schema.js';
import type { LmObjective, LossOptions, ObjectiveStep } from './objective.js';

/**
 * Trajectory balance with a learned log Z(X) (docs/design.md eq. (TB)): log Z(X) is the
 * adapter's log-flow head at s_0, trained at its own learning rate and started at the first
 * batch's importance-sampling estimate of log Z (docs/design.md §4). The pure loss of src/gfn gives
 * dL/d log P_F and dL/d log Z; the adapter's gradient comes from the surrogate
 * Σ g·log P_F + Σ g_Z·log Z(X), evaluated inside one gradient tape (one adapter forward).
 */
export class TbObjective implements LmObjective {
  readonly temperature = 1;
  readonly policyLr = null;
  readonly prefixRewards = false;

  constructor(
    private readonly adapter: PolicyAdapter,
    private readonly cfg: TrainConfig,
    private readonly dims: { d: number; V: number; stopId: number },
  ) {}

  paramGroups() {
    return [{ vars: this.adapter.flowVariables(), lr: this.cfg.optim.logZLr }];
  }

  loss(rows: ScoredRow[], o: LossOptions): ObjectiveStep {
    const { d, V, stopId } = this.dims;
    const n = stackNodes(rows, d, V, stopId);
    try {
      if (o.step === 0 && o.update === 0) this.initLogZ(n, o);
      const T = maxNodes(n);
      const logZ = new Float64Array(rows.length);
      let result: LossResult | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const lpChosen = pick(nodeLogPolicy(this.adapter, n), n.chosen);
        const logZt = this.adapter.logFlow(tf.gather(n.hidden, tf.tensor1d(n.first, 'int32')) as tf.Tensor2D);
        logZ.set(logZt.dataSync());
        result = trajectoryBalance(trajectoryBatch(n, lpChosen.dataSync()), logZ);
        const gPF = edgesToNodes(n, result.dLogPF, T);
        return tf.add(
          tf.sum(tf.mul(lpChosen, tf.tensor1d(gPF))),
          tf.sum(tf.mul(logZt, tf.tensor1d(Float32Array.from(result.dLogZ)))),
        ) as tf.Scalar;
      }, o.vars);
      value.dispose();
      return {
        loss: result!.loss,
        grads: new Map(o.vars.map((v) => [v, grads[v.name]])),
        logZ: logZ.reduce((s, v) => s + v, 0) / rows.length,
      };
    } finally {
      disposeNodes(n);
    }
  }

  /**
   * log Z(X) starts at the first batch's importance-sampling estimate (docs/design.md §4): per
   * question X, log mean exp(log R − Σ log P_F) over its on-policy rows, then the mean over the
   * questions (one row per X makes it the plain ELBO mean, many rows of one X a near-exact
   * estimate). The plain mean over rows of one X sits 35–55 nats below log Z under exploration,
   * a start LoRA's TB did not recover from on one posterior-check seed; tempered and replayed
   * rows are left out because Σ log P_F is not their sampling density (a gold rationale of low
   * policy probability would count as a huge weight).
   */
  private initLogZ(n: NodeTensors, o: LossOptions): void {
    const lp = tf.tidy(() => pick(nodeLogPolicy(this.adapter, n), n.chosen).dataSync());
    const logW = n.rows.map((r, b) => {
      let sum = 0;
      for (let i = 0; i < r.nodes.length; i++) sum += lp[n.first[b] + i];
      return r.logR - sum;
    });
    this.adapter.setFlowBias(initialLogZ(logW, o.rowKey, o.onPolicy));
  }

  afterStep(): void {}
  save(): void {}
  restore(): void {}
}

/**
 * The first batch's estimate of log Z(X), shared over questions: per question, log mean exp of
 * the importance weights log w = log R − Σ log P_F of its on-policy rows (all rows when none is
 * on-policy), then the mean over questions.
 */
export function initialLogZ(logW: readonly number[], rowKey: readonly string[], onPolicy: readonly boolean[]): number {
  const use = onPolicy.some((v) => v) ? onPolicy : onPolicy.map(() => true);
  const byX = new Map<string, number[]>();
  logW.forEach((w, b) => {
    if (!use[b]) return;
    const ws = byX.get(rowKey[b]) ?? [];
    ws.push(w);
    byX.set(rowKey[b], ws);
  });
  let s = 0;
  for (const ws of byX.values()) s += logSumExp(ws) - Math.log(ws.length);
  return s / byX.size;
}
