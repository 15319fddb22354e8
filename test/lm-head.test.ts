import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { selectBackend, tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { UsageError } from '../src/core/errors.js';
import { LmHead, headConfig } from '../src/finetune/head.js';
import { addRowBias, bmm, layerNorm, linear, matMul2 } from '../src/lmbuild/tfops.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { sample } from '../src/lm/sampler.js';

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

test('custom-gradient ops match tfjs autodiff of the plain ops', async () => {
  await selectBackend();
  const rng = new Rng(3);
  const x = tf.tensor2d(randn(rng, 6 * 5), [6, 5]);
  const w = tf.tensor2d(randn(rng, 5 * 4), [5, 4]);
  const b = tf.tensor1d(randn(rng, 4));
  const g = tf.tensor1d(randn(rng, 5));
  const bb = tf.tensor1d(randn(rng, 5));
  const up = tf.tensor2d(randn(rng, 6 * 4), [6, 4]);
  const up5 = tf.tensor2d(randn(rng, 6 * 5), [6, 5]);
  const close = (a: tf.Tensor[], c: tf.Tensor[]) =>
    a.forEach((t, i) => {
      const d = tf.max(tf.abs(tf.sub(t, c[i]))).dataSync()[0];
      assert.ok(d < 1e-4, `grad ${i} differs by ${d}`);
    });
  close(
    tf.grads((x0, w0, b0) => tf.sum(tf.mul(linear(x0 as tf.Tensor2D, w0 as tf.Tensor2D, b0 as tf.Tensor1D), up)))([x, w, b]),
    tf.grads((x0, w0, b0) => tf.sum(tf.mul(tf.add(tf.matMul(x0 as tf.Tensor2D, w0 as tf.Tensor2D), b0), up)))([x, w, b]),
  );
  close(
    tf.grads((x0, w0) => tf.sum(tf.mul(matMul2(x0 as tf.Tensor2D, w0 as tf.Tensor2D), up)))([x, w]),
    tf.grads((x0, w0) => tf.sum(tf.mul(tf.matMul(x0 as tf.Tensor2D, w0 as tf.Tensor2D), up)))([x, w]),
  );
  close(
    tf.grads((x0, b0) => tf.sum(tf.mul(addRowBias(x0 as tf.Tensor2D, b0 as tf.Tensor1D), up5)))([x, bb]),
    tf.grads((x0, b0) => tf.sum(tf.mul(tf.add(x0, b0), up5)))([x, bb]),
  );
  const plainLn = (x0: tf.Tensor, g0: tf.Tensor, b0: tf.Tensor) => {
    const { mean, variance } = tf.moments(x0, 1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x0, mean), tf.sqrt(tf.add(variance, 1e-5))), g0), b0);
  };
  close([layerNorm(x, g, bb, 1e-5)], [plainLn(x, g, bb)]);
  close(
    tf.grads((x0, g0, b0) => tf.sum(tf.mul(layerNorm(x0 as tf.Tensor2D, g0 as tf.Tensor1D, b0 as tf.Tensor1D, 1e-5), up5)))([x, g, bb]),
    tf.grads((x0, g0, b0) => tf.sum(tf.mul(plainLn(x0, g0, b0), up5)))([x, g, bb]),
  );
  const a3 = tf.tensor3d(randn(rng, 2 * 3 * 4), [2, 3, 4]);
  const b3 = tf.tensor3d(randn(rng, 2 * 4 * 5), [2, 4, 5]);
  const u3 = tf.tensor3d(randn(rng, 2 * 3 * 5), [2, 3, 5]);
  close(
    tf.grads((p, q) => tf.sum(tf.mul(bmm(p as tf.Tensor3D, q as tf.Tensor3D), u3)))([a3, b3]),
    tf.grads((p, q) => tf.sum(tf.mul(tf.matMul(p as tf.Tensor3D, q as tf.Tensor3D), u3)))([a3, b3]),
  );
});

test('whitening gives identity covariance on correlated states', async () => {
  await selectBackend();
  const d = 6,
    N = 4000;
  const rng = new Rng(4);
  const mix = randn(rng, d * d);
  const h = new Float32Array(N * d);
  for (let n = 0; n < N; n++) {
    const z = randn(rng, d);
    for (let j = 0; j < d; j++) {
      let s = 3 + j; // non-zero mean
      for (let i = 0; i < d; i++) s += z[i] * mix[i * d + j];
      h[n * d + j] = s;
    }
  }
  const head = new LmHead(headConfig({ hiddenSize: d, vocabSize: 5 }), 1);
  head.fitWhitening(h, 1e-9);
  const w = tf.tidy(() => head.whiten(tf.tensor2d(h, [N, d])).dataSync());
  for (let i = 0; i < d; i++) {
    let m = 0;
    for (let n = 0; n < N; n++) m += w[n * d + i] / N;
    assert.ok(Math.abs(m) < 1e-3, `mean ${m}`);
    for (let j = 0; j < d; j++) {
      let c = 0;
      for (let n = 0; n < N; n++) c += (w[n * d + i] * w[n * d + j]) / N;
      assert.ok(Math.abs(c - (i === j ? 1 : 0)) < 1e-3, `cov[${i}][${j}] = ${c}`);
    }
  }
  head.dispose();
});

test('with B = 0 the head reproduces the base distribution exactly; training B moves it', async () => {
  await selectBackend();
  const m = writeTempModel(41, {}, {}, 3);
  try {
    const s = await LmSession.open(m.dir);
    const prompts = [[5, 17, 22], [33, 4, 4, 4], [61]];
    const probe = await sample(s, prompts, { maxNewTokens: 8, rng: new Rng(9), keepLogits: true });
    for (const kind of ['mlp', 'linear'] as const) {
      const head = new LmHead(headConfig({ kind, hiddenSize: 32, vocabSize: 98 }), 7);
      head.fitWhitening(probe.hidden!);
      const withHead = await sample(s, prompts, { maxNewTokens: 8, rng: new Rng(9), policy: head.policy() });
      assert.deepEqual(withHead.tokens, probe.tokens, `${kind} head at init (B = 0): sampled tokens equal the base LM's`);
      assert.deepEqual(withHead.logProbs, probe.logProbs, `${kind} head at init (B = 0): log-probs equal the base LM's`);
      const n = probe.batch * probe.steps;
      const hl = head.logitsSync(probe.hidden!, probe.baseLogits!, n);
      assert.deepEqual(hl, probe.baseLogits, `${kind} head logits at init (B = 0) equal the base logits`);
      // One gradient step on "make token 42 likely": B gets a non-zero gradient and the logits move.
      const opt = tf.train.adam(0.05);
      const target = tf.oneHot(tf.fill([n], 42, 'int32') as tf.Tensor1D, 98);
      opt.minimize(
        () =>
          tf.neg(
            tf.mean(
              tf.sum(
                tf.mul(tf.logSoftmax(head.logits(tf.tensor2d(probe.hidden!, [n, 32]), tf.tensor2d(probe.baseLogits!, [n, 98]))), target),
                1,
              ),
            ),
          ) as tf.Scalar,
        false,
        head.trainableVariables(false),
      );
      const moved = head.logitsSync(probe.hidden!, probe.baseLogits!, n);
      let diff = 0;
      for (let i = 0; i < moved.length; i++) diff = Math.max(diff, Math.abs(moved[i] - probe.baseLogits![i]));
      assert.ok(diff > 1e-3, `logits did not move (${diff})`);
      assert.ok(tf.max(tf.abs(head.params.get('B')!)).dataSync()[0] > 0);
      // The sampler's plain-JS hook (whitening folded into layer 1) equals the tfjs head.
      const hooked = head.policy()({ step: 0, active: new Uint8Array(n).fill(1), hidden: probe.hidden!, logits: probe.baseLogits! });
      let hd = 0;
      for (let i = 0; i < moved.length; i++) hd = Math.max(hd, Math.abs(hooked[i] - moved[i]));
      assert.ok(hd < 1e-4, `JS hook differs from tfjs head by ${hd}`);
      head.dispose();
    }
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('head save/load round trip (safetensors + manifest) and refusal of a foreign base model', async () => {
  await selectBackend();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flowtune-head-'));
  try {
    const rng = new Rng(5);
    const head = new LmHead(headConfig({ hiddenSize: 16, vocabSize: 11, rank: 4, alpha: 3 }), 2);
    head.fitWhitening(randn(rng, 50 * 16));
    for (const v of head.trainableVariables()) v.assign(tf.tensor(randn(rng, v.size, 0.3), v.shape));
    const h = randn(rng, 7 * 16);
    const base = randn(rng, 7 * 11);
    const before = head.logitsSync(h, base, 7);
    const flowBefore = tf.tidy(() => head.logFlow(tf.tensor2d(h, [7, 16])).dataSync());
    const man = head.save(dir, { id: 'models/arith-char', sha256: 'ab'.repeat(32) });
    assert.equal(man.rank, 4);
    assert.equal(man.alpha, 3);
    assert.equal(man.vocabSize, 11);
    assert.equal(man.baseModel, 'models/arith-char');
    const { head: loaded } = LmHead.load(dir, { sha256: 'ab'.repeat(32), vocabSize: 11 });
    assert.deepEqual(loaded.logitsSync(h, base, 7), before);
    assert.deepEqual(
      tf.tidy(() => loaded.logFlow(tf.tensor2d(h, [7, 16])).dataSync()),
      flowBefore,
    );
    assert.ok(loaded.isWhitened);
    assert.throws(() => LmHead.load(dir, { sha256: 'cd'.repeat(32) }), UsageError);
    assert.throws(() => LmHead.load(dir, { vocabSize: 12 }), UsageError);
    writeFileSync(path.join(dir, 'head.safetensors'), Buffer.from([1, 2, 3]));
    assert.throws(() => LmHead.load(dir), UsageError);
    head.dispose();
    loaded.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
