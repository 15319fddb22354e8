import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generateArithWeak, generateTestSet } from '../src/lmbuild/corpus.js';
import { assembleCorpus } from '../src/lmbuild/build.js';
import { firstStepRight } from '../src/lmbuild/eval-arithmetic.js';

/** Left-to-right value of "a op b op c ...", written here independently of corpus.ts. */
function evalExpr(e: string): number {
  const t = e.trim().split(' ');
  let acc = Number(t[0]);
  for (let i = 1; i < t.length; i += 2) acc = t[i] === '+' ? acc + Number(t[i + 1]) : acc - Number(t[i + 1]);
  return acc;
}

/** A chain item outside the X Z Y frame: expression, steps, and the stated result if any (written here, not taken from corpus.ts). */
const CHAIN_ITEM =
  /^(?:Compute |Work out |Steps for )?(-?\d+(?: [+-] \d)+)(?: step by step)?: (.*?)\.(?: Result: (-?\d+)\.| The answer is (-?\d+)\.)?$/;

const testQueries = (f: string): string[] => JSON.parse(readFileSync(f, 'utf8')).map((r: { str_query: string }) => r.str_query);

test('arith-weak corpus: ≤ 4 operands, requested rationale share, true facts, test queries excluded, seeded', () => {
  const exclude = new Set([...testQueries('data/arithmetic/test_3op.json'), ...testQueries('data/arithmetic/test_4op.json')]);
  const n = 20000;
  const items = generateArithWeak({ n, seed: 7, rationaleRate: 0.02, directRate: 0.06, exclude });
  assert.equal(items.length, n);
  assert.deepEqual(items.slice(0, 500), generateArithWeak({ n: 500, seed: 7, rationaleRate: 0.02, directRate: 0.06, exclude }));
  let worked = 0;
  let direct = 0;
  for (const it of items) {
    // every "x op y op ... = v" in the item, anywhere: operands ≤ 4 and v right
    for (const m of it.matchAll(/(-?\d+(?: [+-] -?\d+)+) = (-?\d+)/g)) {
      assert.ok(m[1].split(' ').length <= 7, `more than 4 operands: ${it}`);
      assert.equal(Number(m[2]), evalExpr(m[1]), it);
    }
    const q = /^(Question: (.*) = \? Answer:)(.*)\. The answer is (-?\d+)\.$/.exec(it);
    if (q) {
      assert.ok(!exclude.has(q[1]), `test query: ${q[1]}`);
      assert.ok(q[2].split(' ').length <= 7, it);
      assert.equal(Number(q[4]), evalExpr(q[2]), it);
      if (q[3] === '') direct++;
      else {
        worked++;
        // exact X Z Y: steps chain left to right over the query's operands
        const t = q[2].split(' ');
        const steps = q[3].trim().split(', ');
        assert.equal(steps.length, (t.length - 1) / 2, it);
        let acc = Number(t[0]);
        steps.forEach((st, i) => {
          const r = evalExpr(`${acc} ${t[2 * i + 1]} ${t[2 * i + 2]}`);
          assert.equal(st, `${acc} ${t[2 * i + 1]} ${t[2 * i + 2]} = ${r}`, it);
          acc = r;
        });
      }
    } else assert.ok(!/Answer:/.test(it) || /^Question: What (is|are) -?\d+ [+-] \d[,? ].*Answer: /.test(it), it);
  }
  // binomial, ±4σ
  const sd = (p: number) => 4 * Math.sqrt((p * (1 - p)) / n);
  assert.ok(Math.abs(worked / n - 0.02) < sd(0.02) && worked / n <= 0.025, `worked ${worked}`);
  assert.ok(Math.abs(direct / n - 0.06) < sd(0.06), `direct ${direct}`);
  // chained intermediate values (two-digit, negative) are covered as facts
  assert.ok(items.some((s) => /(^|[ :]|, )-1\d [+-] \d = /.test(s)) && items.some((s) => /(^|[ :]|, )1\d [+-] \d = /.test(s)));
});

test('arith-weak corpus spec: options parsed, bad specs refused', () => {
  const { items, parts } = assembleCorpus(['arith-weak:3000,rationale=0.01,direct=0.2'], 3, [], 160);
  assert.equal(items.length, 3000);
  assert.match(parts[0].source, /direct answers 20% and worked rationales 1%/);
  assert.throws(() => assembleCorpus(['arith-weak:10,foo=1'], 3, [], 160), /bad corpus spec/);
  assert.throws(() => assembleCorpus(['arith-weak:10,rationale=0.6,direct=0.6'], 3, [], 160), /rates/);
});

test('arith-weak corpus with chains outside the task frame: requested share, 3…chainOps operands, every step carried, no X Z Y frame', () => {
  const n = 20000;
  const items = generateArithWeak({ n, seed: 11, chainRate: 0.1, chainMaxOperands: 3 });
  let chains = 0;
  const lengths = new Set<number>();
  for (const it of items) {
    const m = CHAIN_ITEM.exec(it);
    if (!m) continue;
    chains++;
    assert.ok(!/Answer:/.test(it), it);
    const t = m[1].split(' ');
    lengths.add((t.length + 1) / 2);
    // the steps chain left to right over the expression's operands (checked independently of corpus.ts)
    const steps = m[2].split(', ');
    assert.equal(steps.length, (t.length - 1) / 2, it);
    let acc = Number(t[0]);
    steps.forEach((st, i) => {
      const r = evalExpr(`${acc} ${t[2 * i + 1]} ${t[2 * i + 2]}`);
      assert.equal(st, `${acc} ${t[2 * i + 1]} ${t[2 * i + 2]} = ${r}`, it);
      acc = r;
    });
    const stated = m[3] ?? m[4];
    if (stated !== undefined) assert.equal(Number(stated), acc, it);
  }
  assert.deepEqual([...lengths], [3]);
  assert.ok(Math.abs(chains / n - 0.1) < 4 * Math.sqrt((0.1 * 0.9) / n), `chains ${chains}`);
  // the default corpus has none
  assert.ok(!generateArithWeak({ n: 3000, seed: 11 }).some((s) => /^(Compute|Work out|Steps for) /.test(s)));
  const { parts } = assembleCorpus(['arith-weak:2000,chain=0.05,chainOps=4'], 3, [], 160);
  assert.match(parts[0].source, /worked chains outside the task's frame 5%, 3–4 operands/);
  assert.throws(() => assembleCorpus(['arith-weak:10,chain=0.1,chainOps=2'], 3, [], 160), /chain operands/);
});

test('arith-weak chains with chainCarry: a later step carries the running value with the requested probability, else restarts from the expression operand; facts true, stated result = last step', () => {
  const items = generateArithWeak({ n: 30000, seed: 5, chainRate: 0.2, chainMaxOperands: 4, chainCarry: 0.3 });
  let carried = 0;
  let later = 0;
  for (const it of items) {
    const m = CHAIN_ITEM.exec(it);
    if (!m) continue;
    const t = m[1].split(' ');
    const steps = m[2].split(', ').map((st) => /^(-?\d+) ([+-]) (\d) = (-?\d+)$/.exec(st)!);
    assert.equal(steps.length, (t.length - 1) / 2, it);
    let acc = Number(t[0]);
    steps.forEach((st, i) => {
      assert.ok(st, it);
      assert.equal(st[2], t[2 * i + 1], it);
      assert.equal(Number(st[3]), Number(t[2 * i + 2]), it);
      const a = Number(st[1]);
      if (i === 0) assert.equal(a, acc, it);
      else {
        // carried, or restarted from the expression's operand (when the two coincide, counted as carried)
        assert.ok(a === acc || a === Number(t[2 * i]), it);
        later++;
        if (a === acc) carried++;
      }
      acc = evalExpr(`${a} ${st[2]} ${st[3]}`);
      assert.equal(Number(st[4]), acc, it);
    });
    const stated = m[3] ?? m[4];
    if (stated !== undefined) assert.equal(Number(stated), acc, it);
  }
  assert.ok(later > 5000, `later steps ${later}`);
  // restarts whose operand equals the running value read as carried: share ≥ 0.3, and far below 1
  const share = carried / later;
  assert.ok(share > 0.3 - 4 * Math.sqrt(0.21 / later) && share < 0.45, `carried share ${share}`);
  assert.throws(() => generateArithWeak({ n: 10, seed: 1, chainRate: 0.1, chainCarry: 1.5 }), /chainCarry/);
});

test('test_5op.json: 500 distinct five-operand problems, num_sol = left-to-right value, no test_3op/4op query; the generator rebuilds it', () => {
  const raw = readFileSync('data/arithmetic/test_5op.json', 'utf8');
  const data: { str_query: string; num_sol: number }[] = JSON.parse(raw);
  assert.equal(data.length, 500);
  assert.equal(new Set(data.map((d) => d.str_query)).size, 500);
  const old = new Set([...testQueries('data/arithmetic/test_3op.json'), ...testQueries('data/arithmetic/test_4op.json')]);
  for (const d of data) {
    assert.deepEqual(Object.keys(d), ['str_query', 'num_sol']);
    const m = /^Question: (\d [+-] \d [+-] \d [+-] \d [+-] \d) = \? Answer:$/.exec(d.str_query);
    assert.ok(m, d.str_query);
    assert.equal(d.num_sol, evalExpr(m[1]), d.str_query);
    assert.ok(!old.has(d.str_query));
  }
  // the documented command: node dist/scripts/arithmetic-testset.js --operands 5 --n 500 --seed 5
  assert.equal(JSON.stringify(generateTestSet({ n: 500, operands: 5, seed: 5 }), null, 4), raw);
});

test('first-step measure', () => {
  const q = 'Question: 5 + 9 - 3 = ? Answer:';
  assert.ok(firstStepRight(q, ' 5 + 9 = 14, 14 - 3 = 11. The answer is 11.'));
  assert.ok(firstStepRight(q, ' 5 + 9 ='));
  assert.ok(!firstStepRight(q, '. The answer is 11.'));
  assert.ok(!firstStepRight(q, ' 9 - 3 = 6, 5 + 6 = 11. The answer is 11.'));
  assert.ok(!firstStepRight(q, ' 5 - 9 = -4'));
});
