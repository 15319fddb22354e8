/**
 * GFlowNet objectives against Metropolis–Hastings on one x-axis: reward evaluations.
 * Hypergrid 4-D H=8 standard (or --ndim/--height), 16 trajectories (or chains) per
 * iteration; a GFlowNet spends one reward evaluation per trajectory, MH one per proposal
 * that stays on the grid. Prints tvExact / l1Empirical per algorithm as Markdown; with
 * --out, each run's metrics.jsonl holds the curve (rewardEvaluations on every line).
 *
 *   npm run bench:mcmc [-- --iterations N --ndim D --height H --seed S --out DIR]
 */
import { join } from 'node:path';
import { benchFlags, flowtuneJson } from './flags.js';

const { iterations, ndim, height, seed, out } = benchFlags(
  'npm run bench:mcmc -- [--iterations N --ndim D --height H --seed S --out DIR]',
  { iterations: '2000', ndim: '4', height: '8', seed: '0', out: '' },
);

console.log(`hypergrid ${ndim}-D H=${height} standard, 16 per iteration, ${iterations} iterations, seed ${seed}\n`);
console.log('| algo | reward evals | tvExact | l1Empirical | train s |');
console.log('|---|---|---|---|---|');
for (const algo of ['tb', 'db', 'subtb', 'softdqn', 'mdqn', 'mh']) {
  const extra = out ? ['--out', join(out, `hypergrid-${algo}`)] : [];
  const s = flowtuneJson<{
    rewardEvaluations: number;
    tvExact: number;
    l1Empirical: number;
    seconds: number;
  }>(['bench', 'hypergrid', '--algo', algo, '--ndim', ndim, '--height', height, '--iterations', iterations, '--seed', seed, ...extra]);
  console.log(
    `| ${algo} | ${s.rewardEvaluations} | ${s.tvExact.toFixed(4)} | ${s.l1Empirical.toExponential(2)} | ${s.seconds.toFixed(1)} |`,
  );
}
