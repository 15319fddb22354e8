import { tf } from '../core/backend.js';
import type { PolicyAdapter } from './adapter.js';
import { emptyBatch, type TrajectoryBatch } from '../gfn/trajectories.js';
import type { ScoredRow } from './score.js';

/**
 * The decision nodes (states s_t where the policy acted) of scored rows, stacked into
 * tensors for one adapter forward: what TB, modified SubTB, SFT and REINFORCE compute
 * log P_F from, and the bridge to the pure trajectory losses of src/gfn.
 */

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
  const h = new Float32Array(N * d),
    base = new Float32Array(N * V),
    neg = new Float32Array(N * V);
  const chosen = new Float32Array(N * V),
    stop = new Float32Array(N * V);
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

/** Masked log P_F over the vocabulary (stop = EOS) at every node, from the head. */
export function nodeLogPolicy(adapter: PolicyAdapter, n: NodeTensors): tf.Tensor2D {
  return tf.logSoftmax(tf.add(adapter.logits(n.hidden, n.base, n.rows), n.negMask)) as tf.Tensor2D;
}

/** Row-wise pick through a one-hot (wasm has no gather gradient, docs/design.md §3). */
export function pick(logp: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(logp, oneHot), 1) as tf.Tensor1D;
}

/** The longest row, in decision nodes (T of the trajectory batch). */
export function maxNodes(n: NodeTensors): number {
  return Math.max(...n.rows.map((r) => r.nodes.length));
}

/**
 * The padded trajectory batch of the rows (src/gfn/trajectories.ts): per edge log P_F =
 * `logPF` of the node (flat, as stacked), log P_B = 0 (the token tree), the sink's log F =
 * log R(Z). Inner log F stays 0 (TB ignores it; modified SubTB fills it in).
 */
export function trajectoryBatch(n: NodeTensors, logPF: ArrayLike<number>): TrajectoryBatch {
  const T = maxNodes(n);
  const batch = emptyBatch(n.rows.length, T);
  n.rows.forEach((r, b) => {
    const k0 = n.first[b],
      len = r.nodes.length;
    batch.lengths[b] = len;
    batch.logR[b] = r.logR;
    for (let i = 0; i < len; i++) batch.logPF[b * T + i] = logPF[k0 + i];
    batch.logF[b * (T + 1) + len] = r.logR;
  });
  return batch;
}

/** A per-edge gradient of the padded batch [B × T] (or per node [B × (T + 1)] with stride T + 1), gathered back to the stacked nodes, times `sign`. */
export function edgesToNodes(n: NodeTensors, perEdge: Float64Array, stride: number, sign = 1): Float32Array {
  const out = new Float32Array(n.N);
  n.rows.forEach((r, b) => {
    for (let i = 0; i < r.nodes.length; i++) out[n.first[b] + i] = sign * perEdge[b * stride + i];
  });
  return out;
}
