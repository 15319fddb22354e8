/**
 * A padded batch of complete trajectories, as the losses see it. Trajectory b has
 * lengths[b] = n edges s_0 → s_1 → … → s_{n−1} → s_f, the last edge being the exit
 * (the object is x = s_{n−1}). Per edge t: logPF (forward policy), logPB (fixed or learned
 * backward policy, 0 on the exit edge). Per node t = 0..n: logF, where node n is the sink
 * and holds log R(x) (docs/design.md (DB): F(x→s_f) := R(x)). Losses never know the env.
 */
export interface TrajectoryBatch {
  size: number;
  maxLen: number; // T: longest trajectory, in edges
  lengths: Int32Array; // [B]
  logPF: Float64Array; // [B × T]
  logPB: Float64Array; // [B × T]
  logF: Float64Array; // [B × (T + 1)]
  logR: Float64Array; // [B]
  /**
   * Optional [B × (T + 1)]: 1 where node t's log F is known. SubTB then uses only
   * sub-trajectories between such nodes (the sink always counts) — e.g. the token-level
   * modified SubTB, whose log F(s_t) exists only where stop is allowed.
   */
  flowMask?: Uint8Array;
}

export function emptyBatch(size: number, maxLen: number): TrajectoryBatch {
  return {
    size,
    maxLen,
    lengths: new Int32Array(size),
    logPF: new Float64Array(size * maxLen),
    logPB: new Float64Array(size * maxLen),
    logF: new Float64Array(size * (maxLen + 1)),
    logR: new Float64Array(size),
  };
}

/** A scalar loss and its gradient with respect to every per-edge / per-node input. */
export interface LossResult {
  loss: number;
  dLogPF: Float64Array; // [B × T]
  dLogPB: Float64Array; // [B × T]
  dLogF: Float64Array; // [B × (T + 1)]; the sink entries (log R) get gradient but are constants to callers
  dLogZ: Float64Array; // [B]
}

export function zeroGrads(batch: TrajectoryBatch): LossResult {
  const { size: B, maxLen: T } = batch;
  return {
    loss: 0,
    dLogPF: new Float64Array(B * T),
    dLogPB: new Float64Array(B * T),
    dLogF: new Float64Array(B * (T + 1)),
    dLogZ: new Float64Array(B),
  };
}
