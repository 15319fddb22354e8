/**
 * Guards that keep numbers honest with foreign models: degenerate whitening, the posterior
 * check's sanity, which ids may enter Z, and tokenizer/model mismatches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { selectBackend, tf } from '../src/core/backend.js';
import { UsageError } from '../src/core/errors.js';
import { LmHead, headConfig } from '../src/finetune/head.js';
import { PosteriorCheckError, checkSanity } from '../src/finetune/posterior.js';
import { samplableIds, tokenizerJsonFacts, loadHfTokenizer, CharTokenizer } from '../src/lm/tokenizer.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';

test('whitening of identical states falls back to a scaled identity instead of blowing up', async () => {
  await selectBackend();
  const d = 8,
    N = 64;
  const one = Float32Array.from({ length: d }, (_, i) => 0.5 + i);
  const h = new Float32Array(N * d);
  for (let n = 0; n < N; n++) h.set(one, n * d);
  const head = new LmHead(headConfig({ hiddenSize: d, vocabSize: 5 }), 1);
  head.fitWhitening(h);
  // a state one unit away in one coordinate: whitened by 1/rms(h) (rms = sqrt(mean of squares))
  const meanSq = one.reduce((s, v) => s + v * v, 0) / d;
  const probe = Float32Array.from(one);
  probe[3] += 1;
  const w = tf.tidy(() => head.whiten(tf.tensor2d(probe, [1, d])).dataSync());
  for (let i = 0; i < d; i++) assert.ok(Math.abs(w[i] - (i === 3 ? 1 / Math.sqrt(meanSq) : 0)) < 1e-5, `w[${i}] = ${w[i]}`);
  head.dispose();
});

test('posterior check sanity: TV outside [0, 1] or a mass ≠ 1 is an error (exit code 3)', () => {
  checkSanity(0.3, 1 + 1e-5, 1);
  checkSanity(0, 1, 1);
  for (const [tv, pm, qm] of [
    [1.499, 1, 1],
    [-0.2, 1, 1],
    [0.1, 1.7, 1],
    [0.1, 1, 0.5],
    [NaN, 1, 1],
    [0.1, NaN, 1],
  ]) {
    assert.throws(
      () => checkSanity(tv, pm, qm),
      (e: Error) => e instanceof PosteriorCheckError && (e as PosteriorCheckError).exitCode === 3,
    );
  }
});

test('ids that may enter Z: below the tokenizer size, not special', () => {
  const json = {
    model: { vocab: { a: 0, b: 1, c: 2, d: 3 } },
    added_tokens: [
      { id: 4, content: '<s>', special: true },
      { id: 5, content: 'word', special: false },
    ],
  };
  const f = tokenizerJsonFacts(json);
  assert.deepEqual(f, { size: 6, specialIds: [4] });
  const tok = {
    vocabSize: 8,
    eosTokenId: 4,
    padTokenId: 4,
    tokenizerSize: f.size,
    specialIds: f.specialIds,
    encode: () => [],
    decode: () => '',
  };
  // vocab_size 8 padded beyond the tokenizer's 6 ids: 6 and 7 never enter Z, nor the special 4
  assert.deepEqual(samplableIds(tok, 8), [0, 1, 2, 3, 5]);
});

test('a tokenizer with more ids than the model is a mismatch: one-line UsageError', async () => {
  const m = writeTempModel(81);
  try {
    const tj = new CharTokenizer().tokenizerJson() as any;
    tj.added_tokens.push({
      id: 120,
      content: '<extra>',
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    writeFileSync(path.join(m.dir, 'tokenizer.json'), JSON.stringify(tj));
    await assert.rejects(
      loadHfTokenizer(m.dir, 0, 98),
      (e: Error) => e instanceof UsageError && /121 ids but the model's vocab_size is 98/.test(e.message),
    );
  } finally {
    m.cleanup();
  }
});

test('text triggers fire on decoded text, whatever token carries the character', async () => {
  const { textTrigger } = await import('../src/lm/text-stop.js');
  const { calculatorTrigger } = await import('../src/finetune/rollout.js');
  const pieces = ['3', ' +', ' 9', ' =', '.\n', 'a', '=,'];
  let decodes = 0;
  const tok = {
    vocabSize: pieces.length,
    eosTokenId: 0,
    padTokenId: 0,
    encode: () => [],
    decode: (ids: ArrayLike<number>) => (decodes++, Array.from(ids, (i) => pieces[i]).join('')),
  };
  const calc = calculatorTrigger(tok);
  assert.equal(calc([0, 1, 2, 3]), true); // "3 + 9 =" ends in " =": fires
  assert.equal(calc([0, 1, 2]), false);
  assert.equal(calc([5, 3]), false); // "a =" is no "a op b ="
  assert.equal(calc([0, 1, 2, 6]), false); // "3 + 9=," does not end in "="
  const newline = textTrigger(tok, '\n', () => true);
  assert.equal(newline([5, 4]), true); // "\n" inside ".\n"
  assert.equal(newline([4, 5]), false); // only the last token is asked
  // the per-token check is cached: a token without the character costs no full decode
  const before = decodes;
  for (let i = 0; i < 10; i++) newline([4, 5]);
  assert.equal(decodes, before);
});
