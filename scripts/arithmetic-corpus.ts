/**
 * Writes a seeded arithmetic corpus (one "X Z Y" item per line, docs/design.md §6 format) — the
 * same generator `flowtune model build-tiny --corpus arithmetic:N` uses in-process.
 *   node dist/scripts/arithmetic-corpus.js --n 60000 --seed 2 --out /tmp/arith.txt \
 *     [--exclude data/arithmetic/test_3op.json ...]
 */
import { writeFileSync } from 'node:fs';
import { generateArithmetic } from '../src/lmbuild/corpus.js';
import { loadArithmetic } from '../src/text/arithmetic.js';

const argv = process.argv.slice(2);
const get = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const n = Number(get('--n') ?? 10000);
const seed = Number(get('--seed') ?? 1);
const out = get('--out');
if (!out || !Number.isInteger(n) || n < 1 || !Number.isInteger(seed)) {
  process.stderr.write('usage: arithmetic-corpus --n N --seed S --out FILE [--exclude test.json ...]\n');
  process.exit(2);
}
const exclude = new Set<string>();
argv.forEach((a, i) => {
  if (a === '--exclude') for (const r of loadArithmetic(argv[i + 1])) exclude.add(r.str_query);
});
writeFileSync(out, generateArithmetic({ n, seed, exclude }).join('\n') + '\n');
console.log(`wrote ${n} items to ${out}`);
