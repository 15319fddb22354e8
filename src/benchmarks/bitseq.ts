import { Bitseq, bitseqTestSet, type BitseqConfig } from '../envs/bitseq.js';
import {
  ALGOS,
  type BenchProgress,
  buildTrainer,
  REFERENCE_TRAINER_DEFAULTS,
  type BuiltTrainer,
  type HeadKind,
  type TrainerOptions,
} from './build-trainer.js';
import type { Engine } from '../nn/factory.js';
import { estimateLogProb } from '../metrics/logprob.js';
import { spearman } from '../metrics/correlation.js';
import { MetropolisHastings, type SymmetricProposal } from '../mcmc/mh.js';
import { Rng } from '../core/rng.js';
import { peakRssMB, runBenchLoop } from './run-loop.js';

export const BITSEQ_ALGOS = [...ALGOS, 'mh'] as const;
export type BitseqAlgo = (typeof BITSEQ_ALGOS)[number];

export interface BitseqBenchOptions extends Omit<TrainerOptions, 'algo'>, BitseqConfig {
  algo: BitseqAlgo;
  evalEvery: number;
  /** M backward orders per test string for log P̂_θ. */
  orders: number;
  /** Test set from the first `testModes` modes (all by default: nModes·n strings). */
  testModes: number;
  /** A mode counts as found once a sample is within this Hamming distance (docs/design.md §5: 30). */
  modeRadius: number;
}

/** Reference-code hyperparameters (docs/design.md §5 soft-RL settings where the bitseq reference is silent). */
export const BITSEQ_BENCH_DEFAULTS: Omit<BitseqBenchOptions, 'algo'> = {
  ...REFERENCE_TRAINER_DEFAULTS,
  n: 120,
  k: 4,
  nModes: 60,
  beta: 2,
  // the bitseq reference code's settings where they differ from docs/design.md §5's
  subtbLambda: 1.9,
  epsilon: 1e-3,
  perAlpha: 0.9,
  perBeta: [0.1, 0.1],
  l0: -25,
  learningStarts: 50,
  evalEvery: 100,
  orders: 10,
  testModes: 60,
  modeRadius: 30,
};

/**
 * The CLI's policy head when --head is not given. TB/DB/SubTB: two-stage from k = 8, where it
 * is several times faster than the dense head and ranks the test set at least as well at equal
 * iterations (docs/benchmarks.md, "Scaling with k"); dense below, where the joint softmax is
 * small. Soft-RL needs Q over every joint action, so it keeps the dense head, factored from k = 10.
 */
export function defaultBitseqHead(algo: BitseqAlgo, k: number): HeadKind {
  if (algo === 'tb' || algo === 'db' || algo === 'subtb') return k >= 8 ? 'two-stage' : 'dense';
  return k >= 10 && algo !== 'mh' ? 'factored' : 'dense';
}

export interface BitseqMetrics {
  iteration: number;
  rewardEvaluations: number;
  modesFound: number;
  meanLogR: number; // mean log R of the samples since the previous record
  loss: number;
  trainSeconds: number;
}

export interface BitseqSummary {
  benchmark: 'bitseq';
  algo: BitseqAlgo;
  engine: Engine | 'none';
  /** Output head: one unit per (slot, word), factored (src/nn/factored-head.ts) with its rank, or two-stage (src/gfn/two-stage.ts). */
  head: HeadKind;
  headRank: number | null;
  n: number;
  k: number;
  beta: number;
  nModes: number;
  seed: number;
  iterations: number;
  rewardEvaluations: number;
  seconds: number;
  cpuSeconds: number;
  itPerSec: number;
  modesFound: number;
  modeRadius: number;
  /** Spearman(log R, log P̂_θ) on the test set; null for MCMC (no density estimate). */
  spearman: number | null;
  testSize: number;
  orders: number;
  evalSeconds: number;
  curve: { rewardEvaluations: number; modesFound: number }[];
  /** Peak RSS of the process when training ended (before the evaluation's buffers), and at the end. */
  trainPeakRssMB: number;
  peakRssMB: number;
}

/**
 * Bit-sequence benchmark (docs/design.md §5): trains one objective (or runs MH chains) and
 * reports modes found over training — a mode is found once any sample lies within
 * `modeRadius` of it — and, at the end, Spearman(log R, log P̂_θ) on the test set.
 */
export async function runBitseqBench(
  o: BitseqBenchOptions,
  onMetrics?: (m: BitseqMetrics) => void,
  progress?: BenchProgress,
): Promise<BitseqSummary> {
  const env = new Bitseq({ n: o.n, k: o.k, nModes: o.nModes, beta: o.beta, seed: o.seed });
  const rng = new Rng(o.seed + 1_000_003);
  const found = new Uint8Array(o.nModes);
  let modesFound = 0;
  const dist = new Int32Array(o.nModes);
  const markModes = (states: Int32Array, count: number) => {
    for (let i = 0; i < count; i++) {
      env.modeDistances(states, i, dist);
      for (let m = 0; m < o.nModes; m++) if (!found[m] && dist[m] <= o.modeRadius) (found[m] = 1), modesFound++;
    }
  };

  let step: () => { terminals: Int32Array; logR: Float64Array; count: number; loss: number; evals: number };
  let trainer: BuiltTrainer | undefined;
  if (o.algo === 'mh') {
    const chains = o.batch;
    // start each chain at a uniformly random string (the GFlowNet's initial policy is near-uniform too)
    const init = new Int32Array(chains * env.slots);
    for (let i = 0; i < init.length; i++) init[i] = rng.int(env.words);
    const mh = new MetropolisHastings((s, n, out) => env.logReward(s, n, out), bitFlipProposal(env), rng, init, chains);
    let prev = mh.rewardEvaluations;
    step = () => {
      mh.step();
      const evals = mh.rewardEvaluations - prev;
      prev = mh.rewardEvaluations;
      return { terminals: mh.states, logR: mh.logR, count: chains, loss: NaN, evals };
    };
    markModes(mh.states, chains);
  } else {
    const t = (trainer = await buildTrainer(env, { ...o, algo: o.algo }, rng));
    step = () => {
      const r = t.step();
      return { terminals: r.terminals, logR: r.logR, count: r.trajectories, loss: r.loss, evals: r.trajectories };
    };
  }

  const curve: BitseqSummary['curve'] = [];
  let evals = o.algo === 'mh' ? o.batch : 0;
  let logRSum = 0,
    logRN = 0;
  const timing = runBenchLoop(o.iterations, o.evalEvery, step, {
    before: (i) => progress?.onIteration?.(i),
    observe: (r) => {
      evals += r.evals;
      markModes(r.terminals, r.count);
      for (let i = 0; i < r.count; i++) (logRSum += r.logR[i]), logRN++;
    },
    record: (it, loss, trainSeconds) => {
      curve.push({ rewardEvaluations: evals, modesFound });
      onMetrics?.({ iteration: it, rewardEvaluations: evals, modesFound, meanLogR: logRSum / logRN, loss, trainSeconds });
      logRSum = logRN = 0;
    },
  });

  progress?.onIteration?.(o.iterations);
  const trainPeakRssMB = peakRssMB();
  const e0 = performance.now();
  let rho: number | null = null;
  let testSize = 0;
  if (trainer) {
    const bits = bitseqTestSet(env, new Rng(o.seed + 2_000_003), Math.min(o.testModes, o.nModes));
    testSize = bits.length / o.n;
    const xs = env.statesFromBits(bits, testSize);
    const logR = new Float64Array(testSize);
    env.logReward(xs, testSize, logR);
    progress?.onPhase?.(`estimating log P̂ on ${testSize} test objects × ${o.orders} backward orders`);
    const logP = estimateLogProb(
      env,
      trainer.net,
      xs,
      testSize,
      o.orders,
      new Rng(o.seed + 3_000_017),
      trainer.temperature,
      undefined,
      progress?.onEval,
    );
    rho = spearman(logR, logP);
    trainer.dispose();
  }
  const { seconds, cpuSeconds } = timing;
  return {
    benchmark: 'bitseq',
    algo: o.algo,
    engine: o.algo === 'mh' ? 'none' : o.engine,
    head: o.head ?? 'dense',
    headRank: o.head === 'factored' ? (o.headRank ?? 8) : null,
    n: o.n,
    k: o.k,
    beta: o.beta,
    nModes: o.nModes,
    seed: o.seed,
    iterations: o.iterations,
    rewardEvaluations: evals,
    seconds,
    cpuSeconds,
    itPerSec: o.iterations / seconds,
    modesFound,
    modeRadius: o.modeRadius,
    spearman: rho,
    testSize,
    orders: o.orders,
    evalSeconds: (performance.now() - e0) / 1000,
    curve,
    trainPeakRssMB,
    peakRssMB: peakRssMB(),
  };
}

/** Flip one uniformly chosen bit of a complete string: q(x'|x) = 1/n both ways (symmetric). */
export function bitFlipProposal(env: Bitseq): SymmetricProposal {
  const L = env.slots,
    k = env.config.k;
  return {
    stateDim: L,
    propose(states, count, out, valid, rng) {
      out.set(states.subarray(0, count * L));
      valid.fill(1, 0, count);
      for (let i = 0; i < count; i++) {
        const p = rng.int(env.n);
        out[i * L + Math.floor(p / k)] ^= 1 << (k - 1 - (p % k));
      }
    },
  };
}
