import { MoleculeEnv, MOLECULE_DEFAULTS, type MoleculeConfig } from '../envs/molecule.js';
import { type BenchProgress, buildTrainer, REFERENCE_TRAINER_DEFAULTS, type TrainerOptions } from './build-trainer.js';
import { ALGOS, type Algo } from './build-trainer.js';
import { estimateLogProb } from '../metrics/logprob.js';
import { pearson } from '../metrics/correlation.js';
import { TanimotoModes } from '../metrics/modes.js';
import type { Engine } from '../nn/factory.js';
import { Rng } from '../core/rng.js';
import { peakRssMB, runBenchLoop } from './run-loop.js';

export const MOLECULE_ALGOS = ALGOS;

export interface MoleculeBenchOptions extends TrainerOptions, MoleculeConfig {
  evalEvery: number;
  orders: number;
  testSize: number;
  /** A sample can become a mode when r(x) = R(x)^{1/β} ≥ this (before the exponent). */
  rewardThreshold: number;
  maxSimilarity: number;
}

export const MOLECULE_BENCH_DEFAULTS: Omit<MoleculeBenchOptions, 'algo'> = {
  ...REFERENCE_TRAINER_DEFAULTS,
  ...MOLECULE_DEFAULTS,
  iterations: 1000,
  epsilon: 0.01,
  evalEvery: 100,
  orders: 10,
  testSize: 1000,
  rewardThreshold: 0.75,
  maxSimilarity: 0.7,
};

export interface MoleculeMetrics {
  iteration: number;
  rewardEvaluations: number;
  modes: number;
  meanLogR: number;
  loss: number;
  trainSeconds: number;
}

export interface MoleculeSummary {
  benchmark: 'molecules';
  algo: Algo;
  engine: Engine;
  beta: number;
  sites: number;
  fragments: number;
  seed: number;
  iterations: number;
  rewardEvaluations: number;
  seconds: number;
  cpuSeconds: number;
  itPerSec: number;
  modes: number;
  rewardThreshold: number;
  maxSimilarity: number;
  /** Pearson(log R, log P̂_θ) on the test set. */
  pearson: number;
  testSize: number;
  orders: number;
  uniqueMolecules: number;
  invalid: number;
  topModes: { smiles: string; reward: number }[];
  curve: { rewardEvaluations: number; modes: number }[];
  evalSeconds: number;
  peakRssMB: number;
}

/**
 * Random decorations for the test set: the number of substituents uniform in 0..S, then
 * distinct random sites and uniform fragments (seeded; independent of training).
 */
export function moleculeTestSet(env: MoleculeEnv, count: number, rng: Rng): Int32Array {
  const S = env.stateDim;
  const xs = new Int32Array(count * S).fill(-1);
  const perm = Int32Array.from({ length: S }, (_, j) => j);
  for (let i = 0; i < count; i++) {
    const f = rng.int(S + 1);
    for (let t = 0; t < f; t++) {
      const u = t + rng.int(S - t);
      [perm[t], perm[u]] = [perm[u], perm[t]];
      xs[i * S + perm[t]] = rng.int(env.values);
    }
  }
  return xs;
}

/**
 * Molecule benchmark (docs/design.md §5): trains one objective on the fragment DAG, counts
 * Tanimoto-separated modes (greedy, similarity < 0.7 on Morgan r=2 2048-bit fingerprints)
 * among samples with r ≥ threshold over training, and Pearson(log R, log P̂_θ) at the end.
 */
export async function runMoleculeBench(
  o: MoleculeBenchOptions,
  onMetrics?: (m: MoleculeMetrics) => void,
  progress?: BenchProgress,
): Promise<MoleculeSummary> {
  progress?.onPhase?.('building the fragment DAG and loading RDKit');
  const env = await MoleculeEnv.create({ beta: o.beta, sites: o.sites, fragments: o.fragments });
  const rng = new Rng(o.seed + 1_000_003);
  const t = await buildTrainer(env, o, rng);
  const modes = new TanimotoModes(o.rewardThreshold, o.maxSimilarity);
  const curve: MoleculeSummary['curve'] = [];
  let evals = 0,
    logRSum = 0,
    logRN = 0;
  const { seconds, cpuSeconds } = runBenchLoop(o.iterations, o.evalEvery, () => t.step(), {
    before: (i) => progress?.onIteration?.(i),
    observe: (r) => {
      evals += r.trajectories;
      for (let b = 0; b < r.trajectories; b++) {
        const m = env.info(r.terminals, b);
        modes.offer(m.smiles, m.fp, Math.exp(m.logr));
        logRSum += r.logR[b];
        logRN++;
      }
    },
    record: (it, loss, trainSeconds) => {
      curve.push({ rewardEvaluations: evals, modes: modes.count });
      onMetrics?.({ iteration: it, rewardEvaluations: evals, modes: modes.count, meanLogR: logRSum / logRN, loss, trainSeconds });
      logRSum = logRN = 0;
    },
  });
  const uniqueMolecules = env.rdkitCalls;
  progress?.onIteration?.(o.iterations);
  const e0 = performance.now();
  const xs = moleculeTestSet(env, o.testSize, new Rng(o.seed + 2_000_003));
  const logR = new Float64Array(o.testSize);
  env.logReward(xs, o.testSize, logR);
  progress?.onPhase?.(`estimating log P̂ on ${o.testSize} test objects × ${o.orders} backward orders`);
  const logP = estimateLogProb(
    env,
    t.net,
    xs,
    o.testSize,
    o.orders,
    new Rng(o.seed + 3_000_017),
    t.temperature,
    undefined,
    progress?.onEval,
  );
  const rho = pearson(logR, logP);
  t.dispose();
  return {
    benchmark: 'molecules',
    algo: o.algo,
    engine: o.engine,
    beta: o.beta,
    sites: o.sites,
    fragments: o.fragments,
    seed: o.seed,
    iterations: o.iterations,
    rewardEvaluations: evals,
    seconds,
    cpuSeconds,
    itPerSec: o.iterations / seconds,
    modes: modes.count,
    rewardThreshold: o.rewardThreshold,
    maxSimilarity: o.maxSimilarity,
    pearson: rho,
    testSize: o.testSize,
    orders: o.orders,
    uniqueMolecules,
    invalid: env.invalidCount,
    topModes: [...modes.modes]
      .sort((a, b) => b.reward - a.reward)
      .slice(0, 5)
      .map((m) => ({ smiles: m.key, reward: m.reward })),
    curve,
    evalSeconds: (performance.now() - e0) / 1000,
    peakRssMB: peakRssMB(),
  };
}
