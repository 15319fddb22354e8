import { Hypergrid, type HypergridReward } from '../envs/hypergrid.js';
import { hypergridLogZ } from '../envs/hypergrid-oracle.js';
import { klDivergence, totalVariation } from '../gfn/exact.js';
import { EmpiricalTracker } from '../gfn/evaluate.js';
import type { BenchSummary, MetricsRecord } from './hypergrid.js';
import { Rng } from '../core/rng.js';
import { logSumExp } from '../core/math.js';
import { HypergridMhKernel, MetropolisHastings, hypergridProposal } from '../mcmc/mh.js';
import { peakRssMB, runBenchLoop } from './run-loop.js';

export interface HypergridMhOptions {
  ndim: number;
  height: number;
  reward: HypergridReward;
  iterations: number;
  /** Parallel chains; each iteration proposes one move per chain (the analogue of a batch of trajectories). */
  chains: number;
  seed: number;
  evalEvery: number;
}

/** The hypergrid bench summary (same fields as the GFlowNet objectives) plus MCMC counters. */
export type MhBenchSummary = Omit<BenchSummary, 'algo' | 'engine'> & {
  algo: 'mh';
  engine: 'none';
  chains: number;
  rewardEvaluations: number;
  acceptanceRate: number;
  /** TV of the empirical distribution of the last 200k visited states (all chains) against R/Z. */
  tvEmpirical: number;
};

export type MhMetricsRecord = MetricsRecord & { rewardEvaluations: number; acceptanceRate: number };

/**
 * Metropolis–Hastings baseline on the hypergrid (docs/design.md §4 mcmc/): `chains` chains
 * started at s0 = 0 (where GFlowNet trajectories start), ±1 proposals on a random
 * coordinate. Metrics match the GFlowNet bench:
 * - tvExact: TV between R/Z and the exact marginal law of one chain after t steps,
 *   p_t = δ_{s0}·K^t, propagated through the exact MH kernel (not the empirical histogram);
 * - l1Empirical: mean |empirical − R/Z| over the last 200k visited states of all chains
 *   (the GFlowNet bench counts its last 200k sampled terminal states the same way).
 * The x-axis that puts both on one plot is `rewardEvaluations`: one per proposal that
 * stays on the grid (plus one per chain at start); a GFlowNet spends one per trajectory.
 */
export function runHypergridMh(o: HypergridMhOptions, onMetrics?: (m: MhMetricsRecord) => void): MhBenchSummary {
  const env = new Hypergrid({ ndim: o.ndim, height: o.height, reward: o.reward });
  const D = o.ndim,
    H = o.height,
    N = H ** D;
  // every state by index k = Σ x_d·H^d (the kernel's order)
  const all = new Int32Array(N * D);
  for (let k = 0; k < N; k++) for (let d = 0, kk = k; d < D; d++, kk = Math.floor(kk / H)) all[k * D + d] = kk % H;
  const logR = new Float64Array(N);
  env.logReward(all, N, logR);
  const logZ = logSumExp(logR);
  const target = logR.map((l) => Math.exp(l - logZ));
  const kernel = new HypergridMhKernel(D, H, logR);
  const marginal = new Float64Array(N);
  marginal[0] = 1;

  const rng = new Rng(o.seed);
  const mh = new MetropolisHastings(
    (s, n, out) => env.logReward(s, n, out),
    hypergridProposal(D, H),
    rng,
    env.initialStates(o.chains),
    o.chains,
  );
  const tracker = new EmpiricalTracker(N);
  const indexOf = (s: Int32Array, i: number) => {
    let k = 0;
    for (let d = D - 1; d >= 0; d--) k = k * H + s[i * D + d];
    return k;
  };

  const { seconds, cpuSeconds } = runBenchLoop(o.iterations, o.evalEvery, () => (mh.step(), { loss: NaN }), {
    observe: () => {
      for (let i = 0; i < o.chains; i++) tracker.add(indexOf(mh.states, i));
      kernel.apply(marginal); // exact law after `it` steps (evaluation; not timed)
    },
    record: onMetrics
      ? (it, _loss, trainSeconds) =>
          onMetrics({
            iteration: it,
            trajectories: it * o.chains,
            loss: NaN,
            tvExact: totalVariation(marginal, target),
            l1Empirical: tracker.meanAbsError(target),
            logZ: NaN,
            trainSeconds,
            rewardEvaluations: mh.rewardEvaluations,
            acceptanceRate: mh.accepted / mh.proposals,
          })
      : undefined,
  });
  const l1 = tracker.meanAbsError(target);
  return {
    algo: 'mh',
    engine: 'none',
    ndim: D,
    height: H,
    reward: o.reward,
    seed: o.seed,
    iterations: o.iterations,
    trajectories: o.iterations * o.chains,
    seconds,
    cpuSeconds,
    itPerSec: o.iterations / seconds,
    trajPerSec: (o.iterations * o.chains) / seconds,
    itPerCpuSec: o.iterations / cpuSeconds,
    tvExact: totalVariation(marginal, target),
    l1Empirical: l1,
    kl: klDivergence(target, marginal),
    logZ: null,
    logZTrue: hypergridLogZ(env.config),
    peakRssMB: peakRssMB(),
    chains: o.chains,
    rewardEvaluations: mh.rewardEvaluations,
    acceptanceRate: mh.accepted / mh.proposals,
    // mean |·| over N states ×N = Σ|·|; TV is half of it
    tvEmpirical: (l1 * N) / 2,
  };
}
