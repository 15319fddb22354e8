import type { Rng } from '../core/rng.js';
import { softTemperature } from '../core/math.js';
import { munchausenBonus, softValue, tdLoss } from './targets.js';
import { TransitionBuffer, copyRow, emptyTransitions, type FieldSpec, type StateFields, type TransitionBatch } from './transitions.js';

/** Q-values of n states, one row of `width` per state (actions first), and their action masks [n × A]. */
export interface QRows {
  q: ArrayLike<number>;
  width: number;
  mask: ArrayLike<number>;
  A: number;
}

/**
 * What a soft Q-learner needs from a Q-function: the benchmark MLP (softrl/dqn.ts) and the
 * LM adapter (finetune/soft-q.ts) implement it over their own state fields.
 */
export interface SoftQModel {
  /** Q̄ of the target copy at n states, with the states' action masks. */
  targetQ(s: StateFields, n: number): QRows;
  /**
   * One gradient pass of the online Q on the batch: evaluate Q(s_i, a_i), ask `dQ` for
   * dL/dQ(s_i, a_i), backpropagate (and, for a model that owns its optimizer, step it).
   */
  backward(b: TransitionBatch, dQ: (qa: ArrayLike<number>) => Float64Array): void;
  /** target ← (1 − τ)·target + τ·online over the Q-function's weights (τ = 1 copies). */
  polyak(tau: number): void;
}

export interface SoftQOptions {
  /** Munchausen α: 0 is SoftDQN (eq. (SQ)), > 0 Munchausen-DQN (eq. (MQ)) */
  alpha: number;
  l0: number;
  huber: boolean;
  bufferSize: number;
  /** prioritized replay exponent (0 = uniform) */
  perAlpha: number;
  /** target ← (1 − polyak)·target + polyak·online after each update */
  polyak: number;
}

/**
 * SoftDQN / Munchausen-DQN over typed-array transitions (docs/design.md eq. (SQ), (MQ)): one
 * prioritized buffer, the bootstrapped targets from the target copy, the Huber TD loss, the
 * priorities and the Polyak update. With τ = 1/(1 − α) the entropy coefficient (1 − α)τ is
 * 1, so softmax(Q/τ) converges to the GFlowNet policy P_F (eq. (M)).
 *
 *   y = r + [not done] τ·LSE_{a'}(Q̄(s', a')/τ) + α·clip(τ log softmax(Q̄(s, ·)/τ)[a], l0, 0)
 *   L = mean_i w_i · huber(Q(s_i, a_i) − y_i)
 */
export class SoftQLearner {
  readonly tau: number;
  readonly buffer: TransitionBuffer;

  constructor(
    private readonly model: SoftQModel,
    fields: Record<string, FieldSpec>,
    readonly o: SoftQOptions,
  ) {
    this.tau = softTemperature(o.alpha);
    this.buffer = new TransitionBuffer(o.bufferSize, o.perAlpha, fields);
  }

  /** TD targets y of a batch, eq. (SQ) plus the Munchausen bonus of eq. (MQ). */
  targets(b: TransitionBatch): Float64Array {
    const { tau, o } = this;
    const y = Float64Array.from(b.rew.subarray(0, b.n));
    const live = new Int32Array(b.n);
    let nl = 0;
    for (let i = 0; i < b.n; i++) if (!b.done[i]) live[nl++] = i;
    if (nl > 0) {
      const s2 = emptyTransitions(nl, this.buffer.fields).s;
      for (const [k, f] of Object.entries(this.buffer.fields)) for (let j = 0; j < nl; j++) copyRow(b.s2[k], live[j], s2[k], j, f.width);
      const next = this.model.targetQ(s2, nl);
      for (let j = 0; j < nl; j++) y[live[j]] += softValue(next.q, j * next.width, next.mask, j * next.A, next.A, tau);
    }
    if (o.alpha > 0) {
      const now = this.model.targetQ(b.s, b.n);
      for (let i = 0; i < b.n; i++) y[i] += munchausenBonus(now.q, i * now.width, now.mask, i * now.A, now.A, b.act[i], tau, o.alpha, o.l0);
    }
    return y;
  }

  /** The TD loss of one transition (its priority, as in the reference code: the loss, not |δ|). */
  lossOf(q: number, y: number): number {
    return tdLoss(q - y, this.o.huber).loss;
  }

  /**
   * One update on `n` transitions drawn by priority (β: importance-weight exponent; the
   * weights scale the loss only with `importanceWeights`). Returns the mean loss; the model
   * received the gradient in `backward`.
   */
  update(n: number, rng: Rng, beta = 0, importanceWeights = false): number {
    const sampled = this.buffer.sample(n, rng, beta);
    const weights = importanceWeights ? sampled.weights : new Float64Array(n).fill(1);
    const b = this.buffer.gather(sampled.slots);
    const y = this.targets(b);
    const priority = new Float64Array(n);
    let loss = 0;
    this.model.backward(b, (qa) => {
      const g = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const td = tdLoss(qa[i] - y[i], this.o.huber);
        priority[i] = td.loss;
        loss += (weights[i] * td.loss) / n;
        g[i] = (weights[i] * td.grad) / n;
      }
      return g;
    });
    this.buffer.updatePriorities(sampled.slots, priority);
    return loss;
  }

  /** The Polyak step of the target copy. */
  syncTarget(): void {
    this.model.polyak(this.o.polyak);
  }
}
