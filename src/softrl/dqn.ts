import type { Env } from '../gfn/env.js';
import type { SparseMlp } from '../nn/mlp.js';
import type { Rng } from '../core/rng.js';
import { sampleTrajectories, type ExploreOptions } from '../gfn/rollout.js';
import { outputLayout } from '../gfn/policy-net.js';
import { PrioritizedReplay } from './replay.js';
import type { StepResult } from '../gfn/gfn-trainer.js';

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
 * SoftDQN / Munchausen-DQN on the MDP of DESIGN.md eq. (M): the network's forward logits
 * are Q(s, ·), rewards are log P_B(s|s') on moves (uniform P_B) and log R(x) on exit.
 * With τ = 1/(1 − α) the effective entropy coefficient (1 − α)τ is 1, so the sampling
 * policy softmax(Q/τ) converges to P_F.
 */
export class SoftDqnTrainer {
  readonly tau: number;
  private readonly replay: PrioritizedReplay;
  private readonly S: Int32Array;
  private readonly S2: Int32Array;
  private readonly act: Int32Array;
  private readonly rew: Float64Array;
  private readonly done: Uint8Array;
  private iteration = 0;

  constructor(
    private readonly env: Env,
    readonly net: SparseMlp,
    readonly target: SparseMlp,
    private readonly rng: Rng,
    readonly opts: DqnOptions,
  ) {
    this.tau = 1 / (1 - opts.alpha);
    const D = env.stateDim, N = opts.bufferSize;
    this.replay = new PrioritizedReplay(N, opts.perAlpha);
    this.S = new Int32Array(N * D);
    this.S2 = new Int32Array(N * D);
    this.act = new Int32Array(N);
    this.rew = new Float64Array(N);
    this.done = new Uint8Array(N);
    target.polyakFrom(net, 1);
  }

  step(): StepResult {
    const { env, opts } = this;
    const D = env.stateDim, T = env.maxSteps;
    const explore = { ...opts.explore, temperature: opts.explore.temperature * this.tau };
    const ro = sampleTrajectories(env, this.net, opts.batchSize, this.rng, explore, { record: false, learnedPB: false });
    for (let b = 0; b < opts.batchSize; b++) {
      const n = ro.batch.lengths[b];
      for (let t = 0; t < n; t++) {
        const slot = this.replay.add();
        const e = b * T + t;
        this.S.set(ro.nodeStates.subarray(e * D, e * D + D), slot * D);
        this.act[slot] = ro.actions[e];
        const exit = t === n - 1;
        this.done[slot] = exit ? 1 : 0;
        if (exit) this.rew[slot] = ro.batch.logR[b];
        else {
          this.S2.set(ro.nodeStates.subarray(e * D + D, e * D + 2 * D), slot * D);
          this.rew[slot] = ro.batch.logPB[e]; // eq. (M): r(s, s') = log P_B(s|s')
        }
      }
    }
    const loss = this.iteration >= opts.learningStarts ? this.update() : NaN;
    this.iteration++;
    return { loss, terminals: ro.terminals, logR: ro.batch.logR, trajectories: opts.batchSize };
  }

  private update(): number {
    const { env, opts, tau } = this;
    const D = env.stateDim, A = env.nActions, K = env.nnz;
    const W = outputLayout(env).width;
    const n = opts.replayBatch;
    const frac = opts.iterations > 1 ? Math.min(1, this.iteration / (opts.iterations - 1)) : 1;
    const beta = opts.perBeta[0] + (opts.perBeta[1] - opts.perBeta[0]) * frac;
    const sampled = this.replay.sample(n, this.rng, beta);
    const slots = sampled.slots;
    const weights = opts.importanceWeights ? sampled.weights : new Float64Array(n).fill(1);

    const s = new Int32Array(n * D);
    const idx = new Int32Array(n * K);
    for (let i = 0; i < n; i++) s.set(this.S.subarray(slots[i] * D, slots[i] * D + D), i * D);
    env.encode(s, n, idx);
    const mask = new Uint8Array(n * A);
    env.forwardMask(s, n, mask);
    const q = new Float32Array(n * W);
    this.net.resetTape();
    this.net.forward(idx, n, q, true);

    // Bootstrap term τ·LSE(Q̄(s', ·)/τ) for non-terminal transitions.
    const live: number[] = [];
    for (let i = 0; i < n; i++) if (!this.done[slots[i]]) live.push(i);
    const s2 = new Int32Array(live.length * D);
    live.forEach((i, j) => s2.set(this.S2.subarray(slots[i] * D, slots[i] * D + D), j * D));
    const idx2 = new Int32Array(live.length * K);
    env.encode(s2, live.length, idx2);
    const mask2 = new Uint8Array(live.length * A);
    env.forwardMask(s2, live.length, mask2);
    const q2 = new Float32Array(live.length * W);
    if (live.length > 0) this.target.forward(idx2, live.length, q2, false);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = this.rew[slots[i]];
    live.forEach((i, j) => (y[i] += tau * scaledLse(q2, j * W, mask2, j * A, A, tau)));

    if (opts.alpha > 0) {
      // Munchausen bonus α·clip(τ log π̄(a|s), l0, 0), π̄ = softmax(Q̄/τ), eq. (MQ)
      const qt = new Float32Array(n * W);
      this.target.forward(idx, n, qt, false);
      for (let i = 0; i < n; i++) {
        const a = this.act[slots[i]];
        const logPi = qt[i * W + a] / tau - scaledLse(qt, i * W, mask, i * A, A, tau);
        y[i] += opts.alpha * Math.min(0, Math.max(opts.l0, tau * logPi));
      }
    }

    const dOut = new Float32Array(n * W);
    const td = new Float64Array(n);
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const a = this.act[slots[i]];
      const d = q[i * W + a] - y[i];
      td[i] = d;
      const ad = Math.abs(d);
      const l = opts.huber ? (ad <= 1 ? 0.5 * d * d : ad - 0.5) : 0.5 * d * d;
      loss += (weights[i] * l) / n;
      const g = opts.huber ? Math.max(-1, Math.min(1, d)) : d;
      dOut[i * W + a] = (weights[i] * g) / n;
    }
    this.net.zeroGrad();
    this.net.backward(0, n, dOut);
    this.net.adamStep(opts.lr);
    this.target.polyakFrom(this.net, opts.polyak);
    this.replay.update(slots, td);
    return loss;
  }
}

/** τ·LSE(x/τ) over the allowed entries of one row, divided back by τ: returns LSE(x/τ). */
function scaledLse(x: Float32Array, off: number, mask: Uint8Array, moff: number, A: number, tau: number): number {
  let m = -Infinity;
  for (let a = 0; a < A; a++) if (mask[moff + a] && x[off + a] / tau > m) m = x[off + a] / tau;
  let s = 0;
  for (let a = 0; a < A; a++) if (mask[moff + a]) s += Math.exp(x[off + a] / tau - m);
  return m + Math.log(s);
}
