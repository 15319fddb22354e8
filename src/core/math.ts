/** log Σ exp over x[off .. off+n), skipping -Infinity entries; -Infinity when all are. */
export function logSumExp(x: ArrayLike<number>, off = 0, n = x.length - off): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > m) m = x[off + i];
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i] - m);
  return m + Math.log(s);
}

/**
 * Masked log-softmax of one row: out[i] = logits[i] - LSE over allowed entries, -Infinity
 * where mask[i] = 0. Returns the normalizer.
 */
export function maskedLogSoftmax(
  logits: ArrayLike<number>,
  mask: ArrayLike<number>,
  off: number,
  n: number,
  out: Float64Array | Float32Array,
  outOff = off,
): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (mask[off + i] && logits[off + i] > m) m = logits[off + i];
  let s = 0;
  for (let i = 0; i < n; i++) if (mask[off + i]) s += Math.exp(logits[off + i] - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < n; i++) out[outOff + i] = mask[off + i] ? logits[off + i] - lse : -Infinity;
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

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
}
