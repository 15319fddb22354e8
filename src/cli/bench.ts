import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../core/errors.js';
import { fixedOrDash } from '../core/io.js';
import { checkMemory } from '../core/memory.js';
import { HYPERGRID_DEFAULTS, runHypergridBench, type BenchSummary } from '../benchmarks/hypergrid.js';
import { ALGOS, HEADS } from '../benchmarks/build-trainer.js';
import { choiceArg, intArg, numArg } from './args.js';
import { BenchOutput, parseTrainingOptions, trainingOptions } from './bench-common.js';
import { runHypergridMh, type MhBenchSummary } from '../benchmarks/hypergrid-mh.js';
import { MOLECULE_ALGOS, MOLECULE_BENCH_DEFAULTS, runMoleculeBench, type MoleculeSummary } from '../benchmarks/molecules.js';
import { SEH_BENCH_DEFAULTS, runSehBench, type SehSummary } from '../benchmarks/molecules-seh.js';
import { BITSEQ_ALGOS, BITSEQ_BENCH_DEFAULTS, defaultBitseqHead, runBitseqBench, type BitseqSummary } from '../benchmarks/bitseq.js';

const HYPERGRID_ALGOS = [...ALGOS, 'mh'] as const;
const B = BITSEQ_BENCH_DEFAULTS;

const D = HYPERGRID_DEFAULTS;

const hypergrid: CommandModule<object, Record<string, unknown>> = {
  command: 'hypergrid',
  describe: 'train one objective on the hypergrid and measure it against the exact oracle',
  builder: (y: Argv) =>
    trainingOptions(
      y
        .option('algo', {
          type: 'string',
          demandOption: true,
          describe: `objective: ${ALGOS.join('|')}, or mh (Metropolis–Hastings baseline)`,
        })
        .option('ndim', { type: 'string', default: String(D.ndim), describe: 'dimensions D' })
        .option('height', { type: 'string', default: String(D.height), describe: 'height H (≥ 2)' })
        .option('reward', { type: 'string', default: D.reward, describe: 'standard|hard' })
        .option('pb', { type: 'string', default: D.pb, describe: 'backward policy of tb|db|subtb: learned|uniform' }),
      D,
      { batch: 'trajectories per iteration (mh: parallel chains, one proposal each)', evalEvery: 'metrics every K iterations' },
    ),
  handler: async (a) => {
    const opts = {
      ...D,
      algo: choiceArg('algo', a.algo, HYPERGRID_ALGOS),
      ndim: intArg('ndim', a.ndim, 1, 12),
      height: intArg('height', a.height, 2, 1000),
      reward: choiceArg('reward', a.reward, ['standard', 'hard'] as const),
      pb: choiceArg('pb', a.pb, ['learned', 'uniform'] as const),
      ...parseTrainingOptions(a),
    };
    const states = opts.height ** opts.ndim;
    if (states > 5_000_000)
      throw new UsageError(`a ${opts.height}^${opts.ndim} grid is too large for the exact oracle (limit 5,000,000 states)`);
    // the oracle holds every state (coordinates, reward, target and policy probabilities, DAG edges)
    checkMemory(`a ${opts.height}^${opts.ndim} grid`, states * (4 * opts.ndim + 8 * 4 + 4 * (opts.ndim + 1)));
    if (opts.algo === 'mh') checkMemory(`--batch ${opts.batch} chains`, opts.batch * (4 * opts.ndim * 2 + 8 * 2));
    const io = new BenchOutput(a.out as string | undefined, opts.iterations, `hypergrid ${opts.algo}`);
    if (opts.algo === 'mh') {
      const s = runHypergridMh({ ...opts, chains: opts.batch }, (m) => {
        io.progress.update(m.iteration, `tv ${fixedOrDash(m.tvExact, 4)}`);
        io.metrics(m);
      });
      await io.finish(s);
      printMhSummary(s, a.json as boolean);
      return;
    }
    const gfnOpts = { ...opts, algo: opts.algo };
    let lastTv: number | null = null; // no exact TV before the first evaluation: shown as "–"
    const summary: BenchSummary = await runHypergridBench(gfnOpts, {
      onIteration: (it, loss) => io.progress.update(it, `loss ${fixedOrDash(loss, 4)} | tv ${fixedOrDash(lastTv, 4)}`),
      onMetrics: (m) => {
        lastTv = m.tvExact;
        io.metrics({ ...m, rewardEvaluations: m.trajectories });
      },
    });
    // one reward evaluation per sampled trajectory: the x-axis shared with --algo mh
    const withEvals = { ...summary, rewardEvaluations: summary.trajectories };
    await io.finish(withEvals);
    printSummary(withEvals, a.json as boolean);
  },
};

function printMhSummary(s: MhBenchSummary, json: boolean): void {
  const fmt = (v: number, d = 4) => (Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(d));
  console.log(
    [
      `hypergrid ${s.ndim}-D H=${s.height} (${s.reward}), mh, ${s.iterations} iterations × ${s.chains} chains, ${s.rewardEvaluations} reward evaluations`,
      `  acceptance  ${fmt(s.acceptanceRate)}`,
      `  exact TV    ${fmt(s.tvExact)} (marginal law after ${s.iterations} steps)   empirical L1 ${fmt(s.l1Empirical)}   empirical TV ${fmt(s.tvEmpirical)}`,
      `  time        ${s.seconds.toFixed(1)} s wall, ${s.cpuSeconds.toFixed(1)} s CPU; peak RSS ${s.peakRssMB.toFixed(0)} MB`,
    ].join('\n'),
  );
  if (json) console.log(JSON.stringify(s));
}

function printSummary(s: BenchSummary, json: boolean): void {
  const fmt = (v: number | null, d = 4) => (v === null ? '—' : Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(d));
  console.log(
    [
      `hypergrid ${s.ndim}-D H=${s.height} (${s.reward}), ${s.algo}, ${s.iterations} iterations × ${s.trajectories / s.iterations} trajectories, engine ${s.engine}`,
      `  throughput  ${s.itPerSec.toFixed(1)} it/s, ${s.trajPerSec.toFixed(0)} traj/s (wall); ${s.itPerCpuSec.toFixed(1)} it/CPU-s`,
      `  exact TV    ${fmt(s.tvExact)}   empirical L1 ${fmt(s.l1Empirical)}   KL(R/Z‖P_T) ${fmt(s.kl)}`,
      `  log Z       learned ${fmt(s.logZ)}   true ${fmt(s.logZTrue)}`,
      `  time        ${s.seconds.toFixed(1)} s wall, ${s.cpuSeconds.toFixed(1)} s CPU; peak RSS ${s.peakRssMB.toFixed(0)} MB`,
    ].join('\n'),
  );
  if (json) console.log(JSON.stringify(s));
}

const bitseq: CommandModule<object, Record<string, unknown>> = {
  command: 'bitseq',
  describe: 'train one objective on bit sequences (n=120, 60 modes): modes found over training, Spearman(log R, log P̂) on the test set',
  builder: (y: Argv) =>
    trainingOptions(
      y
        .option('algo', {
          type: 'string',
          demandOption: true,
          describe: `${BITSEQ_ALGOS.join('|')} (mh: Metropolis–Hastings with single bit flips)`,
        })
        .option('k', { type: 'string', default: String(B.k), describe: 'word length k (2, 4, 6, 8, 10 divide n = 120)' })
        .option('n', { type: 'string', default: String(B.n), describe: 'sequence length (a multiple of 8 and of k)' })
        .option('modes', { type: 'string', default: String(B.nModes), describe: 'number of modes' })
        .option('beta', { type: 'string', default: String(B.beta), describe: 'log R = −β·min_m d_H(x, m)' })
        .option('orders', { type: 'string', default: String(B.orders), describe: 'M backward orders per test string for log P̂' })
        .option('test-modes', { type: 'string', describe: 'build the test set from the first K modes only (default: all)' })
        .option('mode-radius', { type: 'string', default: String(B.modeRadius), describe: 'Hamming radius for a mode to count as found' })
        .option('head', {
          type: 'string',
          describe:
            'policy output head: dense (one unit per slot × word) | factored (position logit + rank-r query per slot × learned word embeddings) | two-stage (slot softmax, then a word net for the chosen slot only; tb/db/subtb). Default: two-stage for tb/db/subtb from k = 8, factored for softdqn/mdqn from k = 10, dense otherwise',
        })
        .option('head-rank', { type: 'string', default: '8', describe: 'rank r of the factored head' }),
      B,
      {
        batch: 'trajectories per iteration (mh: chains)',
        seed: 'seeds modes, test set, network and sampling',
        evalEvery: 'mode-curve point every K iterations',
      },
    ),
  handler: async (a) => {
    const nModes = intArg('modes', a.modes, 1, 100_000);
    const opts = {
      ...B,
      algo: choiceArg('algo', a.algo, BITSEQ_ALGOS),
      k: intArg('k', a.k, 1, 16),
      n: intArg('n', a.n, 8, 100_000),
      nModes,
      beta: numArg('beta', a.beta, 0, Infinity, { exclusiveMin: true }),
      ...parseTrainingOptions(a),
      orders: intArg('orders', a.orders, 1),
      testModes: a['test-modes'] === undefined ? nModes : intArg('test-modes', a['test-modes'], 1, nModes),
      modeRadius: intArg('mode-radius', a['mode-radius'], 0),
    };
    if (opts.algo === 'mh') checkMemory(`--batch ${opts.batch} chains of ${opts.n} bits`, opts.batch * (opts.n / opts.k) * 4 * 3);
    const head = a.head === undefined ? defaultBitseqHead(opts.algo, opts.k) : choiceArg('head', a.head, HEADS);
    Object.assign(opts, { head, headRank: intArg('head-rank', a['head-rank'], 1, 1024) });
    const io = new BenchOutput(a.out as string | undefined, opts.iterations, `bitseq ${opts.algo}`);
    let status = 'training';
    const s: BitseqSummary = await runBitseqBench(
      opts,
      (m) => {
        status = `modes ${m.modesFound} | mean log R ${fixedOrDash(m.meanLogR, 1)}`;
        io.progress.update(m.iteration, status);
        io.metrics(m);
      },
      {
        onIteration: (done) => io.progress.update(done, status),
        onPhase: (what) => io.progress.phase(what),
        onEval: (done, total) => io.progress.phase(`log P̂ ${done}/${total} objects`, false),
      },
    );
    await io.finish(s);
    console.log(
      [
        `bitseq n=${s.n} k=${s.k} β=${s.beta} (${s.nModes} modes), ${s.algo}, ${s.iterations} iterations, ${s.rewardEvaluations} reward evaluations, engine ${s.engine}, head ${s.head}${s.headRank ? ` (rank ${s.headRank})` : ''}`,
        `  modes found ${s.modesFound}/${s.nModes} (Hamming ≤ ${s.modeRadius})`,
        `  Spearman    ${s.spearman === null ? '— (no density estimate for MCMC)' : s.spearman.toFixed(4)} on ${s.testSize} test strings, M = ${s.orders} orders`,
        `  time        ${s.seconds.toFixed(1)} s training (${s.itPerSec.toFixed(1)} it/s wall, ${(s.iterations / s.cpuSeconds).toFixed(1)} it/CPU-s), ${s.cpuSeconds.toFixed(1)} s CPU; evaluation ${s.evalSeconds.toFixed(1)} s; peak RSS ${s.peakRssMB.toFixed(0)} MB`,
      ].join('\n'),
    );
    if (a.json) console.log(JSON.stringify(s));
  },
};

const MB = MOLECULE_BENCH_DEFAULTS;
const molecules: CommandModule<object, Record<string, unknown>> = {
  command: 'molecules',
  describe:
    "train one objective on a molecule DAG: --reward seh is the paper's block-molecule sEH task; --reward descriptor the naphthalene fragment DAG with an RDKit descriptor-profile reward. Tanimoto-separated modes, Pearson(log R, log P̂)",
  builder: (y: Argv) =>
    trainingOptions(
      y
        .option('algo', { type: 'string', demandOption: true, describe: MOLECULE_ALGOS.join('|') })
        .option('reward', {
          type: 'string',
          default: 'seh',
          describe: 'seh (105-block MDP, pretrained sEH proxy, R = (max(proxy, 0.1)/8)^β) | descriptor (naphthalene decorations, R = r^β)',
        })
        .option('beta', {
          type: 'string',
          describe: `reward exponent (default ${SEH_BENCH_DEFAULTS.beta} for seh, ${MB.beta} for descriptor)`,
        })
        .option('threshold', {
          type: 'string',
          describe: `mode threshold: seh proxy ≥ ${SEH_BENCH_DEFAULTS.proxyThreshold}; descriptor r(x) ≥ ${MB.rewardThreshold} (r ∈ (0, 1])`,
        })
        .option('test-size', {
          type: 'string',
          describe: `test molecules (seh: the first K of the benchmark's 950, default 950; descriptor: random decorations, default ${MB.testSize})`,
        })
        .option('orders', { type: 'string', default: String(MB.orders), describe: 'M backward orders per test molecule for log P̂' }),
      MB,
      { batch: 'trajectories per iteration', evalEvery: 'mode-curve point every K iterations' },
    ).option('epsilon', {
      type: 'string',
      describe: `ε-uniform exploration (default ${SEH_BENCH_DEFAULTS.epsilon} for seh, the original random_action_prob; ${MB.epsilon} for descriptor)`,
    }),
  handler: async (a) => {
    const reward = choiceArg('reward', a.reward, ['seh', 'descriptor'] as const);
    a.epsilon ??= String(reward === 'seh' ? SEH_BENCH_DEFAULTS.epsilon : MB.epsilon);
    if (reward === 'seh') return runSehCommand(a);
    const opts = {
      ...MB,
      algo: choiceArg('algo', a.algo, MOLECULE_ALGOS),
      beta: a.beta === undefined ? MB.beta : numArg('beta', a.beta, 0, Infinity, { exclusiveMin: true }),
      ...parseTrainingOptions(a),
      rewardThreshold: a.threshold === undefined ? MB.rewardThreshold : numArg('threshold', a.threshold, 0, 1),
      testSize: a['test-size'] === undefined ? MB.testSize : intArg('test-size', a['test-size'], 2),
      orders: intArg('orders', a.orders, 1),
    };
    const io = new BenchOutput(a.out as string | undefined, opts.iterations, `molecules ${opts.algo}`);
    let status = 'training';
    const s: MoleculeSummary = await runMoleculeBench(
      opts,
      (m) => {
        status = `modes ${m.modes} | mean log R ${fixedOrDash(m.meanLogR, 2)}`;
        io.progress.update(m.iteration, status);
        io.metrics(m);
      },
      {
        onIteration: (done) => io.progress.update(done, status),
        onPhase: (what) => io.progress.phase(what),
        onEval: (done, total) => io.progress.phase(`log P̂ ${done}/${total} objects`, false),
      },
    );
    await io.finish(s);
    console.log(
      [
        `molecules (naphthalene, ${s.sites} sites × ${s.fragments} fragments) β=${s.beta}, ${s.algo}, ${s.iterations} iterations, ${s.rewardEvaluations} reward evaluations, engine ${s.engine}`,
        `  modes       ${s.modes} (r ≥ ${s.rewardThreshold}, Tanimoto < ${s.maxSimilarity}); ${s.uniqueMolecules} distinct molecules scored, ${s.invalid} invalid`,
        `  Pearson     ${s.pearson.toFixed(4)} (log R vs log P̂ on ${s.testSize} random decorations, M = ${s.orders})`,
        `  time        ${s.seconds.toFixed(1)} s training (${s.itPerSec.toFixed(1)} it/s), ${s.cpuSeconds.toFixed(1)} s CPU; evaluation ${s.evalSeconds.toFixed(1)} s; peak RSS ${s.peakRssMB.toFixed(0)} MB`,
      ].join('\n'),
    );
    if (a.json) console.log(JSON.stringify(s));
  },
};

async function runSehCommand(a: Record<string, unknown>): Promise<void> {
  const S = SEH_BENCH_DEFAULTS;
  const opts = {
    ...S,
    algo: choiceArg('algo', a.algo, MOLECULE_ALGOS),
    beta: a.beta === undefined ? S.beta : numArg('beta', a.beta, 0, Infinity, { exclusiveMin: true }),
    ...parseTrainingOptions(a),
    proxyThreshold: a.threshold === undefined ? S.proxyThreshold : numArg('threshold', a.threshold),
    testSize: a['test-size'] === undefined ? S.testSize : intArg('test-size', a['test-size'], 2, 950),
    orders: intArg('orders', a.orders, 1),
  };
  const io = new BenchOutput(a.out as string | undefined, opts.iterations, `molecules seh ${opts.algo}`);
  const s: SehSummary = await runSehBench(opts, (m) => {
    io.progress.update(m.iteration, `modes ${m.modes} | mean proxy ${m.meanProxy.toFixed(2)}`);
    io.metrics(m);
  });
  await io.finish(s);
  console.log(
    [
      `molecules (sEH, 105 blocks) β=${s.beta}, ${s.algo}, ${s.iterations} iterations, ${s.rewardEvaluations} reward evaluations, engine ${s.engine}`,
      `  modes       ${s.modes} (proxy ≥ ${s.proxyThreshold}, Tanimoto < ${s.maxSimilarity}); ${s.candidates} samples above the threshold; ${s.uniqueStates} distinct states scored`,
      `  Pearson     ${s.pearson.toFixed(4)} (log R vs log P̂ on ${s.testSize} benchmark test molecules, M = ${s.orders})`,
      `  time        ${s.seconds.toFixed(1)} s training (${s.itPerSec.toFixed(2)} it/s wall, ${s.itPerCpuSec.toFixed(2)} it/CPU-s); evaluation ${s.evalSeconds.toFixed(1)} s; peak RSS ${s.peakRssMB.toFixed(0)} MB`,
    ].join('\n'),
  );
  if (a.json) console.log(JSON.stringify(s));
}

export const benchCommand: CommandModule = {
  command: 'bench <benchmark>',
  describe: 'run a benchmark (hypergrid, bitseq, molecules)',
  builder: (y: Argv) =>
    y.command(hypergrid).command(bitseq).command(molecules).demandCommand(1, 'name a benchmark: hypergrid, bitseq, molecules'),
  handler: () => {},
};
