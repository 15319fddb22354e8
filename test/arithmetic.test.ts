import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  answerText,
  calculatorCompletion,
  fullItem,
  loadArithmetic,
  makeQuery,
  parseAnswer,
  parseQuery,
  rationale,
} from '../src/text/arithmetic.js';
import { UsageError } from '../src/core/errors.js';

// Every expected value below is worked by hand (or read from the data files), never by a
// second call of the calculator.

test('calculator: +, −, ×, negative operands and multi-digit results, worked by hand', () => {
  const cases: [string, string][] = [
    ['7 + 5 =', ' 12'], // multi-digit sum
    ['9 + 9 =', ' 18'],
    ['0 + 0 =', ' 0'],
    ['6 - 0 =', ' 6'],
    ['2 - 8 =', ' -6'], // negative result
    ['-6 + 9 =', ' 3'], // negative first operand
    ['-6 - 4 =', ' -10'], // negative, multi-digit result
    ['-13 + -4 =', ' -17'], // negative second operand
    ['12 - -3 =', ' 15'], // minus a negative
    ['27 + 15 =', ' 42'], // two-digit operands with a carry
    ['100 - 1 =', ' 99'],
    ['3 * 4 =', ' 12'],
    ['-3 * 4 =', ' -12'],
  ];
  for (const [text, want] of cases) assert.equal(calculatorCompletion(text), want, `calculator result of "${text}"`);
  // only the trailing "a op b =" is completed
  assert.equal(calculatorCompletion(' 6 - 0 = 6, 6 + 4 ='), ' 10', 'calculator result of the last step');
  assert.equal(
    calculatorCompletion('Question: 7 + 5 + 9 = ? Answer: 7 + 5 = 12, 12 + 9 ='),
    ' 21',
    'calculator result after a two-digit value',
  );
  for (const open of ['6 - 0 = 6', '6 -', '', '6 - 0 = ', 'a + b ='])
    assert.equal(calculatorCompletion(open), null, `no calculator completion for ${JSON.stringify(open)}`);
});

test('rationale: the chain of partial results, and a wrong step carried forward', () => {
  const r = rationale([7, 5, 9], ['+', '+']);
  assert.equal(r.text, '7 + 5 = 12, 12 + 9 = 21', 'rationale text');
  assert.equal(r.final, 21, 'rationale final value');
  const m = rationale([6, 0, 4, 8], ['-', '-', '-']);
  assert.equal(m.text, '6 - 0 = 6, 6 - 4 = 2, 2 - 8 = -6');
  assert.equal(m.final, -6);
  const mixed = rationale([0, 9, 7], ['-', '+']);
  assert.equal(mixed.text, '0 - 9 = -9, -9 + 7 = -2');
  assert.equal(mixed.final, -2);
  // step 0 off by +2: 7 + 5 = 14, then 14 + 9 = 23
  const bad = rationale([7, 5, 9], ['+', '+'], 0, 2);
  assert.equal(bad.text, '7 + 5 = 14, 14 + 9 = 23', 'rationale with a wrong step');
  assert.equal(bad.final, 23);
});

test('query, answer and item text round-trip', () => {
  const q = makeQuery([6, 5, 9], ['+', '-']);
  assert.equal(q, 'Question: 6 + 5 - 9 = ? Answer:');
  assert.deepEqual(parseQuery(q), { operands: [6, 5, 9], ops: ['+', '-'] });
  assert.equal(answerText(-6), '. The answer is -6.');
  assert.equal(parseAnswer('2 - 8 = -6. The answer is -6.'), -6, 'parsed negative answer');
  assert.equal(parseAnswer(' The answer is 21.'), 21, 'parsed two-digit answer');
  assert.equal(parseAnswer('The answer is .'), null);
  assert.equal(fullItem(q, '6 + 5 = 11, 11 - 9 = 2', 2), 'Question: 6 + 5 - 9 = ? Answer: 6 + 5 = 11, 11 - 9 = 2. The answer is 2.');
  assert.equal(fullItem(q, '', 2), 'Question: 6 + 5 - 9 = ? Answer:. The answer is 2.');
  assert.throws(() => parseQuery('What is 2 + 2?'), /not an arithmetic query/);
  // the whole line must be a query (anchored), surrounding whitespace aside
  assert.deepEqual(parseQuery('  Question: 1 + 2 = ? Answer: '), { operands: [1, 2], ops: ['+'] }, 'parsed query with surrounding spaces');
  assert.throws(() => parseQuery('Q. Question: 1 + 2 = ? Answer:'), /not an arithmetic query/);
  assert.throws(() => parseQuery('Question: 1 + 2 = ? Answer: 1 + 2 = 3'), /not an arithmetic query/);
});

test('the calculator chain reproduces num_sol of every item in the shipped data files', () => {
  // num_sol comes from the data files (written by the dataset's authors), not from our code
  for (const f of ['train_50', 'test_3op', 'test_4op', 'pool_1000']) {
    const data: { str_query: string; num_sol: number }[] = JSON.parse(readFileSync(`data/arithmetic/${f}.json`, 'utf8'));
    let plus = 0;
    for (const d of data) {
      const { operands, ops } = parseQuery(d.str_query);
      // walk the chain through the calculator, one "a op b =" at a time
      let acc = String(operands[0]);
      for (let i = 0; i < ops.length; i++) {
        if (ops[i] === '+') plus++;
        acc = calculatorCompletion(`${acc} ${ops[i]} ${operands[i + 1]} =`)!.trim();
      }
      assert.equal(Number(acc), d.num_sol, `${f}: calculator chain of ${d.str_query} vs num_sol`);
      assert.equal(rationale(operands, ops).final, d.num_sol, `${f}: rationale final of ${d.str_query} vs num_sol`);
    }
    assert.ok(plus > 0, `${f} holds additions`);
  }
});

test('loadArithmetic reads the data file as is; a missing file is a one-line UsageError', () => {
  const file = 'data/arithmetic/test_3op.json';
  assert.deepEqual(loadArithmetic(file), JSON.parse(readFileSync(file, 'utf8')));
  assert.throws(
    () => loadArithmetic('data/arithmetic/missing.json'),
    (e: Error) => e instanceof UsageError && /data\/arithmetic\/missing\.json.*ENOENT/.test(e.message) && !e.message.includes('\n'),
  );
});
