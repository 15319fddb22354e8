/**
 * Full-size molecule benchmark (docs/design.md §5 with the documented descriptor-profile
 * reward): naphthalene × 18 fragments at 8 sites, the five objectives, β ∈ {4, 8} by
 * default, Tanimoto-separated modes (r ≥ 0.75, similarity < 0.7) and Pearson(log R, log P̂)
 * on 1000 random decorations. Each run is its own process; Markdown table. Not a test.
 *
 *   npm run bench:molecules [-- --iterations N --betas 4,8 --algos tb,mdqn --seed S --out DIR]
 */
import { join } from 'node:path';
import type { MoleculeSummary } from '../src/benchmarks/molecules.js';
import { benchFlags, flowtuneJson } from './flags.js';

const flags = benchFlags('npm run bench:molecules -- [--iterations N --betas 4,8 --algos tb,mdqn --seed S --out DIR]', {
  iterations: '5000',
  seed: '0',
  betas: '4,8',
  algos: 'tb,db,subtb,softdqn,mdqn',
  out: '',
});
const { iterations, seed, out } = flags;
const betas = flags.betas.split(',');
const algos = flags.algos.split(',');

console.log(`molecules (naphthalene, 8 sites × 18 fragments), batch 16, ${iterations} iterations, seed ${seed}\n`);
console.log('| β | algo | reward evals | modes | Pearson | distinct molecules | train s |');
console.log('|---|---|---|---|---|---|---|');
for (const beta of betas) {
  for (const algo of algos) {
    const extra = out ? ['--out', join(out, `molecules-b${beta}-${algo}`)] : [];
    const s = flowtuneJson<MoleculeSummary>([
      'bench',
      'molecules',
      '--reward',
      'descriptor',
      '--algo',
      algo,
      '--beta',
      beta,
      '--iterations',
      iterations,
      '--seed',
      seed,
      ...extra,
    ]);
    console.log(
      `| ${beta} | ${algo} | ${s.rewardEvaluations} | ${s.modes} | ${s.pearson.toFixed(3)} | ${s.uniqueMolecules} | ${s.seconds.toFixed(0)} |`,
    );
  }
}
