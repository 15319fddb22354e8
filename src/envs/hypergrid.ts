import type { EnumerableEnv } from '../gfn/env.js';
import { usage } from '../core/errors.js';

export type HypergridReward = 'standard' | 'hard';

export interface HypergridConfig {
  ndim: number;
  height: number;
  reward: HypergridReward;
}

/** R0, R1, R2 of docs/design.md §5. */
export const REWARD_CONSTANTS: Record<HypergridReward, [number, number, number]> = {
  standard: [1e-3, 0.5, 2.0],
  hard: [1e-4, 1.0, 3.0],
};

/**
 * Hypergrid (docs/design.md §5): states are points of {0..H−1}^D, s0 = 0; action d increments
 * coordinate d (masked at H−1), action D exits (always allowed). Backward action d
 * decrements coordinate d (allowed where x_d > 0).
 */
export class Hypergrid implements EnumerableEnv {
  readonly name = 'hypergrid';
  readonly stateDim: number;
  readonly nActions: number;
  readonly exitAction: number;
  readonly nBackActions: number;
  readonly maxSteps: number;
  readonly inputDim: number;
  readonly nnz: number;
  private readonly r: [number, number, number];

  constructor(readonly config: HypergridConfig) {
    const { ndim, height, reward } = config;
    usage(Number.isInteger(ndim) && ndim >= 1, `ndim must be an integer ≥ 1 (got ${ndim})`);
    usage(Number.isInteger(height) && height >= 2, `height must be an integer ≥ 2 (got ${height})`);
    usage(reward in REWARD_CONSTANTS, `reward must be standard or hard (got ${reward})`);
    this.stateDim = ndim;
    this.nActions = ndim + 1;
    this.exitAction = ndim;
    this.nBackActions = ndim;
    this.maxSteps = ndim * (height - 1) + 1;
    this.inputDim = ndim * height;
    this.nnz = ndim;
    this.r = REWARD_CONSTANTS[reward];
  }

  get ndim(): number {
    return this.config.ndim;
  }
  get height(): number {
    return this.config.height;
  }

  initialStates(n: number): Int32Array {
    return new Int32Array(n * this.stateDim);
  }

  forwardMask(states: Int32Array, n: number, out: Uint8Array): void {
    const D = this.ndim,
      A = this.nActions,
      top = this.height - 1;
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < D; d++) out[i * A + d] = states[i * D + d] < top ? 1 : 0;
      out[i * A + D] = 1;
    }
  }

  backwardMask(states: Int32Array, n: number, out: Uint8Array): void {
    const D = this.ndim;
    for (let i = 0; i < n * D; i++) out[i] = states[i] > 0 ? 1 : 0;
  }

  step(states: Int32Array, actions: Int32Array, n: number, out: Int32Array): void {
    const D = this.ndim;
    if (out !== states) out.set(states.subarray(0, n * D));
    for (let i = 0; i < n; i++) {
      const a = actions[i];
      if (a < 0 || a >= D || out[i * D + a] >= this.height - 1) throw new Error(`invalid hypergrid action ${a}`);
      out[i * D + a]++;
    }
  }

  backwardStep(states: Int32Array, backActions: Int32Array, n: number, out: Int32Array): void {
    const D = this.ndim;
    if (out !== states) out.set(states.subarray(0, n * D));
    for (let i = 0; i < n; i++) {
      const a = backActions[i];
      if (a < 0 || a >= D || out[i * D + a] <= 0) throw new Error(`invalid hypergrid backward action ${a}`);
      out[i * D + a]--;
    }
  }

  backwardActionOf(action: number): number {
    return action;
  }

  isInitial(states: Int32Array, i: number): boolean {
    for (let d = 0; d < this.ndim; d++) if (states[i * this.ndim + d] !== 0) return false;
    return true;
  }

  /** log R of docs/design.md §5: R0 + R1·∏[0.25 < |x/(H−1) − 0.5|] + R2·∏[0.3 < |x/(H−1) − 0.5| < 0.4]. */
  logReward(states: Int32Array, n: number, out: Float64Array): void {
    const D = this.ndim,
      top = this.height - 1;
    const [r0, r1, r2] = this.r;
    for (let i = 0; i < n; i++) {
      let outer = 1,
        ring = 1;
      for (let d = 0; d < D; d++) {
        const ax = Math.abs(states[i * D + d] / top - 0.5);
        if (!(ax > 0.25)) outer = 0;
        if (!(ax > 0.3 && ax < 0.4)) ring = 0;
      }
      out[i] = Math.log(r0 + r1 * outer + r2 * ring);
    }
  }

  encode(states: Int32Array, n: number, out: Int32Array): void {
    const D = this.ndim,
      H = this.height;
    for (let i = 0; i < n * D; i++) out[i] = (i % D) * H + states[i];
  }

  numStates(): number {
    return this.height ** this.ndim;
  }

  /** Sorted by coordinate sum (a topological order), ties by index. */
  allStates(): Int32Array {
    const D = this.ndim,
      H = this.height,
      N = this.numStates();
    const order = Array.from({ length: N }, (_, k) => k);
    const sum = (k: number) => {
      let s = 0;
      for (let d = 0; d < D; d++, k = Math.floor(k / H)) s += k % H;
      return s;
    };
    const sums = order.map(sum);
    order.sort((a, b) => sums[a] - sums[b] || a - b);
    const out = new Int32Array(N * D);
    this.rankOf = new Int32Array(N);
    order.forEach((k, row) => {
      this.rankOf![k] = row;
      for (let d = 0, kk = k; d < D; d++, kk = Math.floor(kk / H)) out[row * D + d] = kk % H;
    });
    return out;
  }

  private rankOf?: Int32Array;

  indexOf(states: Int32Array, i: number): number {
    if (!this.rankOf) this.allStates();
    let k = 0;
    for (let d = this.ndim - 1; d >= 0; d--) k = k * this.height + states[i * this.ndim + d];
    return this.rankOf![k];
  }
}
