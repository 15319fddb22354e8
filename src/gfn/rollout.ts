import type { Env } from './env.js';
import type { SparseMlp } from '../nn/mlp.js';
import type { Rng } from '../core/rng.js';
import { logSoftmaxAt, maskedLogSoftmax } from '../core/math.js';
import { emptyBatch, type LossResult, type TrajectoryBatch } from './trajectories.js';
import { outputLayout, type OutputLayout } from './policy-net.js';

export interface ExploreOptions {
  /** Probability of a uniformly random allowed action (ε-uniform exploration). */
  epsilon: number;
  /** Sampling temperature applied to the logits (1 = on-policy). */
  temperature: number;
}

/**
 * B trajectories sampled in lockstep: at every step the states of all unfinished
 * trajectories go through the network in one batched forward. When `record` is true the
 * activations stay on the network's tape (one row per visited state), so the loss's
 * backward pass reuses this forward pass instead of recomputing it.
 */
export interface Rollout {
  batch: TrajectoryBatch; // logPF, logPB, logF (nodes 0..n−1 from the flow head; node n = log R), logR
  layout: OutputLayout;
  actions: Int32Array; // [B × T]
  rows: Int32Array; // [B × T]: tape row of node t
  nodeStates: Int32Array; // [B × T × D]: state of node t
  out: Float32Array; // [rows × width]: network outputs per tape row
  fmask: Uint8Array; // [rows × A]
  bmask: Uint8Array; // [rows × Ab]
  numRows: number;
  terminals: Int32Array; // [B × D]: the objects x
}

export function sampleTrajectories(
  env: Env,
  net: SparseMlp,
  B: number,
  rng: Rng,
  explore: ExploreOptions,
  opts: { record: boolean; learnedPB: boolean },
): Rollout {
  const T = env.maxSteps,
    D = env.stateDim,
    A = env.nActions,
    Ab = env.nBackActions;
  const layout = outputLayout(env);
  const W = layout.width;
  const batch = emptyBatch(B, T);
  const maxRows = B * T;
  const actions = new Int32Array(B * T).fill(-1);
  const rows = new Int32Array(B * T).fill(-1);
  const nodeStates = new Int32Array(B * T * D);
  const out = new Float32Array(maxRows * W);
  const fmask = new Uint8Array(maxRows * A);
  const bmask = new Uint8Array(maxRows * Ab);
  const terminals = new Int32Array(B * D);

  let active = Int32Array.from({ length: B }, (_, i) => i);
  let cur = env.initialStates(B);
  const idx = new Int32Array(B * env.nnz);
  const stepOut = new Float32Array(B * W);
  const lp = new Float64Array(A);
  const probs = new Float64Array(A);
  const moveActions = new Int32Array(B);
  let numRows = 0;
  if (opts.record) net.resetTape();

  for (let k = 0; k < T && active.length > 0; k++) {
    const n = active.length;
    env.encode(cur, n, idx);
    env.forwardMask(cur, n, fmask.subarray(numRows * A));
    env.backwardMask(cur, n, bmask.subarray(numRows * Ab));
    const row0 = net.forward(idx, n, stepOut, opts.record);
    if (opts.record && row0 !== numRows) throw new Error('policy tape out of sync with the rollout');
    out.set(stepOut.subarray(0, n * W), numRows * W);

    let nMoves = 0;
    const stillActive: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = active[i],
        r = numRows + i;
      const logits = stepOut.subarray(i * W, i * W + A);
      const mask = fmask.subarray(r * A, r * A + A);
      maskedLogSoftmax(logits, 0, A, mask, 0, lp);
      const a = chooseAction(logits, mask, lp, probs, explore, rng);
      const e = b * T + k;
      batch.logPF[e] = lp[a];
      batch.logF[b * (T + 1) + k] = stepOut[i * W + layout.flow];
      actions[e] = a;
      rows[e] = r;
      nodeStates.set(cur.subarray(i * D, i * D + D), e * D);
      if (a === env.exitAction) {
        batch.lengths[b] = k + 1;
        terminals.set(cur.subarray(i * D, i * D + D), b * D);
      } else {
        // compact the still-running trajectories to the front of `cur`
        cur.copyWithin(nMoves * D, i * D, i * D + D);
        moveActions[nMoves++] = a;
        stillActive.push(b);
      }
    }
    numRows += n;
    env.step(cur, moveActions, nMoves, cur);
    active = Int32Array.from(stillActive);
  }
  if (active.length > 0) throw new Error(`trajectories did not exit within env.maxSteps = ${T}`);

  env.logReward(terminals, B, batch.logR);
  let maxLen = 0;
  for (let b = 0; b < B; b++) {
    const n = batch.lengths[b];
    maxLen = Math.max(maxLen, n);
    batch.logF[b * (T + 1) + n] = batch.logR[b];
    // edge t−1 enters node t (t = 1..n−1); the exit edge n−1 has log P_B = 0
    for (let t = 1; t < n; t++) {
      const r = rows[b * T + t];
      const ba = env.backwardActionOf(actions[b * T + t - 1]);
      batch.logPB[b * T + t - 1] = opts.learnedPB
        ? logSoftmaxAt(out, r * W + A, Ab, ba, bmask, r * Ab)
        : -Math.log(countOnes(bmask, r * Ab, Ab));
    }
  }
  return { batch, layout, actions, rows, nodeStates, out, fmask, bmask, numRows, terminals };
}

/**
 * dL/d(network outputs) for every tape row, from a loss's gradient with respect to
 * log P_F, log P_B and log F: softmax backward on the forward (and learned backward)
 * logits, identity on the flow head. `useFlow` is false for TB, whose flow head is unused.
 */
export function outputGradients(env: Env, ro: Rollout, g: LossResult, opts: { learnedPB: boolean; useFlow: boolean }): Float32Array {
  const { batch, layout, rows, actions, out, fmask, bmask } = ro;
  const { nActions: A, nBack: Ab, width: W } = layout;
  const T = batch.maxLen;
  const dOut = new Float32Array(ro.numRows * W);
  const lp = new Float64Array(Math.max(A, Ab));
  for (let b = 0; b < batch.size; b++) {
    const n = batch.lengths[b];
    for (let t = 0; t < n; t++) {
      const r = rows[b * T + t];
      const gpf = g.dLogPF[b * T + t];
      // d log softmax(l)_a / d l_j = [j = a] − softmax(l)_j
      maskedLogSoftmax(out, r * W, A, fmask, r * A, lp);
      for (let j = 0; j < A; j++) if (fmask[r * A + j]) dOut[r * W + j] -= gpf * Math.exp(lp[j]);
      dOut[r * W + actions[b * T + t]] += gpf;
      if (opts.useFlow) dOut[r * W + layout.flow] += g.dLogF[b * (T + 1) + t];
      if (opts.learnedPB && t > 0) {
        const gpb = g.dLogPB[b * T + t - 1];
        const base = r * W + A;
        maskedLogSoftmax(out, base, Ab, bmask, r * Ab, lp);
        for (let j = 0; j < Ab; j++) if (bmask[r * Ab + j]) dOut[base + j] -= gpb * Math.exp(lp[j]);
        dOut[base + env.backwardActionOf(actions[b * T + t - 1])] += gpb;
      }
    }
  }
  return dOut;
}

function chooseAction(
  logits: Float32Array,
  mask: Uint8Array,
  lp: Float64Array,
  probs: Float64Array,
  explore: ExploreOptions,
  rng: Rng,
): number {
  const A = mask.length;
  if (explore.epsilon > 0 && rng.uniform() < explore.epsilon) {
    for (let j = 0; j < A; j++) probs[j] = mask[j];
    return rng.categorical(probs, 0, A);
  }
  if (explore.temperature === 1) {
    for (let j = 0; j < A; j++) probs[j] = mask[j] ? Math.exp(lp[j]) : 0;
  } else {
    let m = -Infinity;
    for (let j = 0; j < A; j++) if (mask[j] && logits[j] > m) m = logits[j];
    for (let j = 0; j < A; j++) probs[j] = mask[j] ? Math.exp((logits[j] - m) / explore.temperature) : 0;
  }
  return rng.categorical(probs, 0, A);
}

function countOnes(a: Uint8Array, off: number, n: number): number {
  let c = 0;
  for (let j = 0; j < n; j++) c += a[off + j];
  return c;
}
