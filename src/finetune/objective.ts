import { tf } from '../core/backend.js';
import { emptyBatch, type LossResult, type TrajectoryBatch } from '../gfn/trajectories.js';
import { subTrajectoryBalance, trajectoryBalance } from '../gfn/losses.js';
import type { ScoredRow } from './score.js';

export interface NodeTensors {
  rows: ScoredRow[];
  N: number;
  V: number;
  stopId: number;
  first: Int32Array; // node index of node 0 of each row
  hidden: tf.Tensor2D;
  base: tf.Tensor2D;
  negMask: tf.Tensor2D; // 0 where allowed, −1e9 elsewhere
  chosen: tf.Tensor2D; // one-hot of the action taken at each node
  stop: tf.Tensor2D; // one-hot of stop (EOS) at each node
}

/** Stacks the decision nodes of all rows into tensors (caller disposes with disposeNodes). */
export function stackNodes(rows: ScoredRow[], d: number, V: number, stopId: number): NodeTensors {
  const N = rows.reduce((s, r) => s + r.nodes.length, 0);
  const h = new Float32Array(N * d), base = new Float32Array(N * V), neg = new Float32Array(N * V);
  const chosen = new Float32Array(N * V), stop = new Float32Array(N * V);
  const first = new Int32Array(rows.length);
  let k = 0;
  rows.forEach((r, b) => {
    first[b] = k;
    for (let i = 0; i < r.nodes.length; i++, k++) {
      h.set(r.hidden.subarray(i * d, i * d + d), k * d);
      base.set(r.baseLogits.subarray(i * V, i * V + V), k * V);
      for (let v = 0; v < V; v++) neg[k * V + v] = r.mask[i * V + v] ? 0 : -1e9;
      chosen[k * V + r.actions[i]] = 1;
      stop[k * V + stopId] = 1;
    }
  });
  return {
    rows,
    N,
    V,
    stopId,
    first,
    hidden: tf.tensor2d(h, [N, d]),
    base: tf.tensor2d(base, [N, V]),
    negMask: tf.tensor2d(neg, [N, V]),
    chosen: tf.tensor2d(chosen, [N, V]),
    stop: tf.tensor2d(stop, [N, V]),
  };
}

export function disposeNodes(n: NodeTensors): void {
  tf.dispose([n.hidden, n.base, n.negMask, n.chosen, n.stop]);
}

/**
 * What the objectives read the policy through: logits at the stacked nodes (from the frozen
 * hidden state and base logits for the head; LoRA ignores both and runs the adapted model,
 * trainer.ts) and log F / log Z(X) from a hidden state. LmHead is one.
 */
export interface NodePolicy {
  logits(h: tf.Tensor2D, base: tf.Tensor2D): tf.Tensor2D;
  logFlow(h: tf.Tensor2D): tf.Tensor1D;
}

/** Masked log P_F over the vocabulary (stop = EOS) at every node, from the head. */
export function nodeLogPolicy(head: NodePolicy, n: NodeTensors): tf.Tensor2D {
  return tf.logSoftmax(tf.add(head.logits(n.hidden, n.base), n.negMask)) as tf.Tensor2D;
}

/** Row-wise pick through a one-hot (wasm has no gather gradient, docs/design.md §3). */
export function pick(logp: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(logp, oneHot), 1) as tf.Tensor1D;
}

export interface GfnLossOut {
  loss: number;
  grads: Map<tf.Variable, tf.Tensor>;
  logZ: Float64Array; // per row (TB), log F(s0) estimate otherwise
  trajectories: TrajectoryBatch;
}

/**
 * TB with a learned log Z(X) (eq. (TB)) or modified SubTB (eq. (LM): log F(s_j) :=
 * log R(z_1..j ⊤) − log P_F(⊤ | s_j), then eq. (S1)) through the LoRA-style head. The pure
 * loss functions of src/gfn give dL/d log P_F and dL/d log F; the head's gradient comes from
 * the surrogate Σ g·log P_F, evaluated inside one gradient tape (one head forward).
 */
export function gfnLoss(head: NodePolicy, n: NodeTensors, objective: 'tb' | 'subtb', lambda: number, vars: tf.Variable[]): GfnLossOut {
  const B = n.rows.length;
  const T = Math.max(...n.rows.map((r) => r.nodes.length));
  let result: LossResult | undefined;
  let batch: TrajectoryBatch | undefined;
  const logZ = new Float64Array(B);
  const { value, grads } = tf.variableGrads(() => {
    const logp = nodeLogPolicy(head, n);
    const lpChosen = pick(logp, n.chosen);
    const lpStop = pick(logp, n.stop);
    const firstIdx = tf.tensor1d(n.first, 'int32');
    const logZt = objective === 'tb' ? head.logFlow(tf.gather(n.hidden, firstIdx) as tf.Tensor2D) : null;
    const pf = lpChosen.dataSync(), ps = lpStop.dataSync();
    if (logZt) logZ.set(logZt.dataSync());
    batch = emptyBatch(B, T);
    if (objective === 'subtb') batch.flowMask = new Uint8Array(B * (T + 1));
    n.rows.forEach((r, b) => {
      const k0 = n.first[b], len = r.nodes.length;
      batch!.lengths[b] = len;
      batch!.logR[b] = r.logR;
      for (let i = 0; i < len; i++) {
        batch!.logPF[b * T + i] = pf[k0 + i];
        // log F(s_j) := log R(z_1..j ⊤) − log P_F(⊤|s_j) exists only where stop is allowed
        if (objective === 'subtb' && r.mask[i * n.V + n.stopId]) {
          batch!.logF[b * (T + 1) + i] = r.prefixLogR![i] - ps[k0 + i];
          batch!.flowMask![b * (T + 1) + i] = 1;
        }
      }
      batch!.logF[b * (T + 1) + len] = r.logR;
    });
    result = objective === 'tb' ? trajectoryBalance(batch, logZ) : subTrajectoryBalance(batch, lambda);
    const gPF = new Float32Array(n.N), gStop = new Float32Array(n.N);
    n.rows.forEach((r, b) => {
      for (let i = 0; i < r.nodes.length; i++) {
        gPF[n.first[b] + i] = result!.dLogPF[b * T + i];
        // log F(s_j) = log R_j − log P_F(⊤|s_j): the flow gradient reaches the stop log-prob
        if (objective === 'subtb') gStop[n.first[b] + i] = -result!.dLogF[b * (T + 1) + i];
      }
    });
    let surrogate = tf.add(tf.sum(tf.mul(lpChosen, tf.tensor1d(gPF))), tf.sum(tf.mul(lpStop, tf.tensor1d(gStop))));
    if (logZt) surrogate = tf.add(surrogate, tf.sum(tf.mul(logZt, tf.tensor1d(Float32Array.from(result.dLogZ)))));
    return surrogate as tf.Scalar;
  }, vars);
  value.dispose();
  if (objective === 'subtb') {
    // modified SubTB's estimate of log Z: log F(s_0), known only when Z may be empty
    n.rows.forEach((_, b) => (logZ[b] = batch!.flowMask![b * (T + 1)] ? batch!.logF[b * (T + 1)] : NaN));
  }
  return { loss: result!.loss, grads: new Map(vars.map((v) => [v, grads[v.name]])), logZ, trajectories: batch! };
}
