/**
 * Full-size bit-sequence benchmark (docs/design.md §5): n = 120, 60 modes, every
 * k ∈ {2, 4, 6, 8, 10}, the five objectives (and MH), the full test set (60·120 strings,
 * M = 10 backward orders). Each run is its own process; the table prints as Markdown, with
 * training throughput as wall it/s and it per CPU-second (process.cpuUsage of the training
 * steps: on a shared machine wall time is inflated by other jobs, CPU time much less) and
 * the peak RSS when training ended. Hours of CPU at the defaults — not a test.
 *
 *   npm run bench:bitseq [-- --iterations N[,N2] --ks 2,4 --algos tb,mdqn --heads dense,two-stage
 *                          --test-modes K --orders M --seed S --out DIR]
 *
 * `--heads` compares policy heads at equal iterations (empty: the CLI's default head per k);
 * soft-RL objectives skip the two-stage head (TB/DB/SubTB only).
 */
import { join } from 'node:path';
import type { BitseqSummary } from '../src/benchmarks/bitseq.js';
import { benchFlags, flowtuneJson } from './flags.js';

const flags = benchFlags(
  'npm run bench:bitseq -- [--iterations N[,N2] --ks 2,4 --algos tb,mdqn --heads dense,factored,two-stage --test-modes K --orders M --seed S --out DIR]',
  {
    iterations: '10000',
    seed: '0',
    ks: '2,4,6,8,10',
    algos: 'tb,db,subtb,softdqn,mdqn,mh',
    heads: '',
    'test-modes': '',
    orders: '',
    out: '',
  },
);
const { seed, out } = flags;
const iterationsList = flags.iterations.split(',');
const ks = flags.ks.split(',');
const algos = flags.algos.split(',');
const heads = flags.heads === '' ? [''] : flags.heads.split(',');
const evalFlags = [
  ...(flags['test-modes'] ? ['--test-modes', flags['test-modes']] : []),
  ...(flags.orders ? ['--orders', flags.orders] : []),
];

console.log(
  `bitseq n=120, 60 modes, β=2, batch 16, ${flags.iterations} iterations, seed ${seed}` +
    `${flags['test-modes'] ? `, test set of the first ${flags['test-modes']} modes` : ''}${flags.orders ? `, M = ${flags.orders} orders` : ''}\n`,
);
console.log(
  '| k | algo | head | iterations | reward evals | modes found | Spearman | it/s wall | it/CPU-s | train peak RSS MB | train s |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const k of ks) {
  for (const algo of algos) {
    for (const head of heads) {
      if (head !== '' && algo === 'mh') continue; // MCMC has no policy head
      if (head === 'two-stage' && (algo === 'softdqn' || algo === 'mdqn')) continue;
      for (const iterations of iterationsList) {
        const tag = `bitseq-k${k}-${algo}${head ? `-${head}` : ''}${iterationsList.length > 1 ? `-${iterations}` : ''}`;
        const extra = [...(out ? ['--out', join(out, tag)] : []), ...(head ? ['--head', head] : []), ...evalFlags];
        const s = flowtuneJson<BitseqSummary>([
          'bench',
          'bitseq',
          '--algo',
          algo,
          '--k',
          k,
          '--iterations',
          iterations,
          '--seed',
          seed,
          ...extra,
        ]);
        console.log(
          `| ${k} | ${algo} | ${algo === 'mh' ? '—' : s.head} | ${s.iterations} | ${s.rewardEvaluations} | ${s.modesFound} | ${s.spearman === null ? '—' : s.spearman.toFixed(3)} | ${s.itPerSec.toFixed(1)} | ${(s.iterations / s.cpuSeconds).toFixed(1)} | ${s.trainPeakRssMB.toFixed(0)} | ${s.seconds.toFixed(0)} |`,
        );
      }
    }
  }
}
