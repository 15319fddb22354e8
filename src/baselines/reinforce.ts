/**
 * Reward-maximization baseline: REINFORCE with a batch-mean baseline on the same head,
 * maximizing E_{Z~π}[log R(Z)] (log R as in the GFlowNet runs, eq. (LM)), optionally with a
 * KL penalty to the base LM (β · (log π(Z) − log π_0(Z)) subtracted from the reward, π_0 =
 * the base LM under the same constraints). The maximizer of E[log R] is a point mass on
 * argmax R, so without the penalty the policy collapses onto a few rationales per question
 * — the behaviour GFlowNets (sampling ∝ R) avoid.
 *
 *   ∇ = −(1/B) Σ_b (r_b − mean_b' r_b') ∇ log π(Z_b),  r_b = log R(Z_b) − β (log π − log π_0)(Z_b)
 */
import { tf } from '../core/backend.js';
import type { StepMetrics } from '../finetune/trainer.js';
import type { FineTuneSetup } from '../finetune/setup.js';
import { disposeNodes, nodeLogPolicy, pick, stackNodes, type NodeTensors } from '../finetune/nodes.js';
import type { PolicyAdapter } from '../finetune/adapter.js';

/** −(1/B) Σ_b A_b Σ_t log π(a_t | s_t) and its gradient (adv: A of each node's sequence). */
export function reinforceGrads(
  adapter: PolicyAdapter,
  nodes: NodeTensors,
  adv: Float32Array,
  vars: tf.Variable[],
): { loss: number; grads: Map<tf.Variable, tf.Tensor> } {
  const a = tf.tensor1d(adv);
  try {
    const { value, grads } = tf.variableGrads(
      () => tf.neg(tf.div(tf.sum(tf.mul(pick(nodeLogPolicy(adapter, nodes), nodes.chosen), a)), nodes.rows.length)) as tf.Scalar,
      vars,
    );
    const loss = value.dataSync()[0];
    value.dispose();
    return { loss, grads: new Map(vars.map((v) => [v, grads[v.name]])) };
  } finally {
    a.dispose();
  }
}

export class ReinforceBaseline {
  constructor(
    readonly trainer: FineTuneSetup,
    readonly klCoef = 0,
  ) {}

  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const t = this.trainer,
      cfg = t.cfg,
      B = cfg.train.batchSize;
    const exs = Array.from({ length: B }, () => t.examples[t.rng.int(t.examples.length)]);
    const rows = await t.sampleOnPolicy(exs);
    const nodes = stackNodes(rows, t.session.hiddenSize, t.session.vocabSize, t.constraints.stopId);
    const vars = t.adapter.policyVariables();
    const perRow = (lp: Float32Array | Int32Array | Uint8Array) =>
      rows.map((r, b) => {
        let s = 0;
        for (let i = 0; i < r.nodes.length; i++) s += lp[nodes.first[b] + i];
        return s;
      });
    let loss: number, gradNorm: number;
    try {
      let reward = rows.map((r) => r.logR);
      if (this.klCoef > 0) {
        const lpPi = perRow(tf.tidy(() => pick(nodeLogPolicy(t.adapter, nodes), nodes.chosen).dataSync()));
        const lp0 = perRow(tf.tidy(() => pick(tf.logSoftmax(tf.add(nodes.base, nodes.negMask)) as tf.Tensor2D, nodes.chosen).dataSync()));
        reward = reward.map((r, b) => r - this.klCoef * (lpPi[b] - lp0[b]));
      }
      const mean = reward.reduce((s, v) => s + v, 0) / B;
      const adv = new Float32Array(nodes.N);
      rows.forEach((r, b) => adv.fill(reward[b] - mean, nodes.first[b], nodes.first[b] + r.nodes.length));
      const g = reinforceGrads(t.adapter, nodes, adv, vars);
      loss = g.loss;
      gradNorm = t.optim.step(g.grads, t.lrScale(), cfg.optim.clip);
      tf.dispose([...g.grads.values()]);
    } finally {
      disposeNodes(nodes);
    }
    return t.finishStep('REINFORCE', loss, gradNorm, rows, t0);
  }
}
