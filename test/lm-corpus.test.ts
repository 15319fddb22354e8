import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateArithmetic, toAscii } from '../src/lmbuild/corpus.js';
import { answerText, calculatorCompletion, fullItem, makeQuery, parseAnswer, parseQuery, rationale } from '../src/text/arithmetic.js';
import { tinyConfig, randomWeights } from '../src/lmbuild/fixtures.js';
import { fromTfParams, toTfParams } from '../src/lmbuild/reference.js';
import { trainTiny } from '../src/lmbuild/train-tiny.js';
import { CharTokenizer } from '../src/lm/tokenizer.js';
import { selectBackend } from '../src/core/backend.js';

/** Evaluates "a op b op c ..." left to right, independently of corpus.ts. */
function evalExpr(e: string): number {
  const t = e.split(' ');
  let acc = Number(t[0]);
  for (let i = 1; i < t.length; i += 2) acc = t[i] === '+' ? acc + Number(t[i + 1]) : acc - Number(t[i + 1]);
  return acc;
}

test('arithmetic corpus: format of data/arithmetic, correct rationales, seeded, test queries excluded', () => {
  assert.equal(makeQuery([6, 0, 4, 8], ['-', '-', '-']), 'Question: 6 - 0 - 4 - 8 = ? Answer:');
  assert.deepEqual(parseQuery('Question: 6 - 0 - 4 - 8 = ? Answer:'), { operands: [6, 0, 4, 8], ops: ['-', '-', '-'] });
  assert.equal(rationale([6, 0, 4, 8], ['-', '-', '-']).text, '6 - 0 = 6, 6 - 4 = 2, 2 - 8 = -6');
  assert.equal(
    fullItem('Question: 6 - 0 - 4 - 8 = ? Answer:', '6 - 0 = 6, 6 - 4 = 2, 2 - 8 = -6', -6),
    'Question: 6 - 0 - 4 - 8 = ? Answer: 6 - 0 = 6, 6 - 4 = 2, 2 - 8 = -6. The answer is -6.',
  );
  assert.equal(answerText(-6), '. The answer is -6.');
  const exclude = new Set(['Question: 1 + 2 = ? Answer:']);
  const items = generateArithmetic({ n: 4000, seed: 9, exclude });
  assert.deepEqual(items, generateArithmetic({ n: 4000, seed: 9, exclude }));
  assert.notDeepEqual(items.slice(0, 50), generateArithmetic({ n: 50, seed: 10 }));
  let direct = 0,
    wrong = 0;
  for (const it of items) {
    const m = /^(Question: (.*) = \? Answer:)( (.*))?\. The answer is (-?\d+)\.$/.exec(it);
    assert.ok(m, it);
    assert.ok(!exclude.has(m[1]));
    const truth = evalExpr(m[2]);
    if (!m[4]) {
      direct++;
      assert.equal(Number(m[5]), truth);
      continue;
    }
    // each step "a op b = c"; the chain continues from c; the answer is the last c
    const steps = m[4].split(', ');
    let ok = true;
    let prev: number | null = null;
    for (const st of steps) {
      const s = /^(-?\d+) ([+-]) (\d+) = (-?\d+)$/.exec(st)!;
      assert.ok(s, st);
      if (prev !== null) assert.equal(Number(s[1]), prev);
      if (evalExpr(`${s[1]} ${s[2]} ${s[3]}`) !== Number(s[4])) ok = false;
      prev = Number(s[4]);
    }
    assert.equal(Number(m[5]), prev);
    if (!ok) {
      wrong++;
      assert.notEqual(Number(m[5]), truth);
    } else assert.equal(Number(m[5]), truth);
  }
  // rates: 12% direct, 3% wrong (binomial, n = 4000: ±3σ)
  assert.ok(Math.abs(direct / 4000 - 0.12) < 0.016, `direct ${direct}`);
  assert.ok(Math.abs(wrong / 4000 - 0.03) < 0.009, `wrong ${wrong}`);
});

test('answer parsing, calculator completion and ASCII normalization', () => {
  assert.equal(parseAnswer(' 1 + 2 = 3. The answer is 3.'), 3);
  assert.equal(parseAnswer('. The answer is -15.'), -15);
  assert.equal(parseAnswer('The answer is'), null);
  assert.equal(calculatorCompletion(' 5 - 9 = -4, -4 - 3 ='), ' -7');
  assert.equal(calculatorCompletion(' 5 - 9'), null);
  assert.equal(toAscii('\u201cIt\u2019s fine\u201d \u2014 caf\u00e9\u2026'), '"It\'s fine" - cafe...');
});

test('tfjs parameter split/merge round trip, and training is deterministic for a seed', async () => {
  await selectBackend();
  const c = tinyConfig({ nEmbd: 16, nHead: 2, nLayer: 1, nCtx: 64 });
  const w = randomWeights(c, 3);
  const back = fromTfParams(c, toTfParams(c, w));
  for (const [n, p] of w) assert.deepEqual(back.get(n)!.data, p.data, n);
  const items = generateArithmetic({ n: 120, seed: 1, maxOperands: 2 });
  const opts = { steps: 3, batch: 4, lr: 3e-3, warmup: 1, clip: 1, seed: 5, evalEvery: 3, valItems: 8 };
  const a = await trainTiny(c, new CharTokenizer(), items, opts);
  const b = await trainTiny(c, new CharTokenizer(), items, opts);
  for (const [n, p] of a.weights) assert.deepEqual(b.weights.get(n)!.data, p.data, n);
  assert.ok(Number.isFinite(a.valPerplexity) && a.valPerplexity > 1);
  assert.equal(a.curve.length, 1);
});
