import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { referenceForward, toTfParams } from '../src/lmbuild/reference.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function randomIds(rng: Rng, n: number, V: number): number[] {
  return Array.from({ length: n }, () => 1 + rng.int(V - 1));
}

test('ONNX export equals the tfjs reference forward (logits and hidden states)', async () => {
  await selectBackend();
  const m = writeTempModel(11);
  try {
    const s = await LmSession.open(m.dir);
    const B = 3,
      S = 12;
    const ids = randomIds(new Rng(1), B * S, m.config.vocabSize);
    const out = await s.forward({ batch: B, inputIds: ids, attentionMask: new Array(B * S).fill(1) });
    const ref = tf.tidy(() => {
      const r = referenceForward(m.config, toTfParams(m.config, m.weights), { batch: B, seqLen: S, ids });
      return { logits: r.logits.dataSync().slice(), hidden: r.hidden.dataSync().slice() };
    });
    const dl = maxAbsDiff(out.logits, ref.logits);
    const dh = maxAbsDiff(out.hidden!, ref.hidden);
    assert.ok(dl < 1e-4, `logits differ by ${dl}`);
    assert.ok(dh < 1e-4, `hidden differ by ${dh}`);
    // The check is meaningful only if logits vary a lot across positions.
    let spread = 0;
    for (let i = 0; i < ref.logits.length; i++) spread = Math.max(spread, Math.abs(ref.logits[i]));
    assert.ok(spread > 1, `logits nearly constant (${spread})`);
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('KV-cache stepping equals the full forward', async () => {
  const m = writeTempModel(12);
  try {
    const s = await LmSession.open(m.dir);
    const B = 2,
      S = 10,
      V = m.config.vocabSize;
    const ids = randomIds(new Rng(2), B * S, V);
    const full = await s.forward({ batch: B, inputIds: ids, attentionMask: new Array(B * S).fill(1) });
    // Prompt of 4 tokens, then one token at a time, then a 2-token chunk.
    const cols = (a: number, b: number) => Array.from({ length: B }, (_, r) => ids.slice(r * S + a, r * S + b)).flat();
    let out = await s.forward({ batch: B, inputIds: cols(0, 4), attentionMask: new Array(B * 4).fill(1) });
    const stepped = new Float32Array(B * S * V);
    const put = (o: typeof out, a: number, len: number) => {
      for (let r = 0; r < B; r++) stepped.set(o.logits.subarray(r * len * V, (r + 1) * len * V), (r * S + a) * V);
    };
    put(out, 0, 4);
    for (let t = 4; t < 8; t++) {
      out = await s.forward({ batch: B, inputIds: cols(t, t + 1), attentionMask: new Array(B * (t + 1)).fill(1), past: out.present });
      put(out, t, 1);
    }
    out = await s.forward({ batch: B, inputIds: cols(8, 10), attentionMask: new Array(B * 10).fill(1), past: out.present });
    put(out, 8, 2);
    const d = maxAbsDiff(stepped, full.logits);
    assert.ok(d < 1e-4, `stepped logits differ by ${d}`);
    assert.equal(out.present.length, S);
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('left padding does not change the logits of the real tokens (ONNX and tfjs)', async () => {
  await selectBackend();
  const m = writeTempModel(13);
  try {
    const s = await LmSession.open(m.dir);
    const V = m.config.vocabSize;
    const a = randomIds(new Rng(3), 9, V);
    const b = randomIds(new Rng(4), 5, V);
    const alone = await s.forward({ batch: 1, inputIds: b, attentionMask: new Array(5).fill(1) });
    const padded = [...a, 0, 0, 0, 0, ...b];
    const mask = [...new Array(9).fill(1), 0, 0, 0, 0, ...new Array(5).fill(1)];
    const both = await s.forward({ batch: 2, inputIds: padded, attentionMask: mask });
    const rowB = both.logits.subarray((9 + 4) * V, 18 * V);
    assert.ok(maxAbsDiff(rowB, alone.logits) < 1e-4);
    const ref = tf.tidy(() =>
      referenceForward(m.config, toTfParams(m.config, m.weights), { batch: 2, seqLen: 9, ids: padded, mask }).logits.dataSync().slice(),
    );
    assert.ok(maxAbsDiff(ref.subarray((9 + 4) * V), rowB) < 1e-4);
    // Continuing the padded batch with the cache still matches the unpadded row.
    const next = [7, 9];
    const aloneNext = await s.forward({ batch: 1, inputIds: [9], attentionMask: new Array(6).fill(1), past: alone.present });
    const bothNext = await s.forward({
      batch: 2,
      inputIds: next,
      attentionMask: [...mask.slice(0, 9), 1, ...mask.slice(9), 1],
      past: both.present,
    });
    assert.ok(maxAbsDiff(bothNext.logits.subarray(V), aloneNext.logits) < 1e-4);
    await s.release();
  } finally {
    m.cleanup();
  }
});
