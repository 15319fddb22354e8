/**
 * The numerics every sampler, loss and oracle shares: stable log-sum-exp and log-softmax over
 * a slice x[off .. off+n), optionally restricted to allowed entries (mask[moff + i] ≠ 0) and
 * optionally of x/τ, and the soft-Q temperature. One implementation, so that every caller
 * rounds the same way (the private loops these replace computed exactly these expressions).
 */

type Mask = ArrayLike<number> | null;

/** log Σ exp over x[off .. off+n), skipping -Infinity entries; -Infinity when all are. */
export function logSumExp(x: ArrayLike<number>, off = 0, n = x.length - off): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > m) m = x[off + i];
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i] - m);
  return m + Math.log(s);
}

/** The two halves of a stable log-sum-exp of x/τ over the allowed entries: m = max x_i/τ and s = Σ exp(x_i/τ − m). */
export function maxAndSumExp(x: ArrayLike<number>, off: number, n: number, mask: Mask = null, moff = 0, tau = 1): { m: number; s: number } {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if ((!mask || mask[moff + i]) && x[off + i] / tau > m) m = x[off + i] / tau;
  let s = 0;
  for (let i = 0; i < n; i++) if (!mask || mask[moff + i]) s += Math.exp(x[off + i] / tau - m);
  return { m, s };
}

/** log Σ exp(x_i/τ) over the allowed entries of x[off .. off+n) (−∞ when none is allowed). */
export function maskedLogSumExp(x: ArrayLike<number>, off: number, n: number, mask: Mask, moff = 0, tau = 1): number {
  const { m, s } = maxAndSumExp(x, off, n, mask, moff, tau);
  return m + Math.log(s);
}

/** log softmax(x/τ)[k] over the allowed entries of x[off .. off+n), k relative to off. */
export function logSoftmaxAt(x: ArrayLike<number>, off: number, n: number, k: number, mask: Mask = null, moff = 0, tau = 1): number {
  const { m, s } = maxAndSumExp(x, off, n, mask, moff, tau);
  return x[off + k] / tau - m - Math.log(s);
}

/**
 * Masked log-softmax of one row: out[outOff + i] = x[off + i] − LSE over the allowed entries,
 * −∞ where mask[moff + i] = 0. Returns the normalizer LSE.
 */
export function maskedLogSoftmax(
  x: ArrayLike<number>,
  off: number,
  n: number,
  mask: ArrayLike<number>,
  moff: number,
  out: Float64Array | Float32Array,
  outOff = 0,
): number {
  const lse = maskedLogSumExp(x, off, n, mask, moff);
  for (let i = 0; i < n; i++) out[outOff + i] = mask[moff + i] ? x[off + i] - lse : -Infinity;
  return lse;
}

/**
 * The temperature of soft Q-learning with Munchausen coefficient α: τ = 1/(1 − α), so that
 * the effective entropy coefficient (1 − α)τ is 1 and softmax(Q/τ) is the GFlowNet policy
 * (docs/design.md eq. (MQ)); α = 0 (SoftDQN) gives τ = 1.
 */
export function softTemperature(alpha: number): number {
  return 1 / (1 - alpha);
}
