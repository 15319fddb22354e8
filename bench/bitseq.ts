/**
 * Full-size bit-sequence benchmark (docs/design.md §5): n = 120, 60 modes, every
 * k ∈ {2, 4, 6, 8, 10}, the five objectives (and MH), the full test set (60·120 strings,
 * M = 10 backward orders). Each run is its own process; the table prints as Markdown.
 * Hours of CPU at the defaults — not a test.
 *
 *   npm run bench:bitseq [-- --iterations N --ks 2,4 --algos tb,mdqn --seed S --out DIR]
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { BitseqSummary } from '../src/benchmarks/bitseq.js';
import { benchFlags } from './flags.js';

const flags = benchFlags('npm run bench:bitseq -- [--iterations N --ks 2,4 --algos tb,mdqn --seed S --out DIR]', {
  iterations: '10000',
  seed: '0',
  ks: '2,4,6,8,10',
  algos: 'tb,db,subtb,softdqn,mdqn,mh',
  out: '',
});
const { iterations, seed, out } = flags;
const ks = flags.ks.split(',');
const algos = flags.algos.split(',');
const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));

console.log(`bitseq n=120, 60 modes, β=2, batch 16, ${iterations} iterations, seed ${seed}\n`);
console.log('| k | algo | reward evals | modes found | Spearman | train s |');
console.log('|---|---|---|---|---|---|');
for (const k of ks) {
  for (const algo of algos) {
    const extra = out ? ['--out', join(out, `bitseq-k${k}-${algo}`)] : [];
    const text = execFileSync(
      process.execPath,
      [cli, 'bench', 'bitseq', '--algo', algo, '--k', k, '--iterations', iterations, '--seed', seed, '--json', ...extra],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        maxBuffer: 1 << 26,
      },
    );
    const s = JSON.parse(text.trim().split('\n').pop()!) as BitseqSummary;
    console.log(
      `| ${k} | ${algo} | ${s.rewardEvaluations} | ${s.modesFound} | ${s.spearman === null ? '—' : s.spearman.toFixed(3)} | ${s.seconds.toFixed(0)} |`,
    );
  }
}
