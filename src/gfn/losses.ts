import { zeroGrads, type LossResult, type TrajectoryBatch } from './trajectories.js';

/**
 * GFlowNet objectives as pure functions of a trajectory batch: each returns the loss and
 * its exact gradient with respect to log P_F, log P_B, log F and log Z, so any model
 * (tfjs, the fused kernel, an LM head) backpropagates from there.
 */

/** Trajectory balance, docs/design.md eq. (TB), averaged over trajectories. logZ is per trajectory (log Z or log Z(X)). */
export function trajectoryBalance(batch: TrajectoryBatch, logZ: Float64Array): LossResult {
  const { size: B, maxLen: T } = batch;
  const g = zeroGrads(batch);
  for (let b = 0; b < B; b++) {
    let delta = logZ[b] - batch.logR[b];
    for (let t = 0; t < batch.lengths[b]; t++) delta += batch.logPF[b * T + t] - batch.logPB[b * T + t];
    g.loss += (delta * delta) / B;
    const d = (2 * delta) / B;
    g.dLogZ[b] = d;
    for (let t = 0; t < batch.lengths[b]; t++) {
      g.dLogPF[b * T + t] = d;
      g.dLogPB[b * T + t] = -d;
    }
  }
  return g;
}

/** Detailed balance, docs/design.md eq. (DB), averaged over all edges of the batch (exit edges included). */
export function detailedBalance(batch: TrajectoryBatch): LossResult {
  const { size: B, maxLen: T } = batch;
  const g = zeroGrads(batch);
  let edges = 0;
  for (let b = 0; b < B; b++) edges += batch.lengths[b];
  for (let b = 0; b < B; b++) {
    const f = b * (T + 1);
    for (let t = 0; t < batch.lengths[b]; t++) {
      const e = b * T + t;
      const delta = batch.logF[f + t] + batch.logPF[e] - batch.logF[f + t + 1] - batch.logPB[e];
      g.loss += (delta * delta) / edges;
      const d = (2 * delta) / edges;
      g.dLogF[f + t] += d;
      g.dLogF[f + t + 1] -= d;
      g.dLogPF[e] = d;
      g.dLogPB[e] = -d;
    }
  }
  return g;
}

/**
 * SubTB(λ), docs/design.md eq. (S1): per trajectory, Σ_{0≤i<j≤n} λ^{j−i−1} δ_ij² / Σ λ^{j−i−1},
 * then the mean over trajectories. With prefix sums C_k = Σ_{t<k} (log P_F − log P_B),
 * δ_ij = log F_i − log F_j + C_j − C_i, so the gradient into each edge is a suffix sum.
 */
export function subTrajectoryBalance(batch: TrajectoryBatch, lambda: number): LossResult {
  const { size: B, maxLen: T } = batch;
  const g = zeroGrads(batch);
  const C = new Float64Array(T + 1);
  const dC = new Float64Array(T + 1);
  const pow = new Float64Array(T + 1);
  pow[0] = 1;
  for (let k = 1; k <= T; k++) pow[k] = pow[k - 1] * lambda;
  for (let b = 0; b < B; b++) {
    const n = batch.lengths[b];
    const f = b * (T + 1);
    C[0] = 0;
    for (let t = 0; t < n; t++) C[t + 1] = C[t] + batch.logPF[b * T + t] - batch.logPB[b * T + t];
    const fm = batch.flowMask;
    const known = (t: number) => t === n || !fm || fm[f + t] === 1;
    let W = 0;
    for (let i = 0; i < n; i++) if (known(i)) for (let j = i + 1; j <= n; j++) if (known(j)) W += pow[j - i - 1];
    dC.fill(0, 0, n + 1);
    for (let i = 0; i < n; i++) {
      if (!known(i)) continue;
      for (let j = i + 1; j <= n; j++) {
        if (!known(j)) continue;
        const w = pow[j - i - 1] / W / B;
        const delta = batch.logF[f + i] - batch.logF[f + j] + C[j] - C[i];
        g.loss += w * delta * delta;
        const d = 2 * w * delta;
        g.dLogF[f + i] += d;
        g.dLogF[f + j] -= d;
        dC[j] += d;
        dC[i] -= d;
      }
    }
    // dL/d logPF_t = Σ_{k > t} dC_k
    let acc = 0;
    for (let t = n - 1; t >= 0; t--) {
      acc += dC[t + 1];
      g.dLogPF[b * T + t] = acc;
      g.dLogPB[b * T + t] = -acc;
    }
  }
  return g;
}
