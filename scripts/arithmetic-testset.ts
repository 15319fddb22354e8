/**
 * Writes a seeded arithmetic test set in the format of data/arithmetic/test_4op.json
 * (`str_query`, `num_sol`; n distinct queries of K digits joined by + or −). data/arithmetic/
 * test_5op.json was made with
 *   node dist/scripts/arithmetic-testset.js --operands 5 --n 500 --seed 5 --out data/arithmetic/test_5op.json
 */
import { writeFileSync } from 'node:fs';
import { generateTestSet } from '../src/lmbuild/corpus.js';

const argv = process.argv.slice(2);
const get = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const operands = Number(get('--operands') ?? 5);
const n = Number(get('--n') ?? 500);
const seed = Number(get('--seed') ?? 5);
const out = get('--out');
if (!out || ![operands, n, seed].every(Number.isInteger) || operands < 2 || n < 1) {
  process.stderr.write('usage: arithmetic-testset --operands K --n N --seed S --out FILE\n');
  process.exit(2);
}
// 4-space indent and no trailing newline, like the files of Hu et al. (Python json.dump(indent=4))
writeFileSync(out, JSON.stringify(generateTestSet({ n, operands, seed }), null, 4));
console.log(`wrote ${n} ${operands}-operand problems to ${out}`);
