/**
 * The soft-RL bootstrap pieces shared by every soft Q-learner (hypergrid MLP, LM head):
 * rows of Q-values with an action mask, entropy coefficient τ.
 */

import { maskedLogSumExp } from '../core/math.js';

/** τ·LSE(Q(s', ·)/τ) over the allowed actions: the soft value of the next state, eq. (SQ). */
export function softValue(q: ArrayLike<number>, off: number, mask: ArrayLike<number>, moff: number, A: number, tau: number): number {
  return tau * maskedLogSumExp(q, off, A, mask, moff, tau);
}

/** Munchausen bonus α·clip(τ·log π̄(a|s), l0, 0) with π̄ = softmax(Q̄(s, ·)/τ), eq. (MQ). */
export function munchausenBonus(
  q: ArrayLike<number>,
  off: number,
  mask: ArrayLike<number>,
  moff: number,
  A: number,
  action: number,
  tau: number,
  alpha: number,
  l0: number,
): number {
  const logPi = q[off + action] / tau - softValue(q, off, mask, moff, A, tau) / tau;
  return alpha * Math.min(0, Math.max(l0, tau * logPi));
}

/** Huber (δ = 1) or squared loss of a TD error, and its derivative. */
export function tdLoss(d: number, huber: boolean): { loss: number; grad: number } {
  const ad = Math.abs(d);
  if (!huber || ad <= 1) return { loss: 0.5 * d * d, grad: d };
  return { loss: ad - 0.5, grad: Math.sign(d) };
}
