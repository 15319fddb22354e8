import { Hypergrid, type HypergridReward } from '../envs/hypergrid.js';
import { hypergridLogZ } from '../envs/hypergrid-oracle.js';
import { buildDag, klDivergence, targetDistribution, terminalDistribution, totalVariation } from '../gfn/exact.js';
import { EmpiricalTracker, policyOnDag } from '../gfn/evaluate.js';
import { buildTrainer, REFERENCE_TRAINER_DEFAULTS, type Algo, type TrainerOptions } from './build-trainer.js';
import type { Engine } from '../nn/factory.js';
import { Rng } from '../core/rng.js';
import { peakRssMB, runBenchLoop } from './run-loop.js';

export interface HypergridBenchOptions extends Omit<TrainerOptions, 'perBeta' | 'learningStarts' | 'learnedPB'> {
  ndim: number;
  height: number;
  reward: HypergridReward;
  /** Backward policy of TB/DB/SubTB: learned (a head tied to the forward torso, as the reference code) or uniform. Soft-RL objectives use uniform P_B. */
  pb: 'learned' | 'uniform';
  evalEvery: number;
}

/** Reference hyperparameters of docs/design.md §5. */
export const HYPERGRID_DEFAULTS: Omit<HypergridBenchOptions, 'algo'> = {
  ...REFERENCE_TRAINER_DEFAULTS,
  ndim: 4,
  height: 8,
  reward: 'standard',
  pb: 'learned',
  evalEvery: 100,
};

export interface MetricsRecord {
  iteration: number;
  trajectories: number;
  loss: number;
  tvExact: number;
  l1Empirical: number;
  logZ: number;
  trainSeconds: number;
}

export interface BenchSummary {
  algo: Algo;
  engine: Engine;
  ndim: number;
  height: number;
  reward: HypergridReward;
  seed: number;
  iterations: number;
  trajectories: number;
  seconds: number; // wall time of training (evaluation excluded)
  cpuSeconds: number; // user + system CPU time of training
  itPerSec: number;
  trajPerSec: number;
  itPerCpuSec: number;
  tvExact: number;
  l1Empirical: number;
  kl: number; // KL(R/Z ‖ P_T), exact
  logZ: number | null;
  logZTrue: number;
  peakRssMB: number;
}

export interface BenchHooks {
  onIteration?(iteration: number, loss: number): void;
  onMetrics?(m: MetricsRecord): void;
}

/**
 * Trains one objective on the hypergrid and measures it against the exact oracle:
 * exact TV of the policy's terminal distribution (forward DP over all states), the
 * empirical L1 of the last 200k visited terminal states, and throughput (training only).
 */
export async function runHypergridBench(o: HypergridBenchOptions, hooks: BenchHooks = {}): Promise<BenchSummary> {
  const env = new Hypergrid({ ndim: o.ndim, height: o.height, reward: o.reward });
  const dag = buildDag(env);
  const target = targetDistribution(dag);
  const logZTrue = hypergridLogZ(env.config);
  const rng = new Rng(o.seed);
  const trainer = await buildTrainer(env, { ...o, perBeta: [0, 1], learningStarts: 16, learnedPB: o.pb === 'learned' }, rng);
  const { net, temperature } = trainer;
  const logZOf = () => trainer.logZ();

  const tracker = new EmpiricalTracker(dag.numStates);
  const evaluate = () => {
    const pT = terminalDistribution(dag, policyOnDag(env, net, dag, temperature));
    return { pT, tv: totalVariation(pT, target) };
  };
  const onMetrics = hooks.onMetrics;
  const { seconds, cpuSeconds } = runBenchLoop(o.iterations, o.evalEvery, () => trainer.step(), {
    observe: (r, it) => {
      for (let b = 0; b < r.trajectories; b++) tracker.add(env.indexOf(r.terminals, b));
      hooks.onIteration?.(it, r.loss);
    },
    record: onMetrics
      ? (it, loss, trainSeconds) =>
          onMetrics({
            iteration: it,
            trajectories: it * o.batch,
            loss,
            tvExact: evaluate().tv,
            l1Empirical: tracker.meanAbsError(target),
            logZ: logZOf() ?? NaN,
            trainSeconds,
          })
      : undefined,
  });
  const { pT, tv } = evaluate();
  const logZ = logZOf();
  trainer.dispose();
  return {
    algo: o.algo,
    engine: o.engine,
    ndim: o.ndim,
    height: o.height,
    reward: o.reward,
    seed: o.seed,
    iterations: o.iterations,
    trajectories: o.iterations * o.batch,
    seconds,
    cpuSeconds,
    itPerSec: o.iterations / seconds,
    trajPerSec: (o.iterations * o.batch) / seconds,
    itPerCpuSec: o.iterations / cpuSeconds,
    tvExact: tv,
    l1Empirical: tracker.meanAbsError(target),
    kl: klDivergence(target, pT),
    logZ,
    logZTrue,
    peakRssMB: peakRssMB(),
  };
}
