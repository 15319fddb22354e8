import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bleu, distinctN, gleu, selfBleu, words } from '../src/metrics/text.js';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

test('BLEU-4 (Chen & Cherry method 1, ε = 0.1): worked examples', () => {
  // hyp "the cat sat on the mat", ref "the cat is on the mat" (both 6 words, BP = 1)
  // 1-grams: the×2, cat, on, mat match of 6        → 5/6
  // 2-grams: "the cat", "on the", "the mat" of 5   → 3/5
  // 3-grams: "on the mat" of 4                     → 1/4
  // 4-grams: none of 3                             → smoothed 0.1/3
  // BLEU = (5/6 · 3/5 · 1/4 · 1/30)^(1/4) = (1/240)^(1/4) = 0.2540664…
  close(bleu('the cat sat on the mat', ['the cat is on the mat']), Math.pow(1 / 240, 0.25));
  close(bleu('the cat sat on the mat', ['the cat is on the mat']), 0.2540664, 1e-6);

  // hyp "the cat", ref "the cat sat on the mat": p1 = 2/2, p2 = 1/1, no 3- or 4-grams in the
  // hypothesis → 0.1/max(1, 0) = 0.1 each; c = 2 < r = 6 → BP = exp(1 − 6/2) = e^−2
  // BLEU = e^−2 · (1 · 1 · 0.1 · 0.1)^(1/4) = e^−2 · 0.1^(1/2) = 0.0427969…
  close(bleu('the cat', ['the cat sat on the mat']), Math.exp(-2) * Math.sqrt(0.1));

  // clipping: hyp "the the the", ref "the cat": p1 = min(3, 1)/3 = 1/3, p2 = 0 → 0.1/2,
  // p3 = 0 → 0.1/1, p4 (no 4-grams) → 0.1/1; c = 3 > r = 2 → BP = 1
  // BLEU = (1/3 · 1/20 · 1/10 · 1/10)^(1/4) = (1/6000)^(1/4) = 0.1136219…
  close(bleu('the the the', ['the cat']), Math.pow(1 / 6000, 0.25));

  // several references: clipping by the max count over references, r = closest length (tie → shorter)
  // hyp "a b" vs refs ["a b c", "a"] (lengths 3, 1; both 1 away from 2 → r = 1; c = 2 > r → BP = 1)
  // p1 = 2/2, p2 = 1/1 ("a b" is in ref 1), p3, p4 → 0.1 → BLEU = (0.01)^(1/4) = √0.1
  close(bleu('a b', ['a b c', 'a']), Math.sqrt(0.1));

  assert.equal(bleu('x y z', ['a b c']), 0, 'no unigram match → 0');
  assert.equal(bleu('', ['a b c']), 0, 'empty hypothesis → 0');
  close(bleu('a b c d e', ['a b c d e']), 1);
});

test('GLEU-4 = min(precision, recall) over pooled 1–4-grams: worked examples', () => {
  // same pair as BLEU: hyp n-grams 6+5+4+3 = 18, ref 6+5+4+3 = 18, matches 5+3+1+0 = 9 → 9/18
  close(gleu('the cat sat on the mat', 'the cat is on the mat'), 0.5);
  // hyp "the cat": 2+1 = 3 n-grams, all match; ref has 6+5+4+3 = 18 → min(3/3, 3/18) = 1/6
  close(gleu('the cat', 'the cat sat on the mat'), 1 / 6);
  // hyp "the the the": 3+2+1 = 6 n-grams; ref "the cat": 2+1 = 3; matches: "the" once → min(1/6, 1/3)
  close(gleu('the the the', 'the cat'), 1 / 6);
  assert.equal(gleu('', 'a'), 0);
  close(gleu('a b', 'a b'), 1);
});

test('distinct-n and self-BLEU: worked examples', () => {
  // unigrams a b a | a b c: 6 in all, {a, b, c} unique → 1/2; bigrams ab ba | ab bc: 4, 3 unique
  close(distinctN(['a b a', 'a b c'], 1), 0.5);
  close(distinctN(['a b a', 'a b c'], 2), 0.75);
  assert.equal(distinctN(['a', 'b'], 2), 0, 'no bigrams at all');
  // two samples: each one's BLEU against the other is the first worked example (symmetric here)
  close(selfBleu(['the cat sat on the mat', 'the cat is on the mat'])!, Math.pow(1 / 240, 0.25));
  close(selfBleu(['a b c d', 'a b c d', 'a b c d'])!, 1);
  assert.equal(selfBleu(['only one']), null);
  assert.deepEqual(words('  a  b\tc \n'), ['a', 'b', 'c']);
});
