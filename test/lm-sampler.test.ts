import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { sample, sequences } from '../src/lm/sampler.js';
import { naivePrefixRewards, prefixRewards, scoreBatch, statesOf } from '../src/lm/scorer.js';

function argmax(x: ArrayLike<number>, off: number, n: number): number {
  let k = 0;
  for (let i = 1; i < n; i++) if (x[off + i] > x[off + k]) k = i;
  return k;
}

function logSoftmax(x: ArrayLike<number>, off: number, n: number, temp = 1): number[] {
  const v = Array.from({ length: n }, (_, i) => x[off + i] / temp);
  const m = Math.max(...v);
  const lse = m + Math.log(v.reduce((a, b) => a + Math.exp(b - m), 0));
  return v.map((a) => a - lse);
}

const prompts = [[5, 17, 22, 9, 40], [33], [61, 2, 8]];

test('greedy sampling with the KV cache equals greedy decoding by full recompute', async () => {
  const m = writeTempModel(21);
  try {
    const s = await LmSession.open(m.dir);
    const V = m.config.vocabSize;
    const r = await sample(s, prompts, { maxNewTokens: 12, temperature: 0, eosTokenId: 1 });
    for (let b = 0; b < prompts.length; b++) {
      const seq = [...prompts[b]];
      for (let t = 0; t < r.lengths[b]; t++) {
        const out = await s.forward({ batch: 1, inputIds: seq, attentionMask: new Array(seq.length).fill(1) });
        const k = argmax(out.logits, (seq.length - 1) * V, V);
        assert.equal(r.tokens[b * r.steps + t], k, `row ${b} step ${t}`);
        // hidden state of the state the token was chosen from
        const h = out.hidden!.subarray((seq.length - 1) * 32, seq.length * 32);
        const hs = r.hidden!.subarray((b * r.steps + t) * 32, (b * r.steps + t + 1) * 32);
        for (let i = 0; i < 32; i++) assert.ok(Math.abs(h[i] - hs[i]) < 1e-4);
        seq.push(k);
      }
    }
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('sampled log-probs equal the tempered log-softmax recomputed by full forwards; seeds reproduce', async () => {
  const m = writeTempModel(22, {}, {}, 3);
  try {
    const s = await LmSession.open(m.dir);
    const V = m.config.vocabSize;
    const opts = { maxNewTokens: 10, temperature: 0.7, rng: new Rng(5), keepLogits: true };
    const r = await sample(s, prompts, opts);
    const r2 = await sample(s, prompts, { ...opts, rng: new Rng(5) });
    assert.deepEqual(r.tokens, r2.tokens);
    const r3 = await sample(s, prompts, { ...opts, rng: new Rng(6) });
    assert.notDeepEqual(r.tokens, r3.tokens);
    const seqs = sequences(r, 0);
    for (let b = 0; b < prompts.length; b++) {
      const ctx = [...prompts[b]];
      for (let t = 0; t < r.lengths[b]; t++) {
        const out = await s.forward({ batch: 1, inputIds: ctx, attentionMask: new Array(ctx.length).fill(1) });
        const tok = r.tokens[b * r.steps + t];
        const lp = logSoftmax(out.logits, (ctx.length - 1) * V, V, 0.7)[tok];
        assert.ok(
          Math.abs(lp - r.logProbs[b * r.steps + t]) < 1e-4,
          `tempered (T = 0.7) log-prob of row ${b} step ${t}: full-forward ${lp} vs sampler ${r.logProbs[b * r.steps + t]}`,
        );
        ctx.push(tok);
      }
      assert.deepEqual(seqs[b], Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b] - (r.stopped[b] ? 1 : 0))));
    }
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('allowed tokens, minimum length, forced stop and the policy hook are respected', async () => {
  const m = writeTempModel(23, {}, {}, 2);
  try {
    const s = await LmSession.open(m.dir);
    const allowed = [10, 11, 12];
    const r = await sample(s, prompts, { maxNewTokens: 6, minNewTokens: 2, allowedTokens: allowed, forceEosAtMax: true, rng: new Rng(1) });
    for (let b = 0; b < prompts.length; b++) {
      assert.equal(r.stopped[b], 1);
      assert.ok(r.lengths[b] >= 3 && r.lengths[b] <= 6);
      for (let t = 0; t < r.lengths[b] - 1; t++) assert.ok(allowed.includes(r.tokens[b * r.steps + t]));
      assert.equal(r.tokens[b * r.steps + r.lengths[b] - 1], 0);
    }
    // A hook that makes token 42 overwhelmingly likely must be obeyed.
    const hooked = await sample(s, prompts, {
      maxNewTokens: 4,
      rng: new Rng(2),
      policy: ({ logits }) => {
        const l = Float32Array.from(logits);
        for (let b = 0; b < prompts.length; b++) l[b * 98 + 42] += 1000;
        return l;
      },
    });
    assert.ok(Array.from(hooked.tokens).every((t) => t === 42));
    for (const lp of hooked.logProbs) assert.ok(Math.abs(lp) < 1e-6);
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('prefix rewards against the shared KV cache equal one full forward per prefix', async () => {
  const m = writeTempModel(24, {}, {}, 3);
  try {
    const s = await LmSession.open(m.dir);
    const x = [
      [5, 17, 22],
      [33, 4],
      [61, 2, 8, 9, 10, 11],
    ];
    const z = [[40, 41, 42, 43], [], [7, 7]];
    const y = [[50, 51, 52], [60], [70, 71]];
    const fast = await prefixRewards(s, x, z, y, { chunk: 3 });
    const naive = await naivePrefixRewards(s, x, z, y);
    for (let b = 0; b < x.length; b++) {
      assert.equal(fast.rewards[b].length, z[b].length + 1);
      for (let t = 0; t <= z[b].length; t++)
        assert.ok(
          Math.abs(fast.rewards[b][t] - naive[b][t]) < 1e-4,
          `prefix reward log p(Y | X z_1..${t}) of row ${b}: KV-cache ${fast.rewards[b][t]} vs full forward ${naive[b][t]}`,
        );
      // the rewards must actually differ between prefixes for the check to mean anything
      if (z[b].length > 1) assert.ok(Math.abs(fast.rewards[b][0] - fast.rewards[b][z[b].length]) > 1e-2);
      // the prior terms: log p(z_{t+1} | X z_1..t)
      const { perToken } = await scoreBatch(s, [x[b]], [z[b]]);
      for (let t = 0; t < z[b].length; t++) assert.ok(Math.abs(perToken[0][t] - fast.zLogProbs[b][t]) < 1e-4);
    }
    await s.release();
  } finally {
    m.cleanup();
  }
});

test('a model exported without KV cache samples and scores the same (full-recompute fallback)', async () => {
  const a = writeTempModel(25, {}, {}, 3);
  const b = writeTempModel(25, {}, { kvCache: false }, 3);
  try {
    const sa = await LmSession.open(a.dir);
    const sb = await LmSession.open(b.dir);
    assert.equal(sb.hasKvCache, false);
    const opts = { maxNewTokens: 9, temperature: 0.8, eosTokenId: 1 };
    const ra = await sample(sa, prompts, { ...opts, rng: new Rng(3) });
    const rb = await sample(sb, prompts, { ...opts, rng: new Rng(3) });
    assert.deepEqual(rb.tokens, ra.tokens);
    for (let i = 0; i < ra.logProbs.length; i++) assert.ok(Math.abs(ra.logProbs[i] - rb.logProbs[i]) < 1e-4);
    const x = [
      [5, 17, 22],
      [33, 4],
    ];
    const z = [[40, 41], [7]];
    const y = [
      [50, 51],
      [60, 61, 62],
    ];
    const fa = await prefixRewards(sa, x, z, y);
    const fb = await prefixRewards(sb, x, z, y);
    fa.rewards.forEach((r, i) =>
      r.forEach((v, t) =>
        assert.ok(
          Math.abs(v - fb.rewards[i][t]) < 1e-4,
          `prefix reward log p(Y | X z_1..${t}) of row ${i}: KV cache ${v} vs no-cache export ${fb.rewards[i][t]}`,
        ),
      ),
    );
    fa.zLogProbs.forEach((r, i) => r.forEach((v, t) => assert.ok(Math.abs(v - fb.zLogProbs[i][t]) < 1e-4)));
    await sa.release();
    await sb.release();
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('statesOf recomputes the hidden states and base logits the sampler recorded on-policy', async () => {
  const m = writeTempModel(26, {}, {}, 3);
  try {
    const s = await LmSession.open(m.dir);
    const r = await sample(s, prompts, { maxNewTokens: 7, rng: new Rng(4), keepLogits: true, forceEosAtMax: true });
    const z = sequences(r, 0);
    const st = await statesOf(s, prompts, z);
    assert.equal(
      st.rows,
      z.reduce((a, zi) => a + zi.length + 1, 0),
    );
    for (let b = 0; b < prompts.length; b++) {
      assert.equal(r.lengths[b], z[b].length + 1); // every row ends with EOS: states s_0..s_|z|
      for (let t = 0; t <= z[b].length; t++) {
        for (let i = 0; i < 32; i++)
          assert.ok(Math.abs(st.hidden[(st.offsets[b] + t) * 32 + i] - r.hidden![(b * r.steps + t) * 32 + i]) < 1e-4);
        for (let v = 0; v < 98; v++)
          assert.ok(Math.abs(st.logits[(st.offsets[b] + t) * 98 + v] - r.baseLogits![(b * r.steps + t) * 98 + v]) < 1e-4);
      }
    }
    await s.release();
  } finally {
    m.cleanup();
  }
});
