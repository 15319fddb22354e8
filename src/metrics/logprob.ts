import type { Env } from '../gfn/env.js';
import type { SparseMlp } from '../nn/mlp.js';
import type { Rng } from '../core/rng.js';
import { outputLayout } from '../gfn/policy-net.js';
import { logSoftmaxAt, logSumExp } from '../core/math.js';
import { isTwoStage, twoStageLogProbs, type PolicyNet } from '../gfn/two-stage.js';

/**
 * An env whose backward moves can be mapped back to the forward action that undoes them:
 * forwardActionOf(child, i, j) is the forward action from parent(child_i, j) to child_i.
 * (An extension next to Env, not a change of it.)
 */
export interface BackwardMappable extends Env {
  forwardActionOf(child: Int32Array, i: number, backAction: number): number;
}

/**
 * Monte-Carlo estimate of the learned sampler's terminal probability (docs/design.md §5):
 *   log P̂_θ(x) = logsumexp_{m=1..M} [log P_F(τ_m) − log P_B(τ_m | x)] − log M,
 * τ_m ~ P_B(·|x) with P_B uniform over parents. It is unbiased for P_T(x) (not in log).
 * P_F is softmax(logits/temperature) — temperature τ for M-DQN's softmax(Q/τ) — and
 * includes the exit step log P_F(exit | x). One network forward per visited state, in
 * chunks of rows, off the tape. A two-stage policy (gfn/two-stage.ts) scores each step as
 * log P(slot) + log P(word | slot) instead.
 */
export function estimateLogProb(
  env: BackwardMappable,
  net: PolicyNet,
  xs: Int32Array,
  count: number,
  M: number,
  rng: Rng,
  temperature = 1,
  chunk = 2048,
  /** Called after each chunk with objects done / total (progress of a long evaluation). */
  onChunk?: (done: number, total: number) => void,
): Float64Array {
  const D = env.stateDim,
    A = env.nActions,
    Ab = env.nBackActions,
    K = env.nnz;
  const W = outputLayout(env).width;
  const est = new Float64Array(count);
  const perChunk = Math.max(1, Math.floor(chunk / M)); // whole objects per chunk
  const two = isTwoStage(net) ? net : null;
  const dense = two ? null : (net as SparseMlp);
  // the dense head's buffers hold every joint action per row; the two-stage policy needs neither
  const rowsDense = two ? 0 : perChunk * M;
  const idx = new Int32Array(rowsDense * K);
  const out = new Float32Array(rowsDense * W);
  const fmask = new Uint8Array(rowsDense * A);
  const bmask = new Uint8Array(Ab);
  const one = new Int32Array(1);
  // masked log-softmax of row's logits / temperature, at action a
  const lp = (row: number, a: number): number => logSoftmaxAt(out, row * W, A, a, fmask, row * A, temperature);
  // log P_F(acts[r] | states[r]) for m rows, into res
  const res = new Float64Array(perChunk * M);
  const score = (m: number, states: Int32Array, acts: Int32Array): void => {
    if (two) {
      twoStageLogProbs(two, states, m, acts, res, temperature);
      return;
    }
    env.encode(states, m, idx);
    env.forwardMask(states, m, fmask);
    dense!.forward(idx, m, out, false);
    for (let r = 0; r < m; r++) res[r] = lp(r, acts[r]);
  };
  const exits = new Int32Array(perChunk * M).fill(env.exitAction);
  for (let x0 = 0; x0 < count; x0 += perChunk) {
    const nx = Math.min(perChunk, count - x0),
      n = nx * M;
    const cur = new Int32Array(n * D);
    for (let i = 0; i < n; i++) cur.set(xs.subarray((x0 + Math.floor(i / M)) * D, (x0 + Math.floor(i / M) + 1) * D), i * D);
    const acc = new Float64Array(n);
    // exit edge at x
    score(n, cur, exits);
    for (let i = 0; i < n; i++) acc[i] = res[i];
    // an object that is s0 itself (e.g. the bare scaffold) has the single trajectory s0 → exit
    let active = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !env.isInitial(cur, i));
    const states = new Int32Array(n * D);
    const actions = new Int32Array(n);
    while (active.length > 0) {
      const m = active.length;
      for (let r = 0; r < m; r++) {
        const i = active[r];
        const child = cur.subarray(i * D, i * D + D);
        env.backwardMask(child, 1, bmask);
        let c = 0;
        for (let j = 0; j < Ab; j++) c += bmask[j];
        let pick = rng.int(c);
        let j = 0;
        for (; j < Ab; j++) if (bmask[j] && pick-- === 0) break;
        acc[i] += Math.log(c); // − log P_B(parent | child), P_B = 1/c
        actions[r] = env.forwardActionOf(cur, i, j);
        one[0] = j;
        env.backwardStep(child, one, 1, child);
        states.set(child, r * D);
      }
      score(m, states, actions);
      const still: number[] = [];
      for (let r = 0; r < m; r++) {
        const i = active[r];
        acc[i] += res[r];
        if (!env.isInitial(cur, i)) still.push(i);
      }
      active = Int32Array.from(still);
    }
    for (let x = 0; x < nx; x++) est[x0 + x] = logSumExp(acc, x * M, M) - Math.log(M);
    onChunk?.(x0 + nx, count);
  }
  return est;
}
