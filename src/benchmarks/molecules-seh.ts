import { readFileSync } from 'node:fs';
import { SehEnv } from '../envs/seh-env.js';
import { SEH_DATA_DIR, type BlockState } from '../envs/seh-blocks.js';
import { sehLogReward } from '../envs/seh-proxy.js';
import { buildTrainer, REFERENCE_TRAINER_DEFAULTS, type Algo, type TrainerOptions } from './build-trainer.js';
import { estimateLogProb } from '../metrics/logprob.js';
import { pearson } from '../metrics/correlation.js';
import { packFingerprint, tanimoto } from '../metrics/modes.js';
import type { Engine } from '../nn/factory.js';
import { Rng } from '../core/rng.js';
import { usage } from '../core/errors.js';
import { peakRssMB, runBenchLoop } from './run-loop.js';

/** The paper's β values for the sEH task (Pearson per β; modes at β = 10). */
export const SEH_BETAS = [4, 8, 10, 16] as const;

export interface SehBenchOptions extends TrainerOptions {
  beta: number;
  evalEvery: number;
  orders: number;
  /** Test molecules (the first `testSize` of the 950 benchmark test molecules). */
  testSize: number;
  /** A sample is a mode candidate when max(proxy, 0.1) ≥ this (the original code: 7.0). */
  proxyThreshold: number;
  maxSimilarity: number;
}

export const SEH_BENCH_DEFAULTS: Omit<SehBenchOptions, 'algo'> = {
  ...REFERENCE_TRAINER_DEFAULTS,
  beta: 10,
  iterations: 1000,
  epsilon: 0.05, // the original code's random_action_prob
  evalEvery: 100,
  orders: 10,
  testSize: 950,
  proxyThreshold: 7,
  maxSimilarity: 0.7,
};

export interface SehMetrics {
  iteration: number;
  rewardEvaluations: number;
  modes: number;
  candidates: number;
  meanProxy: number;
  maxProxy: number;
  loss: number;
  trainSeconds: number;
}

export interface SehSummary {
  benchmark: 'molecules';
  reward: 'seh';
  algo: Algo;
  engine: Engine;
  beta: number;
  seed: number;
  iterations: number;
  rewardEvaluations: number;
  seconds: number;
  cpuSeconds: number;
  itPerSec: number;
  itPerCpuSec: number;
  modes: number;
  candidates: number;
  proxyThreshold: number;
  maxSimilarity: number;
  /** Pearson(log R, log P̂_θ) on the benchmark's test molecules. */
  pearson: number;
  testSize: number;
  orders: number;
  uniqueStates: number;
  topModes: { smiles: string; proxy: number }[];
  curve: { rewardEvaluations: number; modes: number }[];
  evalSeconds: number;
  peakRssMB: number;
}

interface Candidate {
  smiles: string;
  proxy: number;
  fp: Uint32Array;
}

/**
 * compute_num_of_modes of the original code: every sample since the start with
 * max(proxy, 0.1) ≥ threshold, sorted by score (descending), taken greedily; a candidate is
 * a new mode when its Tanimoto similarity (RDKFingerprint) to every mode is < maxSimilarity.
 */
export function greedyModes(cands: Candidate[], maxSimilarity: number): Candidate[] {
  const sorted = [...cands].sort((a, b) => b.proxy - a.proxy);
  const modes: Candidate[] = [];
  for (const c of sorted) if (modes.every((m) => tanimoto(m.fp, c.fp) < maxSimilarity)) modes.push(c);
  return modes;
}

/** The 950 test molecules of the original benchmark (some_mols_U_1k), as block states. */
export function sehTestStates(): (BlockState & { proxy: number })[] {
  return readFileSync(SEH_DATA_DIR + 'reference_molecules.jsonl', 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => String(r.source).startsWith('some_mols_U_1k'))
    .map((r) => ({ blockidxs: r.blockidxs, jbonds: r.jbonds, stems: r.stems, proxy: r.proxy_output }));
}

/**
 * The sEH molecule benchmark (Bengio et al. 2021 as used by Tiapkin et al. 2024): trains one
 * objective on the block MDP with R = (max(proxy, 0.1)/8)^β, counts Tanimoto-separated modes
 * with proxy ≥ 7 over training and, at the end, Pearson(log R, log P̂_θ) on the test molecules.
 */
export async function runSehBench(o: SehBenchOptions, onMetrics?: (m: SehMetrics) => void): Promise<SehSummary> {
  usage(o.testSize >= 2 && o.testSize <= 950, `test-size must be in [2, 950] (got ${o.testSize})`);
  const env = await SehEnv.create(o.beta);
  const rng = new Rng(o.seed + 1_000_003);
  const t = await buildTrainer(env, { ...o, learnedPB: false }, rng);
  const cands: Candidate[] = [];
  const curve: SehSummary['curve'] = [];
  let evals = 0,
    pSum = 0,
    pN = 0,
    pMax = -Infinity;
  let modes: Candidate[] = [];
  const { seconds, cpuSeconds } = runBenchLoop(o.iterations, o.evalEvery, () => t.step(), {
    observe: (r) => {
      evals += r.trajectories;
      for (let b = 0; b < r.trajectories; b++) {
        const s = env.scorer.score(env.decode(r.terminals, b));
        pSum += s.proxy;
        pN++;
        pMax = Math.max(pMax, s.proxy);
        if (Math.max(s.proxy, 0.1) >= o.proxyThreshold) cands.push({ smiles: s.smiles, proxy: s.proxy, fp: packFingerprint(s.fp) });
      }
    },
    record: (it, loss, trainSeconds) => {
      modes = greedyModes(cands, o.maxSimilarity);
      curve.push({ rewardEvaluations: evals, modes: modes.length });
      onMetrics?.({
        iteration: it,
        rewardEvaluations: evals,
        modes: modes.length,
        candidates: cands.length,
        meanProxy: pSum / pN,
        maxProxy: pMax,
        loss,
        trainSeconds,
      });
      pSum = pN = 0;
    },
  });
  const uniqueStates = env.scorer.calls;
  const e0 = performance.now();
  const test = sehTestStates().slice(0, o.testSize);
  const xs = new Int32Array(test.length * env.stateDim);
  test.forEach((s, i) => env.encodeState(s, xs, i));
  const logR = Float64Array.from(test, (s) => sehLogReward(s.proxy, o.beta));
  const logP = estimateLogProb(env, t.net, xs, test.length, o.orders, new Rng(o.seed + 3_000_017), t.temperature);
  const rho = pearson(logR, logP);
  t.dispose();
  return {
    benchmark: 'molecules',
    reward: 'seh',
    algo: o.algo,
    engine: o.engine,
    beta: o.beta,
    seed: o.seed,
    iterations: o.iterations,
    rewardEvaluations: evals,
    seconds,
    cpuSeconds,
    itPerSec: o.iterations / seconds,
    itPerCpuSec: o.iterations / cpuSeconds,
    modes: modes.length,
    candidates: cands.length,
    proxyThreshold: o.proxyThreshold,
    maxSimilarity: o.maxSimilarity,
    pearson: rho,
    testSize: test.length,
    orders: o.orders,
    uniqueStates,
    topModes: modes.slice(0, 5).map((m) => ({ smiles: m.smiles, proxy: m.proxy })),
    curve,
    evalSeconds: (performance.now() - e0) / 1000,
    peakRssMB: peakRssMB(),
  };
}
