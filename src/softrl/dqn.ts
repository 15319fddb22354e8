import type { Env } from '../gfn/env.js';
import type { SparseMlp } from '../nn/mlp.js';
import { MemoMlp, canMemoize } from '../nn/memo-mlp.js';
import type { Rng } from '../core/rng.js';
import { sampleTrajectories, type ExploreOptions } from '../gfn/rollout.js';
import { outputLayout } from '../gfn/policy-net.js';
import type { StepResult } from '../gfn/gfn-trainer.js';
import { SoftQLearner, type SoftQModel } from './soft-q.js';
import { copyRow, emptyTransitions, type FieldSpec } from './transitions.js';

export interface DqnOptions {
  /** Munchausen coefficient α; 0 is SoftDQN (eq. (SQ)), > 0 Munchausen-DQN (eq. (MQ)). */
  alpha: number;
  l0: number;
  batchSize: number; // trajectories sampled per iteration
  replayBatch: number; // transitions per update
  bufferSize: number;
  perAlpha: number; // 0 = uniform replay
  perBeta: [number, number]; // annealed linearly over `iterations`
  iterations: number;
  polyak: number; // target ← (1 − polyak)·target + polyak·online, every step
  lr: number;
  huber: boolean;
  /** Scale the loss by PER importance weights (the reference code anneals β but leaves them out). */
  importanceWeights: boolean;
  /** Updates start once this many iterations have filled the buffer (reference: 16). */
  learningStarts: number;
  explore: ExploreOptions; // on top of the softmax(Q/τ) policy
}

/**
 * SoftDQN / Munchausen-DQN on the MDP of docs/design.md eq. (M) with the benchmark MLP: the
 * network's forward logits are Q(s, ·), rewards are log P_B(s|s') on moves (uniform P_B) and
 * log R(x) on exit. The learning itself (buffer, targets, TD loss, Polyak) is the shared
 * SoftQLearner of soft-q.ts; this file samples trajectories and adapts the MLP to it.
 */
export class SoftDqnTrainer {
  readonly tau: number;
  private readonly learner: SoftQLearner;
  private readonly fields: Record<string, FieldSpec>;
  /**
   * The networks as the learner sees them: memoizing wrappers (nn/memo-mlp.ts) when the engine
   * allows it, so a state repeated within an iteration is evaluated once per network.
   */
  private readonly qNet: SparseMlp;
  private readonly qTarget: SparseMlp;
  private readonly memo: boolean;
  private iteration = 0;

  constructor(
    private readonly env: Env,
    readonly net: SparseMlp,
    readonly target: SparseMlp,
    private readonly rng: Rng,
    readonly opts: DqnOptions,
  ) {
    this.fields = { s: { width: env.stateDim, type: 'i32' } };
    this.memo = canMemoize(net) && canMemoize(target);
    this.qNet = canMemoize(net) ? new MemoMlp(net) : net;
    this.qTarget = canMemoize(target) ? new MemoMlp(target) : target;
    const { alpha, l0, huber, bufferSize, perAlpha, polyak } = opts;
    const model = mlpQ(env, this.qNet, this.qTarget, opts.lr, !this.memo);
    this.learner = new SoftQLearner(model, this.fields, { alpha, l0, huber, bufferSize, perAlpha, polyak });
    this.tau = this.learner.tau;
    target.polyakFrom(net, 1);
  }

  step(): StepResult {
    const { env, opts } = this;
    const D = env.stateDim,
      T = env.maxSteps,
      A = env.nActions;
    const explore = { ...opts.explore, temperature: opts.explore.temperature * this.tau };
    // The weights may have been replaced between steps (checkpoint restore): start both caches afresh.
    if (this.qNet instanceof MemoMlp) this.qNet.invalidate();
    if (this.qTarget instanceof MemoMlp) this.qTarget.invalidate();
    // With memoization the rollout records its rows, so the update's online pass reuses the
    // activations of the states it shares with this iteration's trajectories.
    const ro = sampleTrajectories(env, this.qNet, opts.batchSize, this.rng, explore, { record: this.memo, learnedPB: false });
    // the new transitions, flattened
    let m = 0;
    for (let b = 0; b < opts.batchSize; b++) m += ro.batch.lengths[b];
    const tr = emptyTransitions(m, this.fields);
    const s = tr.s.s,
      s2 = tr.s2.s;
    const qRows = new Float32Array(m * A);
    const W = ro.layout.width;
    let k = 0;
    for (let b = 0; b < opts.batchSize; b++) {
      const n = ro.batch.lengths[b];
      for (let t = 0; t < n; t++, k++) {
        const e = b * T + t;
        copyRow(ro.nodeStates, e, s, k, D);
        tr.act[k] = ro.actions[e];
        const exit = t === n - 1;
        tr.done[k] = exit ? 1 : 0;
        if (exit) tr.rew[k] = ro.batch.logR[b];
        else {
          copyRow(ro.nodeStates, e + 1, s2, k, D);
          tr.rew[k] = ro.batch.logPB[e]; // eq. (M): r(s, s') = log P_B(s|s')
        }
        for (let a = 0, r = ro.rows[e] * W; a < A; a++) qRows[k * A + a] = ro.out[r + a];
      }
    }
    // As the reference code, a new transition enters the buffer with its current loss as
    // priority; the rollout already computed Q(s, ·), so only the target net runs here.
    const y = this.learner.targets(tr);
    for (let i = 0; i < m; i++) this.learner.buffer.add(tr, i, this.learner.lossOf(qRows[i * A + tr.act[i]], y[i]));
    let loss = NaN;
    if (this.iteration >= opts.learningStarts) {
      const frac = opts.iterations > 1 ? Math.min(1, this.iteration / (opts.iterations - 1)) : 1;
      const beta = opts.perBeta[0] + (opts.perBeta[1] - opts.perBeta[0]) * frac;
      loss = this.learner.update(opts.replayBatch, this.rng, beta, opts.importanceWeights);
      this.learner.syncTarget();
    }
    this.iteration++;
    return { loss, terminals: ro.terminals, logR: ro.batch.logR, trajectories: opts.batchSize };
  }
}

/**
 * The MLP as a Q-function: Q(s, ·) are the first A forward outputs; the online net steps its own
 * Adam. `resetTape`: start the backward's tape afresh (a memoizing net keeps the rollout's rows).
 */
function mlpQ(env: Env, net: SparseMlp, target: SparseMlp, lr: number, resetTape: boolean): SoftQModel {
  const W = outputLayout(env).width,
    A = env.nActions;
  const forward = (mlp: SparseMlp, states: Int32Array, n: number, record: boolean) => {
    const idx = new Int32Array(n * env.nnz);
    env.encode(states, n, idx);
    const out = new Float32Array(n * W);
    mlp.forward(idx, n, out, record);
    return out;
  };
  return {
    targetQ(s, n) {
      const states = s.s as Int32Array;
      const mask = new Uint8Array(n * A);
      env.forwardMask(states, n, mask);
      return { q: forward(target, states, n, false), width: W, mask, A };
    },
    backward(b, dQ) {
      if (resetTape) net.resetTape();
      const row0 = net.tapeRows;
      const q = forward(net, b.s.s as Int32Array, b.n, true);
      const qa = new Float64Array(b.n);
      for (let i = 0; i < b.n; i++) qa[i] = q[i * W + b.act[i]];
      const g = dQ(qa);
      const dOut = new Float32Array(b.n * W);
      for (let i = 0; i < b.n; i++) dOut[i * W + b.act[i]] = g[i];
      net.zeroGrad();
      net.backward(row0, b.n, dOut);
      net.adamStep(lr);
    },
    polyak(tau) {
      target.polyakFrom(net, tau);
    },
  };
}
