import type { Rng } from '../core/rng.js';

/**
 * A symmetric proposal on a discrete space of Int32 state rows: q(x'|x) = q(x|x'), so the
 * Metropolis–Hastings acceptance ratio reduces to R(x')/R(x). A proposal may decline to
 * move (valid[i] = 0) — e.g. a hypergrid step off the grid. Keeping that as "propose x
 * itself" preserves symmetry (q(x|x) is the probability of an off-grid draw; it is never
 * compared with another state), and it costs no reward evaluation.
 */
export interface SymmetricProposal {
  readonly stateDim: number;
  propose(states: Int32Array, n: number, out: Int32Array, valid: Uint8Array, rng: Rng): void;
}

/** log R of n state rows (env.logReward has exactly this shape). */
export type LogTarget = (states: Int32Array, n: number, out: Float64Array) => void;

/**
 * `chains` independent Metropolis–Hastings chains stepped in lockstep (one proposal per
 * chain per `step()`), targeting π ∝ exp(logTarget). Counts reward evaluations: one per
 * proposal that moves (the current state's log R is cached), plus one per chain at start.
 */
export class MetropolisHastings {
  readonly states: Int32Array;
  readonly logR: Float64Array;
  rewardEvaluations = 0;
  proposals = 0;
  accepted = 0;
  private readonly prop: Int32Array;
  private readonly valid: Uint8Array;
  private readonly moved: Int32Array;
  private readonly movedStates: Int32Array;
  private readonly movedLogR: Float64Array;

  constructor(
    private readonly logTarget: LogTarget,
    private readonly proposal: SymmetricProposal,
    private readonly rng: Rng,
    initial: Int32Array,
    readonly chains: number,
  ) {
    const D = proposal.stateDim;
    if (initial.length !== chains * D) throw new Error(`initial states: expected ${chains}×${D} values, got ${initial.length}`);
    this.states = Int32Array.from(initial);
    this.logR = new Float64Array(chains);
    logTarget(this.states, chains, this.logR);
    this.rewardEvaluations = chains;
    this.prop = new Int32Array(chains * D);
    this.valid = new Uint8Array(chains);
    this.moved = new Int32Array(chains);
    this.movedStates = new Int32Array(chains * D);
    this.movedLogR = new Float64Array(chains);
  }

  /** One MH transition of every chain: propose x', accept with min(1, R(x')/R(x)). */
  step(): void {
    const D = this.proposal.stateDim,
      C = this.chains;
    this.proposal.propose(this.states, C, this.prop, this.valid, this.rng);
    let m = 0;
    for (let i = 0; i < C; i++) {
      if (!this.valid[i]) continue;
      this.moved[m] = i;
      this.movedStates.set(this.prop.subarray(i * D, i * D + D), m * D);
      m++;
    }
    this.logTarget(this.movedStates, m, this.movedLogR);
    this.rewardEvaluations += m;
    this.proposals += C;
    for (let j = 0; j < m; j++) {
      const i = this.moved[j];
      const logA = this.movedLogR[j] - this.logR[i];
      // u < exp(logA) with u ∈ [0, 1): always accepts when logA ≥ 0
      if (logA >= 0 || this.rng.uniform() < Math.exp(logA)) {
        this.states.set(this.movedStates.subarray(j * D, j * D + D), i * D);
        this.logR[i] = this.movedLogR[j];
        this.accepted++;
      }
    }
  }
}

/**
 * Hypergrid proposal: pick a coordinate d uniformly and a direction ±1 uniformly; a move
 * off {0..H−1} is declined (the chain stays). q(x'|x) = 1/(2D) for every neighbour, both
 * ways, so it is symmetric.
 */
export function hypergridProposal(ndim: number, height: number): SymmetricProposal {
  return {
    stateDim: ndim,
    propose(states, n, out, valid, rng) {
      out.set(states.subarray(0, n * ndim));
      for (let i = 0; i < n; i++) {
        const r = rng.int(2 * ndim);
        const d = r >> 1,
          delta = r & 1 ? 1 : -1;
        const v = states[i * ndim + d] + delta;
        valid[i] = v >= 0 && v < height ? 1 : 0;
        if (valid[i]) out[i * ndim + d] = v;
      }
    },
  };
}

/**
 * The exact transition kernel of MH with `hypergridProposal`, applied to a distribution
 * over all H^D states (index k = Σ x_d·H^d): p ← p·K. Used for the exact marginal law of
 * the chain (tvExact) and in tests. Acceptance probabilities are precomputed per edge, so
 * one application is O(H^D · D).
 */
export class HypergridMhKernel {
  readonly numStates: number;
  private readonly acc: Float64Array; // [N × 2D]: acceptance of move (d, ±1), 0 off the grid
  private readonly nbr: Int32Array; // [N × 2D]: neighbour index, −1 off the grid
  private readonly next: Float64Array;

  constructor(
    readonly ndim: number,
    readonly height: number,
    logR: Float64Array,
  ) {
    const D = ndim,
      H = height;
    const N = (this.numStates = H ** D);
    if (logR.length !== N) throw new Error('logR must be indexed by k = Σ x_d·H^d');
    this.acc = new Float64Array(N * 2 * D);
    this.nbr = new Int32Array(N * 2 * D).fill(-1);
    for (let k = 0; k < N; k++) {
      for (let d = 0, stride = 1; d < D; d++, stride *= H) {
        const x = Math.floor(k / stride) % H;
        for (let s = 0; s < 2; s++) {
          const delta = s === 1 ? 1 : -1,
            v = x + delta;
          if (v < 0 || v >= H) continue;
          const k2 = k + delta * stride;
          this.nbr[k * 2 * D + 2 * d + s] = k2;
          this.acc[k * 2 * D + 2 * d + s] = Math.min(1, Math.exp(logR[k2] - logR[k]));
        }
      }
    }
    this.next = new Float64Array(N);
  }

  apply(p: Float64Array): void {
    const { numStates: N, acc, nbr, next } = this;
    const E = 2 * this.ndim,
      q = 1 / E;
    next.fill(0);
    for (let k = 0; k < N; k++) {
      const pk = p[k];
      if (pk === 0) continue;
      let stay = 1;
      for (let e = k * E; e < (k + 1) * E; e++) {
        if (nbr[e] < 0) continue; // declined proposal: the mass stays (counted in `stay`)
        const m = q * acc[e];
        next[nbr[e]] += pk * m;
        stay -= m;
      }
      next[k] += pk * stay;
    }
    p.set(next);
  }
}
