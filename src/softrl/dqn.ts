import type { Env } from '../gfn/env.js';
import type { SparseMlp } from '../nn/mlp.js';
import type { Rng } from '../core/rng.js';
import { sampleTrajectories, type ExploreOptions } from '../gfn/rollout.js';
import { outputLayout } from '../gfn/policy-net.js';
import { PrioritizedReplay } from './replay.js';
import type { StepResult } from '../gfn/gfn-trainer.js';
import { munchausenBonus, softValue, tdLoss } from './targets.js';

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
 * SoftDQN / Munchausen-DQN on the MDP of docs/design.md eq. (M): the network's forward logits
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
    const D = env.stateDim, T = env.maxSteps, A = env.nActions;
    const explore = { ...opts.explore, temperature: opts.explore.temperature * this.tau };
    const ro = sampleTrajectories(env, this.net, opts.batchSize, this.rng, explore, { record: false, learnedPB: false });
    // the new transitions, flattened
    let m = 0;
    for (let b = 0; b < opts.batchSize; b++) m += ro.batch.lengths[b];
    const tr = newTransitions(m, D);
    const qRows = new Float32Array(m * A);
    const W = ro.layout.width;
    let k = 0;
    for (let b = 0; b < opts.batchSize; b++) {
      const n = ro.batch.lengths[b];
      for (let t = 0; t < n; t++, k++) {
        const e = b * T + t;
        tr.s.set(ro.nodeStates.subarray(e * D, e * D + D), k * D);
        tr.act[k] = ro.actions[e];
        const exit = t === n - 1;
        tr.done[k] = exit ? 1 : 0;
        if (exit) tr.rew[k] = ro.batch.logR[b];
        else {
          tr.s2.set(ro.nodeStates.subarray(e * D + D, e * D + 2 * D), k * D);
          tr.rew[k] = ro.batch.logPB[e]; // eq. (M): r(s, s') = log P_B(s|s')
        }
        qRows.set(ro.out.subarray(ro.rows[e] * W, ro.rows[e] * W + A), k * A);
      }
    }
    // As the reference code, a new transition enters the buffer with its current loss as
    // priority; the rollout already computed Q(s, ·), so only the target net runs here.
    const y = this.targets(tr, m);
    for (let i = 0; i < m; i++) {
      const slot = this.replay.add(this.lossOf(qRows[i * A + tr.act[i]] - y[i]));
      this.S.set(tr.s.subarray(i * D, i * D + D), slot * D);
      this.S2.set(tr.s2.subarray(i * D, i * D + D), slot * D);
      this.act[slot] = tr.act[i];
      this.rew[slot] = tr.rew[i];
      this.done[slot] = tr.done[i];
    }
    const loss = this.iteration >= opts.learningStarts ? this.update() : NaN;
    this.iteration++;
    return { loss, terminals: ro.terminals, logR: ro.batch.logR, trajectories: opts.batchSize };
  }

  private lossOf(d: number): number {
    return tdLoss(d, this.opts.huber).loss;
  }

  /**
   * TD targets y = r + τ·LSE(Q̄(s', ·)/τ) (0 after exit), eq. (SQ), plus the Munchausen
   * bonus α·clip(τ log π̄(a|s), l0, 0) with π̄ = softmax(Q̄/τ), eq. (MQ).
   */
  private targets(tr: Transitions, n: number): Float64Array {
    const { env, opts, tau } = this;
    const D = env.stateDim, A = env.nActions;
    const W = outputLayout(env).width;
    const y = Float64Array.from(tr.rew.subarray(0, n));
    const live: number[] = [];
    for (let i = 0; i < n; i++) if (!tr.done[i]) live.push(i);
    if (live.length > 0) {
      const s2 = new Int32Array(live.length * D);
      live.forEach((i, j) => s2.set(tr.s2.subarray(i * D, i * D + D), j * D));
      const q2 = this.targetForward(s2, live.length);
      const mask2 = new Uint8Array(live.length * A);
      env.forwardMask(s2, live.length, mask2);
      live.forEach((i, j) => (y[i] += softValue(q2, j * W, mask2, j * A, A, tau)));
    }
    if (opts.alpha > 0) {
      const qt = this.targetForward(tr.s, n);
      const mask = new Uint8Array(n * A);
      env.forwardMask(tr.s, n, mask);
      for (let i = 0; i < n; i++) y[i] += munchausenBonus(qt, i * W, mask, i * A, A, tr.act[i], tau, opts.alpha, opts.l0);
    }
    return y;
  }

  private targetForward(states: Int32Array, n: number): Float32Array {
    const idx = new Int32Array(n * this.env.nnz);
    this.env.encode(states, n, idx);
    const out = new Float32Array(n * outputLayout(this.env).width);
    this.target.forward(idx, n, out, false);
    return out;
  }

  private update(): number {
    const { env, opts } = this;
    const D = env.stateDim, K = env.nnz;
    const W = outputLayout(env).width;
    const n = opts.replayBatch;
    const frac = opts.iterations > 1 ? Math.min(1, this.iteration / (opts.iterations - 1)) : 1;
    const beta = opts.perBeta[0] + (opts.perBeta[1] - opts.perBeta[0]) * frac;
    const sampled = this.replay.sample(n, this.rng, beta);
    const slots = sampled.slots;
    const weights = opts.importanceWeights ? sampled.weights : new Float64Array(n).fill(1);

    const tr = newTransitions(n, D);
    for (let i = 0; i < n; i++) {
      const j = slots[i];
      tr.s.set(this.S.subarray(j * D, j * D + D), i * D);
      tr.s2.set(this.S2.subarray(j * D, j * D + D), i * D);
      tr.act[i] = this.act[j];
      tr.rew[i] = this.rew[j];
      tr.done[i] = this.done[j];
    }
    const idx = new Int32Array(n * K);
    env.encode(tr.s, n, idx);
    const q = new Float32Array(n * W);
    this.net.resetTape();
    this.net.forward(idx, n, q, true);
    const y = this.targets(tr, n);

    const dOut = new Float32Array(n * W);
    const priority = new Float64Array(n);
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const a = tr.act[i];
      const td = tdLoss(q[i * W + a] - y[i], opts.huber);
      // as the reference code: the new priority is the per-transition loss, not |δ|
      priority[i] = td.loss;
      loss += (weights[i] * td.loss) / n;
      dOut[i * W + a] = (weights[i] * td.grad) / n;
    }
    this.net.zeroGrad();
    this.net.backward(0, n, dOut);
    this.net.adamStep(opts.lr);
    this.target.polyakFrom(this.net, opts.polyak);
    this.replay.update(slots, priority);
    return loss;
  }
}

interface Transitions {
  s: Int32Array;
  s2: Int32Array; // unused where done
  act: Int32Array;
  rew: Float64Array;
  done: Uint8Array;
}

function newTransitions(n: number, D: number): Transitions {
  return { s: new Int32Array(n * D), s2: new Int32Array(n * D), act: new Int32Array(n), rew: new Float64Array(n), done: new Uint8Array(n) };
}
